"""The live viewer: reads a TrainingState, pauses training, re-renders when the step advances."""

from __future__ import annotations

import time

import pytest

from .conftest import free_port
from .fakes import FakeClient

pytest.importorskip("viser")

from recon.train.state import TrainingState
from viewer.live import describe_state, start_live_viewer


def _wait(cond, timeout=20.0) -> bool:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if cond():
            return True
        time.sleep(0.02)
    return False


def test_describe_state():
    state = TrainingState(step=120, iterations=3000, losses={"l1": 0.0512, "ssim": 0.2},
                          num_primitives=12345, psnr=21.456)
    text = describe_state(state)
    for piece in ("120 / 3000", "12,345", "0.0512", "21.46 dB"):
        assert piece in text
    assert "paused" not in text
    state.paused = True
    assert "paused" in describe_state(state)


def test_live_viewer_pause_and_refresh(sphere_render_fn):
    state = TrainingState(step=0, iterations=10, num_primitives=5)
    live = start_live_viewer(sphere_render_fn, state, port=free_port(), refresh_seconds=0.05,
                             render_fraction=0.5, verbose=False)
    try:
        assert live.url.startswith("http://127.0.0.1:")
        client = FakeClient()
        live.app._on_connect(client)
        assert _wait(lambda: len(client.scene.images) >= 2)
        time.sleep(0.3)
        n = len(client.scene.images)
        assert live.toggle_pause() is True and state.paused
        assert live._pause.label == "Resume training"
        assert not live.toggle_pause() and not state.paused
        state.step = 5  # the trainer advanced: the client sees a fresh render
        assert _wait(lambda: len(client.scene.images) > n)
        assert "**step** 5 / 10" in live._stats.content
        state.paused = True  # paused by someone else: the button follows
        assert _wait(lambda: live._pause.label == "Resume training")
    finally:
        live.close()
    assert not live._thread.is_alive()


def test_live_viewer_shows_a_long_stage_inside_a_step(sphere_render_fn):
    state = TrainingState(step=3, iterations=10)
    assert "repair" not in describe_state(state)
    live = start_live_viewer(sphere_render_fn, state, port=free_port(), refresh_seconds=0.05, verbose=False)
    try:
        state.activity = "repair: fitting the fixer, step 10/100"  # the step does not advance meanwhile
        assert _wait(lambda: "fitting the fixer, step 10/100" in live._stats.content)
        client = FakeClient()
        live.app._on_connect(client)  # a client joining during the stage still gets the scene
        assert _wait(lambda: len(client.scene.images) >= 1)
        state.activity = ""
        assert _wait(lambda: "fitting" not in live._stats.content)
    finally:
        live.close()
