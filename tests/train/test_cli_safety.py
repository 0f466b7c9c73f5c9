"""`recon train/eval` never lose the user's files: --overwrite, failed starts, damaged checkpoints,
options checked before the scene loads."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from recon.cli import main
from recon.run import RUN_MARKER, load_checkpoint, load_run

FOX = Path("/work/shared/data/instant_ngp/fox")


def _scene(root: Path, views: int = 2, missing: int = 0) -> Path:
    """A tiny transforms.json scene; the last ``missing`` frames name images that do not exist."""
    root.mkdir()
    frames = []
    for i in range(views + missing):
        if i < views:
            Image.fromarray(np.full((12, 16, 3), 40 * i, np.uint8)).save(root / f"{i}.png")
        c2w = np.eye(4)
        c2w[0, 3] = i
        frames.append({"file_path": f"{i}.png", "transform_matrix": c2w.tolist()})
    meta = {"fl_x": 20.0, "fl_y": 20.0, "cx": 8.0, "cy": 6.0, "w": 16, "h": 12, "frames": frames}
    (root / "transforms.json").write_text(json.dumps(meta))
    return root


def _train(scene: Path, out: Path, *extra: str) -> int:
    return main(["train", "--data", str(scene), "--out", str(out), "--iterations", "2", "--init", "random", *extra])


def _error(capsys) -> str:
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, lines
    return lines[0]


def test_overwrite_never_deletes_the_scene_or_a_folder_recon_did_not_make(tmp_path, capsys):
    scene = _scene(tmp_path / "S")
    before = sorted(p.name for p in scene.iterdir())
    assert _train(scene, scene, "--overwrite") == 2  # cp -r SCENE S && recon train --data S --out S --overwrite
    assert "--data lies inside --out" in _error(capsys)
    assert _train(scene, tmp_path, "--overwrite") == 2  # the scene's parent
    assert "--data lies inside --out" in _error(capsys)
    other = tmp_path / "notes"
    other.mkdir()
    (other / "thesis.tex").write_text("x")
    assert _train(scene, other, "--overwrite") == 2
    assert "no .recon-run marker" in _error(capsys)
    assert sorted(p.name for p in scene.iterdir()) == before and (other / "thesis.tex").is_file()


def test_overwrite_replaces_a_run_recon_made(tmp_path, capsys):
    scene, out = _scene(tmp_path / "S"), tmp_path / "run"
    assert _train(scene, out) == 0
    assert (out / RUN_MARKER).is_file() and (out / "checkpoints" / "latest.json").is_file()
    (out / "stale.txt").write_text("from the old run")
    assert _train(scene, out) == 2 and "--overwrite" in _error(capsys)
    assert _train(scene, out, "--overwrite") == 0
    assert not (out / "stale.txt").exists() and (out / RUN_MARKER).is_file()


def test_out_naming_a_file_is_one_line(tmp_path, capsys):
    scene, out = _scene(tmp_path / "S"), tmp_path / "run.txt"
    out.write_text("keep me")
    assert _train(scene, out) == 2 and "--out is an existing file" in _error(capsys)
    assert _train(scene, out / "run") == 2 and "cannot create the run folder" in _error(capsys)
    assert out.read_text() == "keep me"


def test_a_failed_start_leaves_no_run_behind(tmp_path, capsys):
    scene, out = _scene(tmp_path / "S"), tmp_path / "run"
    assert _train(tmp_path / "nowhere", out) == 2
    _error(capsys)
    assert not out.exists()
    assert _train(scene, out, "--views", "3") == 2  # a bad split: after the scene loaded
    assert "--views 3" in _error(capsys) and not out.exists()
    empty = tmp_path / "empty"
    empty.mkdir()
    assert _train(scene, empty, "--views", "3") == 2
    _error(capsys)
    assert empty.is_dir() and not any(empty.iterdir())  # the user's empty folder stays, empty
    assert _train(scene, out) == 0  # the retry needs no --overwrite


@pytest.mark.parametrize(("option", "message"), [
    (["--init", "bogus"], "init.method (--init): unknown value 'bogus'"),
    (["--backend", "vulkan"], "backend (--backend): unknown value 'vulkan'"),
    (["--iterations", "-5"], "iterations (--iterations): -5 is not a positive"),
    (["--iterations", "0"], "iterations (--iterations): 0 is not a positive"),
])  # fmt: skip
def test_bad_options_are_rejected_before_the_scene_loads(tmp_path, capsys, option, message):
    out = tmp_path / "run"
    # the data path does not exist: the option must be reported first, and nothing written
    code = main(["train", "--data", str(tmp_path / "nowhere"), "--out", str(out), *option])
    assert code == 2 and message in _error(capsys) and not out.exists()


def test_resume_with_negative_iterations_is_rejected(tmp_path, capsys):
    scene, out = _scene(tmp_path / "S"), tmp_path / "run"
    assert _train(scene, out) == 0
    assert main(["train", "--resume", str(out), "--iterations", "-5"]) == 2
    assert "-5 is not a positive" in _error(capsys)


@pytest.fixture
def run_with_three_checkpoints(tmp_path):
    out = tmp_path / "run"
    args = ["train", "--data", "synthetic", "--preset", "demo", "--out", str(out), "--iterations", "3",
            "--checkpoint-every", "1"]
    assert main(args) == 0
    return out


def test_damaged_newest_checkpoint_falls_back_in_eval_and_resume(run_with_three_checkpoints, capsys, caplog):
    out = run_with_three_checkpoints
    ckpts = out / "checkpoints"
    expected = load_checkpoint(ckpts / "step_000002.json").params
    newest = ckpts / "step_000003.safetensors"
    newest.write_bytes(newest.read_bytes()[:100])  # truncated
    capsys.readouterr()
    assert main(["eval", str(out), "--json", "--no-images"]) == 0
    captured = capsys.readouterr()
    assert np.isfinite(json.loads(captured.out)["psnr"]) and "using step 2" in caplog.text  # a warning line
    caplog.clear()
    run = load_run(out)
    assert run.step == 2 and all(torch.equal(run.params[k], v) for k, v in expected.items())
    assert main(["eval", str(out), "--json", "--no-images", "--checkpoint", "3"]) == 2  # asked for: no fallback
    assert "cannot read the checkpoint" in _error(capsys)
    (ckpts / "latest.json").write_text("")
    assert main(["train", "--resume", str(out), "--iterations", "4"]) == 0
    assert "latest.json is unreadable" in caplog.text and "using step 2" in caplog.text
    assert json.loads((ckpts / "latest.json").read_text())["step"] == 4


def test_checkpoint_picks_the_step_to_resume_and_evaluate(run_with_three_checkpoints, capsys):
    out = run_with_three_checkpoints
    assert load_run(out, step=2).step == 2 and load_run(out).step == 3
    assert main(["eval", str(out), "--json", "--no-images", "--checkpoint", "7"]) == 2
    assert "no checkpoint at step 7" in _error(capsys)
    assert main(["train", "--resume", str(out), "--checkpoint", "2", "--iterations", "5"]) == 0
    assert load_run(out).step == 5
    assert main(["train", "--data", "synthetic", "--out", str(out / "x"), "--checkpoint", "2"]) == 2
    assert "--checkpoint needs --resume" in _error(capsys)


def test_skip_missing_is_accepted_by_train(tmp_path, capsys):
    scene = _scene(tmp_path / "S", views=3, missing=1)
    assert _train(scene, tmp_path / "a") == 2
    assert "--skip-missing" in _error(capsys)
    assert _train(scene, tmp_path / "b", "--skip-missing") == 0
    assert len(json.loads((tmp_path / "b" / "cameras.json").read_text())["names"]) == 3


@pytest.mark.skipif(not FOX.is_dir(), reason="instant-ngp fox scene not present")
def test_skip_missing_loads_the_shipped_fox_scene():
    from recon.config import DataConfig
    from recon.errors import DataError
    from recon.run import load_training_scene

    frames = len(json.loads((FOX / "transforms.json").read_text())["frames"])
    images = len(list((FOX / "images").iterdir()))
    assert images < frames  # the scene ships fewer images than its transforms.json names
    with pytest.raises(DataError, match="--skip-missing"):
        load_training_scene(DataConfig(path=str(FOX), downscale=8), verbose=False)
    scene = load_training_scene(DataConfig(path=str(FOX), downscale=8, skip_missing=True), verbose=False)
    assert len(scene) == images

