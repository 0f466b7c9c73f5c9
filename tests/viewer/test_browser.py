"""End to end in a real browser: headless Chromium opens the viewer and shows our render.

Two independent checks on the screenshot: (1) the canvas shows the analytic render of the
camera the browser reports (not blank, colours match); (2) a marker sphere drawn by three.js
(the browser's own projection) lands where recon's camera built from the viser pose projects
its centre, which pins the viser <-> recon camera convention end to end.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from .conftest import free_port, wait_until

pytest.importorskip("viser")

from viewer.app import ViewerApp  # noqa: E402
from viewer.cameras import ViewPose, pose_to_cameras  # noqa: E402
from viewer.render import RenderSettings  # noqa: E402

MARKER = np.array([0.0, 0.0, -1.7])


def test_browser_shows_rendered_scene(chromium, sphere_render_fn, tmp_path):
    app = ViewerApp(sphere_render_fn, port=free_port(), max_resolution=512, verbose=False)
    app.server.scene.add_icosphere("/marker", radius=0.12, color=(255, 0, 255), position=tuple(MARKER))
    app.server.scene.world_axes.visible = False
    try:
        browser = chromium(800, 600)
        browser.open(app.url)
        assert wait_until(lambda: any(r.renders >= 2 for r in app.renderers.values()), 90), \
            "the browser never connected or no full-resolution render was sent"
        # Software WebGL may take a few seconds to compile shaders and draw the first frames.
        region = (slice(int(0.35 * 457), 457 - 80), slice(0, int(0.55 * 800)))
        shot = browser.settled_screenshot(region, 60)
        from PIL import Image

        Image.fromarray(shot).save(tmp_path / "viewer.png")
        renderer = next(iter(app.renderers.values()))
        cam = renderer.client.camera
        H, W = shot.shape[:2]
        assert (cam.image_width, cam.image_height) == (W, H)
    finally:
        app.stop()

    pose = ViewPose(np.array(cam.wxyz), np.array(cam.position), float(cam.fov))
    camera = pose_to_cameras(pose, W, H)
    expected = sphere_render_fn(camera, RenderSettings()).astype(int)

    # (1) Left part of the canvas, below the notification and away from the GUI panel and the
    # orientation gizmo: the displayed image is our render (JPEG and scaling tolerance).
    region = (slice(int(0.35 * H), H - 80), slice(0, int(0.55 * W)))
    diff = np.abs(shot[region].astype(int) - expected[region]).sum(-1)
    assert shot[region].std() > 10, "the canvas is blank"
    assert (diff < 60).mean() > 0.95, f"only {(diff < 60).mean():.1%} of pixels match the render"
    red = (expected[region][..., 0] > 200)
    assert red.mean() > 0.05  # the sphere is in the compared region

    # (2) Where three.js draws the marker vs where our camera projects it.
    magenta = (shot[..., 0] > 150) & (shot[..., 2] > 150) & (shot[..., 1] < 110)
    assert magenta.sum() > 20, "the three.js marker is not visible"
    ys, xs = np.nonzero(magenta)
    uv, z = camera.project(torch.as_tensor(MARKER[None], dtype=torch.float32))
    assert float(z[0, 0]) > 0
    np.testing.assert_allclose([xs.mean(), ys.mean()], uv[0, 0].numpy(), atol=4.0)


def test_recon_view_serves_a_run(chromium, tiny_run, tmp_path):
    """`recon view RUN` in its own process; the browser opens on the first camera's view."""
    import os
    import signal
    import subprocess
    import sys
    import urllib.request
    from pathlib import Path

    from PIL import Image

    from viewer.cameras import cameras_to_poses, look_at_pose
    from viewer.loading import load_viewable
    from viewer.paths import focus_point, mean_up
    from viewer.render import make_render_fn

    port = free_port()
    repo = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": str(repo), "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "recon", "view", str(tiny_run), "--port", str(port),
                             "--backend", "reference", "--max-resolution", "384", "--view", "server"],
                            cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            # a suite started in the background ignores SIGINT, and children inherit that
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        def up() -> bool:
            try:
                return urllib.request.urlopen(f"http://127.0.0.1:{port}", timeout=2).status == 200
            except OSError:
                return proc.poll() is not None

        assert wait_until(up, 60) and proc.poll() is None, proc.stderr.read().decode() if proc.poll() else ""
        browser = chromium(800, 600)
        browser.open(f"http://127.0.0.1:{port}")
        region = (slice(int(0.35 * 457), 457 - 80), slice(0, int(0.55 * 800)))
        # Wait for our image (viser's default background is white), then for the fade-in to end.
        wait_until(lambda: browser.screenshot()[region].mean() < 200, 90)
        shot = browser.settled_screenshot(region, 60)
        Image.fromarray(shot).save(tmp_path / "recon_view.png")
    finally:
        proc.send_signal(signal.SIGINT)
        try:  # a reference-backend frame in flight finishes first: slow on a loaded 2-core CI machine
            rc = proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            rc = None
    err = proc.stderr.read().decode()
    assert rc == 0, err[-2000:]
    assert f"http://127.0.0.1:{port}" in err and "--host 0.0.0.0" in err

    # The client starts at the first camera, looking at the cameras' focus point.
    v = load_viewable(tiny_run)
    pose0 = cameras_to_poses(v.cameras)[0]
    start = look_at_pose(pose0.position, focus_point(v.cameras), mean_up(v.cameras), pose0.fov)
    H, W = shot.shape[:2]
    expected = make_render_fn(v.sets, backend="reference")(pose_to_cameras(start, W, H), RenderSettings())
    diff = np.abs(shot[region].astype(int) - expected[region].astype(int)).sum(-1)
    assert expected[region].std() > 5 and shot[region].std() > 5, "blank canvas"
    assert (diff < 60).mean() > 0.9, f"only {(diff < 60).mean():.1%} of pixels match the render"
