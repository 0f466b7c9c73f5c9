"""`recon train --viewer`: the top-level command attaches the live viewer through the trainer's start hook."""

from __future__ import annotations

import numpy as np
import pytest

from recon.cli import main
from recon.config import load_preset, override
from recon.errors import ConfigError
from recon.train import cli as train_cli

viewer_live = pytest.importorskip("viewer.live")  # needs viser (recon[viewer])


@pytest.fixture
def started(monkeypatch) -> dict:
    """What the live viewer was started with (nothing is served)."""
    calls = {}
    monkeypatch.setattr(viewer_live, "start_live_viewer",
                        lambda render_fn, state, **kw: calls.update(fn=render_fn, state=state, n=calls.get("n", 0) + 1, **kw))  # fmt: skip
    return calls


def test_attached_viewer_gets_a_render_fn_and_scene_context(tmp_path, started):
    """The hook hands the viewer a render function (uint8 images in every mode) and the scene."""
    from recon.app.train import attach_live_viewer
    from recon.render import render
    from viewer.render import RenderSettings

    config = override(load_preset("demo"), **{"data.path": train_cli.SYNTHETIC, "iterations": 2})
    out = tmp_path / "run"
    out.mkdir()
    trainer, _ = train_cli.run_training(config, out, quiet=True, on_start=[attach_live_viewer])
    assert started["state"] is trainer.state and started["n"] == 1
    scene = started["scene"]
    assert len(scene.thumbnails) == len(trainer.scene) and scene.points.shape[1] == 3
    assert scene.split["train"] == list(trainer.split.train)
    cam = trainer.scene.cameras[[0]]
    rgb = started["fn"](cam, RenderSettings(mode="rgb"))
    assert rgb.dtype == np.uint8 and rgb.shape == (cam.height, cam.width, 3)
    # the viewer's RGB equals the engine's render of the same parameters
    expected = render(config.primitive, trainer.params, cam, sh_degree=trainer.sh_degree(trainer.step),
                      backgrounds=trainer.background.reshape(1, 3)).rgb[0].clamp(0, 1).detach().numpy()  # fmt: skip
    assert np.abs(rgb.astype(np.float64) / 255 - expected).max() <= 1.5 / 255
    for mode in ("depth", "alpha", "density"):
        assert started["fn"](cam, RenderSettings(mode=mode)).dtype == np.uint8


def test_start_hooks_run_once_in_order_before_the_first_step(tmp_path):
    config = override(load_preset("demo"), **{"data.path": train_cli.SYNTHETIC, "iterations": 1})
    seen = []
    hooks = [lambda t, c: seen.append(("a", t.step, c.source)), lambda t, c: seen.append(("b", t.step, c.source))]
    out = tmp_path / "run"
    out.mkdir()
    train_cli.run_training(config, out, quiet=True, on_start=hooks)
    assert seen == [("a", 0, "scene"), ("b", 0, "scene")]


def test_recon_train_viewer_serves_the_live_viewer(tmp_path, started):
    out = tmp_path / "run"
    args = ["train", "--data", "synthetic", "--preset", "demo", "--iterations", "1", "--out", str(out)]
    assert main(args) == 0 and "n" not in started  # no --viewer: no viewer
    assert main([*args, "--overwrite", "--viewer"]) == 0
    assert started["n"] == 1 and started["state"].step == 1  # the state it was handed is the training's
    assert len(started["scene"].names) == len(started["scene"].thumbnails) > 0 and started["scene"].split["train"]


def test_the_trainer_command_alone_refuses_viewer(tmp_path):
    """recon.train.cli has no viewer of its own: without the top-level hook --viewer is an error, not ignored."""
    with pytest.raises(ConfigError, match="--viewer"):
        train_cli.train_main(["--data", "synthetic", "--preset", "demo", "--out", str(tmp_path / "r"), "--viewer"])
    assert not (tmp_path / "r").exists()
