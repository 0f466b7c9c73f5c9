"""Per-client render threads: latest request wins, preview then full resolution, failures contained."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
from .fakes import FakeClient

from viewer.cameras import ViewPose, pose_to_cameras
from viewer.client import ClientRenderer, RenderBudget
from viewer.render import RenderSettings


def _wait(cond, timeout=10.0) -> bool:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if cond():
            return True
        time.sleep(0.01)
    return False


def _renderer(client, render_fn, max_res=128, **kw):
    r = ClientRenderer(client, render_fn, lambda: RenderSettings(), lambda: max_res,
                       RenderBudget(kw.pop("fraction", 1.0)), **kw)
    client.camera.on_update(lambda _cam: r.camera_moved())
    return r


def test_preview_then_full_resolution(sphere_render_fn):
    client = FakeClient(width=160, height=120)
    r = _renderer(client, sphere_render_fn, max_res=128, preview_scale=0.25, still_delay=0.1)
    try:
        r.camera_moved()
        assert _wait(lambda: len(client.scene.images) >= 2)
        preview, full = client.scene.images[:2]
        assert preview.shape == (24, 32, 3) and full.shape == (96, 128, 3)
        # The full image is exactly the render of the client's camera at that size.
        cam = client.camera
        expected = sphere_render_fn(pose_to_cameras(ViewPose(cam.wxyz, cam.position, cam.fov), 128, 96),
                                    RenderSettings())
        np.testing.assert_array_equal(full, expected)
        time.sleep(0.3)
        assert len(client.scene.images) == 2  # nothing more until the camera moves again
    finally:
        r.stop(timeout=5)


def test_burst_of_moves_renders_latest_only(sphere_render_fn):
    calls = []
    gate = threading.Event()

    def slow_fn(camera, settings):
        calls.append(camera.centers[0].numpy().copy())
        gate.wait(5)
        return sphere_render_fn(camera, settings)

    client = FakeClient()
    r = _renderer(client, slow_fn, still_delay=0.05)
    try:
        client.move((0.0, 0.0, -4.0))
        assert _wait(lambda: len(calls) == 1)
        for k in range(100):  # the user keeps dragging while the first render runs
            client.move((np.sin(k / 10), 0.0, -4.0 - k / 100))
        gate.set()
        assert _wait(lambda: len(client.scene.images) >= 3)
        time.sleep(0.3)
        # 1 in-flight preview, then 1 preview and 1 full of the latest pose: no queue build-up.
        assert len(calls) == 3
        np.testing.assert_allclose(calls[-1], client.camera.position, atol=1e-5)
        assert client.scene.images[-1].shape[1] == 128
    finally:
        r.stop(timeout=5)


def test_render_errors_and_disconnects_are_contained(sphere_render_fn):
    fail = {"on": True}

    def flaky(camera, settings):
        if fail["on"]:
            raise RuntimeError("corrupt parameters")
        return sphere_render_fn(camera, settings)

    client = FakeClient()
    r = _renderer(client, flaky, still_delay=0.02)
    try:
        client.move((0.0, 1.0, -4.0))
        assert _wait(lambda: r.errors >= 2)
        assert r.alive and "corrupt parameters" in r.last_error
        fail["on"] = False
        client.move((0.0, 0.5, -4.0))
        assert _wait(lambda: len(client.scene.images) >= 2)
    finally:
        r.stop(timeout=5)

    gone = FakeClient(fail=True)  # the socket closed: sending the image raises
    r = _renderer(gone, sphere_render_fn, still_delay=0.02)
    try:
        gone.move((1.0, 0.0, -4.0))
        assert _wait(lambda: r.errors >= 1) and r.alive
    finally:
        r.stop(timeout=5)
    assert not r.alive


def test_wrong_image_shape_is_reported():
    client = FakeClient()
    r = _renderer(client, lambda cam, s: np.zeros((4, 4, 3), np.uint8), still_delay=0.02)
    try:
        client.move((0.0, 0.0, -3.0))
        assert _wait(lambda: r.errors >= 1)
        assert "uint8 image" in r.last_error
    finally:
        r.stop(timeout=5)


def test_budget_caps_render_time_fraction():
    budget = RenderBudget(0.25)
    stop = threading.Event()

    def work():
        time.sleep(0.02)
        return np.zeros(1)

    t0 = time.perf_counter()
    for _ in range(8):
        budget.run(work, stop)
    wall = time.perf_counter() - t0
    # 7 gaps of 3x the render time between 8 renders of 20 ms: >= 0.58 s in all.
    assert budget.busy_seconds / wall <= 0.3
    assert wall >= 0.5
    with pytest.raises(ValueError):
        RenderBudget(0.0)
