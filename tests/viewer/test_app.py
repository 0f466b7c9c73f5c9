"""The viser application: a real server on 127.0.0.1, with simulated clients."""

from __future__ import annotations

import socket
import time
import urllib.request

import numpy as np
import pytest
from .conftest import free_port
from .fakes import FakeClient

pytest.importorskip("viser")

from viewer.app import SceneContext, ViewerApp, make_thumbnail  # noqa: E402
from viewer.cameras import look_at_pose, pose_to_cameras  # noqa: E402


def _wait(cond, timeout=20.0) -> bool:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if cond():
            return True
        time.sleep(0.02)
    return False


def _scene() -> SceneContext:
    poses = [look_at_pose(np.array([3 * np.cos(a), 3 * np.sin(a), 1.0]), np.zeros(3),
                          np.array([0.0, 0.0, 1.0]), 0.8) for a in np.linspace(0, 6, 4)]
    cams = pose_to_cameras(poses, 40, 30)
    thumbs = [make_thumbnail(np.random.default_rng(i).random((30, 40, 3)), 16) for i in range(4)]
    pts = np.random.default_rng(0).normal(size=(100, 3)).astype(np.float32)
    return SceneContext(cameras=cams, names=[f"v{i}" for i in range(4)],
                        split={"train": [0, 1], "test": [2, 3]}, thumbnails=thumbs, points=pts,
                        point_colors=np.random.default_rng(1).random((100, 3)),
                        primitives=["gaussian", "triangle"])


@pytest.fixture
def app(sphere_render_fn):
    app = ViewerApp(sphere_render_fn, _scene(), port=free_port(), verbose=False)
    yield app
    app.stop()


def test_binds_localhost_and_builds_scene(app):
    assert app.host == "127.0.0.1" and app.url == f"http://127.0.0.1:{app.port}"
    with urllib.request.urlopen(app.url, timeout=10) as page:  # the inlined web client
        assert page.status == 200 and b"<html" in page.read().lower()
    assert make_thumbnail(np.zeros((300, 400, 3)), 96).shape == (72, 96, 3)
    assert make_thumbnail(np.full((30, 40, 3), 0.5), 96)[0, 0, 0] == 128
    assert app.settings().primitive == "gaussian" and app.settings().mode == "rgb"
    assert app.scene.extent == pytest.approx(np.linalg.norm(
        app.scene.cameras.centers.numpy() - app.scene.cameras.centers.numpy().mean(0), axis=-1).max(), rel=1e-5)


def test_port_in_use_moves_to_next_free_one(sphere_render_fn, capsys):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        app = ViewerApp(sphere_render_fn, port=port, verbose=True)
        try:
            assert app.port != port and app.requested_port == port
            err = capsys.readouterr().err
            assert f"port {port} is in use" in err and "--host 0.0.0.0" in err
        finally:
            app.stop()


def test_ten_clients_and_disconnect_mid_render(app):
    clients = [FakeClient(position=(np.sin(i), 0.5, -4.0 + 0.1 * i)) for i in range(10)]
    for c in clients:
        app._on_connect(c)
    assert app.num_clients == 10
    # Every client gets its own view; the full render matches its own camera.
    assert _wait(lambda: all(len(c.scene.images) >= 2 for c in clients), 60)
    widths = {c.scene.images[-1].shape for c in clients}
    assert widths == {(384, 512, 3)}
    for c in clients[:2]:
        cam = c.camera
        from viewer.cameras import ViewPose
        from viewer.render import RenderSettings

        expected = app.render_fn(pose_to_cameras(ViewPose(cam.wxyz, cam.position, cam.fov), 512, 384),
                                 RenderSettings())
        np.testing.assert_array_equal(c.scene.images[-1], expected)
    # Half the clients move and vanish while their renders are in flight.
    for c in clients[:5]:
        c.move((0.0, 1.0, -5.0))
        app._on_disconnect(c)
    assert app.num_clients == 5
    before = [len(c.scene.images) for c in clients[5:]]
    app._mode.value = "alpha"  # a GUI change re-renders every remaining client
    assert _wait(lambda: all(len(c.scene.images) > b for c, b in zip(clients[5:], before)), 60)
    last = clients[5].scene.images[-1]
    assert set(np.unique(last)) <= {0, 255}  # the alpha mode of the analytic renderer
    renderers = list(app.renderers.values())
    assert all(r.alive for r in renderers) and all(r.errors == 0 for r in renderers)
