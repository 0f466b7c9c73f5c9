"""`recon repair pairs|fit|apply RUN` on a tiny run."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("diffusers")

from recon.cli import main
from recon.repair.fixer import Fixer, FixerConfig
from recon.run import load_run, load_run_scene
from tests.repair.tiny_run import train_tiny_run


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    return train_tiny_run(tmp_path_factory.mktemp("run"))


def test_pairs_fit_apply(run_dir, capsys):
    assert main(["repair", "pairs", str(run_dir), "--held-out", "2", "--noise-per-view", "1"]) == 0
    manifest = json.loads((run_dir / "repair" / "pairs" / "manifest.json").read_text())
    assert len(manifest["pairs"]) == 2 * 3 + len(manifest["train_views"])  # 3 renders per sub-run + noise
    assert main(["repair", "fit", str(run_dir), "--steps", "3", "--channels", "8", "--crop", "16"]) == 0
    err = " ".join(capsys.readouterr().err.split())
    gate = json.loads((run_dir / "repair" / "gate.json").read_text())
    assert gate["reason"] in err and (run_dir / "repair" / "model" / "recon_fixer.json").is_file()
    assert main(["repair", "apply", str(run_dir)]) == 0  # the test views, with the fitted fixer
    rows = json.loads((run_dir / "repair" / "apply" / "apply.json").read_text())["views"]
    assert [r["view"] for r in rows] == json.loads((run_dir / "cameras.json").read_text())["split"]["test"]


def test_apply_writes_render_repaired_photo_side_by_side(run_dir, tmp_path, capsys):
    Fixer.create(FixerConfig(channels=(8, 16), norm_groups=8)).save_pretrained(tmp_path / "identity")
    out = tmp_path / "apply"
    assert main(["repair", "apply", str(run_dir), "--views", "0", "1", "--model", str(tmp_path / "identity"),
                 "--out", str(out)]) == 0
    assert "PSNR" in capsys.readouterr().out
    run = load_run(run_dir)
    scene = load_run_scene(run)
    rows = json.loads((out / "apply.json").read_text())["views"]
    assert [r["view"] for r in rows] == [0, 1]
    for row in rows:
        tile = np.asarray(Image.open(row["file"])).astype(np.float32) / 255  # [H, 3W, 3]
        w = scene.images[row["view"]].shape[1]
        render, repaired, photo = tile[:, :w], tile[:, w : 2 * w], tile[:, 2 * w :]
        assert np.abs(repaired - render).max() <= 1 / 255 + 1e-6  # a zero-initialised fixer is the identity
        assert np.abs(photo - scene.images[row["view"]].numpy()).max() <= 0.5 / 255 + 1e-6
        assert row["psnr_repaired"] == pytest.approx(row["psnr_render"], abs=1e-3)
    with pytest.raises(SystemExit):
        main(["repair", "apply", str(run_dir), "--views", "x"])
    assert main(["repair", "apply", str(run_dir), "--views", "99", "--model", str(tmp_path / "identity")]) == 2
    assert "--views 99" in capsys.readouterr().err
