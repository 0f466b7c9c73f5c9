"""Reference appearance in ``recon render --appearance`` and the viewer's Appearance dropdown."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from recon.cli import main
from recon.wild.appearance import IDENTITY
from tests.viewer.conftest import free_port, write_tiny_run

imageio = pytest.importorskip("imageio.v2")

GAIN = (0.5, 0.7, 0.9)


def _wild_run(tmp_path, appearance: bool = True):
    """The viewer's tiny run (train views 0-3.png) with a known per-view transform: gain ``GAIN`` on 1.png,
    identity on the others."""
    run = write_tiny_run(tmp_path / "run")
    if appearance:
        transforms = [IDENTITY.clone() for _ in range(4)]
        transforms[1][:, :3] = torch.diag(torch.tensor(GAIN))
        state = {"names": [f"{i}.png" for i in range(4)],
                 "appearance": {"model": "affine", "transforms": torch.stack(transforms).tolist(), "lr": 0.005,
                                "adam": [None] * 4}}  # fmt: skip
        ckpt = next((run / "checkpoints").glob("step_*.json"))
        data = json.loads(ckpt.read_text())
        data["extra"]["wild"] = state
        ckpt.write_text(json.dumps(data))
    return run


def _frames(run, monkeypatch, *extra: str) -> list[np.ndarray]:
    """The exact uint8 frames ``recon render`` hands its video writer (no codec in between)."""
    frames: list[np.ndarray] = []

    class Capture:
        def __init__(self, path, **_):
            self.path = path

        def append_data(self, frame):
            frames.append(np.array(frame))

        def close(self):
            self.path.write_bytes(b"frames")

    monkeypatch.setattr(imageio, "get_writer", Capture)
    out = run.parent / "video.gif"
    assert main(["render", str(run), "--path", "orbit", "--frames", "2", "--backend", "reference",
                 "--width", "32", "--height", "24", "--out", str(out), *extra]) == 0  # fmt: skip
    return frames


def test_render_in_a_training_images_appearance_scales_by_its_gain(tmp_path, monkeypatch):
    """Oracle: the render in an identity image's appearance times the known gain (uint8 rounding: <= 1 level)."""
    run = _wild_run(tmp_path)
    plain = _frames(run, monkeypatch, "--appearance", "0.png")
    gained = _frames(run, monkeypatch, "--appearance", "1.png")
    mean = _frames(run, monkeypatch)  # the run's wild.reference: mean
    for p, g, m in zip(plain, gained, mean, strict=True):
        assert p.std() > 10  # something is drawn
        assert np.abs(g - p * np.array(GAIN)).max() <= 1.0
        assert np.abs(m - p * (3 + np.array(GAIN)) / 4).max() <= 1.0


def test_render_appearance_errors_are_one_line(tmp_path, monkeypatch, capsys):
    run = _wild_run(tmp_path)
    out = str(tmp_path / "v.gif")
    assert main(["render", str(run), "--frames", "1", "--out", out, "--appearance", "nope.png"]) == 2
    err = capsys.readouterr().err
    assert "'nope.png' is not a training image" in err and "Traceback" not in err
    plain = write_tiny_run(tmp_path / "plain")
    assert main(["render", str(plain), "--frames", "1", "--out", out, "--appearance", "mean"]) == 2
    assert "--appearance needs a run trained with per-image appearance" in capsys.readouterr().err


def test_viewer_appearance_dropdown_drives_the_render_settings(tmp_path):
    pytest.importorskip("viser")
    from viewer.app import ViewerApp
    from viewer.cli import run_appearance, scene_context
    from viewer.loading import load_viewable

    viewable = load_viewable(_wild_run(tmp_path))
    lookup, reference = run_appearance(viewable, None)
    assert reference == "mean" and torch.equal(lookup("1.png")[:, :3], torch.diag(torch.tensor(GAIN)))
    context = scene_context(viewable, with_thumbnails=False)
    assert context.appearances == ["mean", "0.png", "1.png", "2.png", "3.png"] and context.appearance == "mean"
    context.appearance = "1.png"
    app = ViewerApp(lambda camera, settings: np.zeros((camera.height, camera.width, 3), np.uint8), context,
                    port=free_port(), verbose=False)  # fmt: skip
    try:
        assert app.settings().appearance == "1.png"
        app._appearance.value = "mean"
        assert app.settings().appearance == "mean"
    finally:
        app.stop()
