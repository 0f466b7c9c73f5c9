"""``recon render RUN --repair [PATH]`` and the viewer's ``repaired`` mode on a tiny trained run."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from .conftest import free_port

pytest.importorskip("diffusers")
imageio = pytest.importorskip("imageio.v2")
pytest.importorskip("imageio_ffmpeg")

from recon.cli import main
from recon.repair.fixer import Fixer, FixerConfig
from tests.repair.tiny_run import train_tiny_run
from viewer.cli import load_repair
from viewer.loading import Viewable, load_viewable
from viewer.render import REPAIRED


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    return train_tiny_run(tmp_path_factory.mktemp("run"))


def _fixer(bias: float | None = None) -> Fixer:
    fixer = Fixer.create(FixerConfig(channels=(8, 16), norm_groups=8))  # zero output convolution = identity
    if bias is not None:
        with torch.no_grad():
            fixer.unet.conv_out.bias.fill_(bias)
    return fixer


def _render(run_dir, out, *extra: str) -> int:
    return main(["render", str(run_dir), "--path", "orbit", "--frames", "3", "--out", str(out), *extra])


def _errors(capsys) -> list[str]:
    return [line for line in capsys.readouterr().err.splitlines() if line.strip()]


def test_no_model_and_bad_paths_are_one_line_errors(run_dir, tmp_path, capsys):
    out = tmp_path / "v.mp4"
    assert _render(run_dir, out, "--repair") == 2
    [line] = _errors(capsys)
    assert "the run has no repair model" in line and "recon repair fit RUN" in line and not out.exists()
    assert _render(run_dir, out, "--repair", str(tmp_path / "missing")) == 2
    [line] = _errors(capsys)
    assert "missing: repair model folder not found" in line and not out.exists()
    (tmp_path / "empty").mkdir()
    assert _render(run_dir, out, "--repair", str(tmp_path / "empty"), "--fps", "10") == 2
    [line] = _errors(capsys)
    assert "not a diffusers folder" in line and not out.exists()
    assert _render(run_dir, out, "--repair", "--mode", "depth") == 2
    [line] = _errors(capsys)
    assert "--repair repairs RGB frames, not --mode depth" in line


def test_identity_fixer_video_equals_the_plain_one_and_a_bias_shifts_it(run_dir, tmp_path):
    assert _render(run_dir, tmp_path / "plain.mp4") == 0
    plain = np.stack(imageio.mimread(tmp_path / "plain.mp4")).astype(float)  # [F, H, W, 3]
    _fixer().save_pretrained(run_dir / "repair" / "model")  # the run's own model: `--repair` alone
    try:
        assert _render(run_dir, tmp_path / "same.mp4", "--repair") == 0
    finally:
        import shutil

        shutil.rmtree(run_dir / "repair")
    same = np.stack(imageio.mimread(tmp_path / "same.mp4")).astype(float)
    assert same.shape == plain.shape and np.abs(same - plain).mean() < 0.5
    _fixer(0.2).save_pretrained(tmp_path / "brighter")  # +0.2 in [-1, 1] = +0.1 in [0, 1] = +25.5 levels
    assert _render(run_dir, tmp_path / "brighter.mp4", "--repair", str(tmp_path / "brighter")) == 0
    brighter = np.stack(imageio.mimread(tmp_path / "brighter.mp4")).astype(float)
    expected = np.clip(plain + 25.5, 0, 255)
    assert np.abs(brighter - expected).mean() < 2.0 < np.abs(brighter - plain).mean()


def test_the_repaired_mode_is_listed_only_with_a_model(run_dir, tmp_path, capsys):
    pytest.importorskip("viser")
    from viewer.app import ViewerApp

    viewable = load_viewable(run_dir)
    assert load_repair(viewable, None, required=False) is None  # no RUN/repair/model
    _fixer().save_pretrained(tmp_path / "model")
    repair = load_repair(viewable, tmp_path / "model", required=False)
    assert repair is not None and len(repair.photos) == len(viewable.run.split.train)
    for modes, listed in (((), False), ((REPAIRED,), True)):
        app = ViewerApp(lambda cam, settings: np.zeros((cam.height, cam.width, 3), np.uint8), port=free_port(),
                        verbose=False, modes=("rgb", "depth", "alpha", "density", *modes))
        try:
            assert (REPAIRED in app._mode.options) is listed
        finally:
            app.stop()
    with pytest.raises(Exception, match="not found"):
        load_repair(viewable, tmp_path / "missing", required=False)  # an explicit folder must load
    ply = Viewable(sets=viewable.sets)  # what a PLY loads as: no run, no photos
    assert load_repair(ply, None, required=False) is None
    with pytest.raises(Exception, match="--repair needs a run directory"):
        load_repair(ply, tmp_path / "model", required=False)
