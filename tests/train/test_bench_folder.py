"""scripts/bench_folder.py in small: a posed scene and its photos as a plain folder, end to end."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from .photo_scenes import posed_scene
from .scripts import load_script

pytest.importorskip("pycolmap")


def _bench():
    return load_script("bench_folder")


def test_photo_folder_and_posed_runs_score_the_same_test_images(tmp_path):
    scene = posed_scene(tmp_path / "scene")
    report = _bench().compare_folder(scene, tmp_path / "work", iterations=3, test_every=4,
                                     overrides={"init.method": "random", "sparse.enabled": False})
    # the folder holds the same pixels without the poses
    photos = sorted((tmp_path / "work" / "photos").iterdir())
    assert [p.name for p in photos] == sorted(p.name for p in scene.glob("*.png"))
    assert not (tmp_path / "work" / "photos" / "transforms.json").exists()
    for p in photos:
        np.testing.assert_array_equal(np.asarray(Image.open(p)), np.asarray(Image.open(scene / p.name)))
    assert (report.registered, report.photos) == (8, 8)
    assert report.same_test_names and report.posed.test_names == ["000", "004"]  # llff: every 4th of the sorted names
    assert np.isfinite(report.posed.psnr) and np.isfinite(report.folder.psnr)
    # each run is scored against its own cameras: the folder run's are SfM's, kept in the run
    cams = json.loads((tmp_path / "work" / "run_folder" / "cameras.json").read_text())
    assert cams["sfm_dir"].startswith("sfm/") and report.sfm_cpu_s > 0
