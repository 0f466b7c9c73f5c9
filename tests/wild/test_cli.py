"""recon train --wild / --appearance and recon eval on a wild run: NeRF-W scores, masks on disk, errors."""

from __future__ import annotations

import json

from recon.cli import main


def _train(out, *extra) -> int:
    return main(["train", "--data", "synthetic:wild-occluders", "--preset", "demo", "--iterations", "12",
                 "--checkpoint-every", "6", "--out", str(out), "--wild", "on", *extra])  # fmt: skip


def test_wild_run_evaluates_with_the_nerfw_protocol_and_saves_masks(tmp_path, capsys):
    out = tmp_path / "run"
    assert _train(out) == 0
    assert sorted(p.name for p in (out / "wild").iterdir())  # robust masks after the warm-up, as PNG
    capsys.readouterr()
    assert main(["eval", str(out), "--json", "--no-images"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["protocol"].startswith("nerf-w") and res["appearance"] == "mean"
    assert {"psnr", "ssim", "psnr_reference", "ssim_reference"} <= set(res["views"][0])
    assert main(["eval", str(out), "--json", "--no-images", "--appearance", "view_001.png"]) == 0
    assert json.loads(capsys.readouterr().out)["appearance"] == "view_001.png"


def test_unknown_reference_image_is_one_line_error(tmp_path, capsys):
    assert _train(tmp_path / "run", "--appearance", "nope.png") == 2
    err = capsys.readouterr().err
    assert "'nope.png' is not a training image" in err and "Traceback" not in err


def test_masks_option_must_be_a_folder(tmp_path, capsys):
    assert _train(tmp_path / "run", "--masks", str(tmp_path / "missing")) == 2
    assert "is not a folder" in capsys.readouterr().err
