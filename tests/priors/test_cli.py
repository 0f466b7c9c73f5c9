"""`recon data sfm` / `recon data priors` end to end through the CLI dispatcher."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from recon.cli import main


def test_sfm_command_reports_too_few_photos(tmp_path, capsys):
    photos = tmp_path / "photos"
    photos.mkdir()
    Image.fromarray(np.zeros((8, 8, 3), dtype=np.uint8)).save(photos / "only.png")
    assert main(["data", "sfm", str(photos), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "at least 2 photos, found 1" in err and str(photos) in err
    assert not (tmp_path / "out").exists()


def test_priors_command_writes_hull_cloud_for_dtu(shared_data, tmp_path, capsys):
    o3d = pytest.importorskip("open3d")
    scene = shared_data / "dtu" / "scan24"
    out = tmp_path / "run"
    assert main(["data", "priors", str(scene), "--out", str(out), "--method", "hull", "--views", "3"]) == 0
    printed = capsys.readouterr().out
    info = json.loads(printed[printed.index("{"):])
    assert info["train_views"] == ["images_4/000025.png", "images_4/000022.png", "images_4/000028.png"]
    meta = json.loads((out / "priors" / "depths.json").read_text())
    assert meta["points"]["source"] == "hull" and meta["maps"] == []
    pcd = o3d.io.read_point_cloud(str(out / "priors" / "points.ply"))
    pts = np.asarray(pcd.points)
    assert len(pts) == meta["points"]["count"] > 1000
    # The DTU object sits inside the unit sphere of its scale matrix: check against it.
    cams = np.load(scene / "cameras_sphere.npz")
    S = cams["scale_mat_0"]
    unit = (pts - S[:3, 3]) / S[0, 0]
    assert np.median(np.linalg.norm(unit, axis=1)) < 1.0


def test_sfm_command_passes_the_matcher_and_seed_train_uses(tmp_path, monkeypatch):
    """`recon data sfm` defaults to the matcher `recon train` uses (auto) and forwards --seed."""
    from recon.priors import sfm

    seen = {}

    def fake_run_sfm(photos, out, matcher, **kw):
        seen.update(matcher=matcher, **kw)
        raise sfm.ReconError("stop here")

    monkeypatch.setattr(sfm, "run_sfm", fake_run_sfm)
    photos = tmp_path / "p"
    photos.mkdir()
    assert main(["data", "sfm", str(photos), "--out", str(tmp_path / "o"), "--seed", "7"]) == 2
    assert seen["matcher"] == "auto" and seen["seed"] == 7


def test_sfm_cache_key_changes_with_the_cache_version(tmp_path, monkeypatch):
    """A model cached by an older SfM (e.g. before EXIF orientation was applied) is not reused."""
    from recon.priors import sfm

    (tmp_path / "a.jpg").write_bytes(b"pixels")
    key = sfm.photos_hash(tmp_path, ["a.jpg"])
    assert key == sfm.photos_hash(tmp_path, ["a.jpg"])
    monkeypatch.setattr(sfm, "SFM_CACHE_VERSION", sfm.SFM_CACHE_VERSION + 1)
    assert sfm.photos_hash(tmp_path, ["a.jpg"]) != key
    (tmp_path / "a.jpg").write_bytes(b"other pixels")
    assert sfm.photos_hash(tmp_path, ["a.jpg"]) != key
