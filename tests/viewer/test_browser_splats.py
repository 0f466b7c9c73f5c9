"""Browser splats end to end: headless Chromium (software WebGL) draws a run's Gaussians itself.

The server never renders while the page shows splats, so every coloured pixel on the canvas was
drawn by viser's WebGL splat renderer from the splats the server sent. That picture is compared
with recon's own rasterizer rendering the same run from the camera the browser reports, which
checks that the splats arrived and sit in the frame of the server render.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from .conftest import free_port, wait_until, write_tiny_run

pytest.importorskip("viser")

from viewer.app import ViewerApp
from viewer.cameras import ViewPose, pose_to_cameras
from viewer.cli import scene_context
from viewer.loading import load_viewable
from viewer.render import RenderSettings, make_render_fn
from viewer.splats import SplatSource


@pytest.fixture
def grid_run(tmp_path) -> Path:
    """A run of 27 small, well separated Gaussians (3 x 3 x 3, saturated colours) the ring cameras see."""
    from recon.primitives.sh import rgb_to_sh0

    g = torch.Generator().manual_seed(3)
    axis = torch.tensor([-0.7, 0.0, 0.7])
    means = torch.stack(torch.meshgrid(axis, axis, axis, indexing="ij"), -1).reshape(-1, 3)  # [27, 3]
    colours = torch.rand(27, 3, generator=g)
    colours = (colours - colours.min(1, keepdim=True).values) / (
        colours.max(1, keepdim=True).values - colours.min(1, keepdim=True).values
    )
    params = {
        "means": means,
        "quats": torch.randn(27, 4, generator=g),
        "scales": torch.log(0.03 + 0.04 * torch.rand(27, 3, generator=g)),
        "opacities": torch.full((27,), 4.0),
        "sh0": rgb_to_sh0(colours)[:, None],
        "shN": torch.zeros(27, 3, 3),
    }
    return write_tiny_run(tmp_path / "run", params)


def _assert_same_picture(shot: np.ndarray, expected: np.ndarray) -> None:
    """The page's splats vs recon's render, away from the GUI panel, notification and gizmo."""
    H, W = shot.shape[:2]
    keep = np.ones((H, W), bool)
    keep[:, 440:] = False  # the GUI panel
    keep[:150, :320] = False  # the software-WebGL notification
    keep[H - 70 :, :70] = False  # the orientation gizmo
    got, want = shot[keep].astype(int), expected[keep].astype(int)
    covered = want.max(-1) > 60  # pixels the server render puts a splat on
    assert covered.sum() > 2000 and got.std() > 10, "blank canvas: no splats drawn"
    diff = np.abs(got - want).max(-1)
    # The same picture up to 8-bit colours and the page's camera frustum lines.
    assert (diff < 25).mean() > 0.97, f"only {(diff < 25).mean():.1%} of pixels match the server render"
    assert (diff[covered] < 25).mean() > 0.9


def test_browser_draws_the_splats_of_a_run(chromium, grid_run, tmp_path):
    from PIL import Image

    viewable = load_viewable(grid_run)
    context = scene_context(viewable, with_thumbnails=False)
    assert isinstance(context.splats, SplatSource)
    render_fn = make_render_fn(viewable.sets, backend="reference")
    app = ViewerApp(render_fn, context, port=free_port(), max_resolution=384, verbose=False)
    app.server.scene.world_axes.visible = False
    region = (slice(0, 457), slice(0, 440))  # left of the GUI panel
    try:
        browser = chromium(800, 600)
        browser.open(app.url)
        assert wait_until(lambda: app.num_clients == 1, 90), "the browser never connected"
        shot = browser.settled_screenshot(region, 90)
        renderer = next(iter(app.renderers.values()))
        cam = renderer.client.camera
        camera = pose_to_cameras(
            ViewPose(np.array(cam.wxyz), np.array(cam.position), float(cam.fov)), *shot.shape[1::-1]
        )
        assert (cam.image_width, cam.image_height) == shot.shape[1::-1]
        Image.fromarray(np.concatenate([shot, render_fn(camera, RenderSettings())], 1)).save(
            tmp_path / "page_server.png"
        )
        _assert_same_picture(shot, render_fn(camera, RenderSettings()))

        # Training moved the Gaussians (sent again in place): the page follows.
        params = viewable.sets["gaussian"].params
        params["means"] += torch.tensor([0.0, 0.0, 0.3])
        params["sh0"] = params["sh0"].flip(-1)
        app.splats.send()
        before = shot[region].astype(int)
        assert wait_until(lambda: np.abs(browser.screenshot()[region] - before).mean() > 1.0, 60), "no update drawn"
        shot = browser.settled_screenshot(region, 60)
        _assert_same_picture(shot, render_fn(camera, RenderSettings()))
        assert renderer.renders == 0, "the server rendered while the page was on browser splats"

        # Back to the server render: one toggle away.
        app.splats.active = False
        assert wait_until(lambda: renderer.renders >= 1, 60)
        assert not app.splats.handle.visible
    finally:
        app.stop()


@pytest.mark.slow
def test_bench_browser_counts_server_images_only_in_the_server_view(chromium, grid_run):
    """scripts/bench_browser.py end to end (1 s per view): its drag moves the page's camera, the
    server view streams images, the splat view none; the CPU of Chromium's process tree is counted."""
    import json
    import os
    import subprocess
    import sys

    repo = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": str(repo), "OMP_NUM_THREADS": "1"}
    out = subprocess.run(
        [sys.executable, str(repo / "scripts" / "bench_browser.py"), str(grid_run), "--seconds", "1", "--rounds", "1", "--warmup", "0.5",
         "--backend", "reference", "--max-resolution", "128", "--port", str(free_port())],
        env=env, capture_output=True, text=True, timeout=300, check=True,
    )  # fmt: skip
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["gaussians"] == 27
    (still,), (moving,), (server,) = result["splats, still"], result["splats, moving"], result["server, moving"]
    assert still["mouse_moves_per_s"] == 0 and moving["mouse_moves_per_s"] > 0 and server["mouse_moves_per_s"] > 0
    assert still["server_fps"] == moving["server_fps"] == 0 and server["server_fps"] > 0
    assert min(still["chromium_cpu_s"], moving["chromium_cpu_s"], server["chromium_cpu_s"]) > 0
