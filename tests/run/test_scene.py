"""A run carries its cameras: `recon eval` reads the run's own cameras and images, never a new SfM."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from recon.cli import main
from recon.errors import DataError
from recon.run import load_run, load_run_scene
from tests.train.photo_scenes import photo_folder, posed_scene

pytest.importorskip("pycolmap")


@pytest.fixture(scope="module")
def photo_run(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("photo_run")
    photos = photo_folder(tmp / "photos")
    run = tmp / "run"
    assert main(["train", "--data", str(photos), "--out", str(run), "--iterations", "3", "--init", "random",
                 "--sparse", "False"]) == 0
    return run


def test_eval_of_a_photo_folder_run_uses_the_training_cameras_without_sfm(photo_run, tmp_path, monkeypatch, capsys):
    from recon.priors import sfm

    run = tmp_path / "run"
    shutil.copytree(photo_run, run)
    record = json.loads((run / "cameras.json").read_text())
    assert record["sfm_dir"].startswith("sfm/")  # the SfM model stays in the run
    monkeypatch.setattr(sfm, "run_sfm", lambda *a, **k: pytest.fail("eval ran structure from motion"))
    loaded = load_run(run)
    scene = load_run_scene(loaded)
    assert scene.names == record["names"]
    torch.testing.assert_close(scene.cameras.viewmats, torch.tensor(record["viewmats"], dtype=scene.cameras.viewmats.dtype))
    torch.testing.assert_close(scene.cameras.Ks, torch.tensor(record["Ks"], dtype=scene.cameras.Ks.dtype))
    # the images are the undistorted ones SfM wrote into the run, as trained on
    for name, im in zip(scene.names, scene.images):
        ref = np.asarray(Image.open(run / record["sfm_dir"] / "images" / name).convert("RGB"), np.float32) / 255
        np.testing.assert_array_equal(im.numpy(), ref)
    assert main(["eval", str(run), "--json", "--no-images"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert [v["name"] for v in res["views"]] == [record["names"][i] for i in record["split"]["test"]]
    assert np.isfinite(res["psnr"])


def test_eval_refuses_an_image_that_changed_since_training(photo_run, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(photo_run, run)
    record = json.loads((run / "cameras.json").read_text())
    name = record["names"][0]
    path = run / record["sfm_dir"] / "images" / name
    arr = np.asarray(Image.open(path).convert("RGB")).copy()
    arr[:10, :10] = 255 - arr[:10, :10]
    Image.fromarray(arr).save(path)
    with pytest.raises(DataError, match=f"1 images differ from those the run was trained on: {name}"):
        load_run_scene(load_run(run))
    assert main(["eval", str(run), "--no-images"]) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and name in err[0]


def test_eval_of_a_posed_scene_checks_its_images(tmp_path, capsys):
    root = posed_scene(tmp_path / "scene", num_views=4, width=48, height=36)
    run = tmp_path / "run"
    assert main(["train", "--data", str(root), "--out", str(run), "--iterations", "2", "--init", "random",
                 "--sparse", "False", "--protocol", "generic"]) == 0
    scene = load_run_scene(load_run(run))
    assert scene.names == [f"{i:03d}.png" for i in range(4)]
    Image.fromarray(np.zeros((36, 48, 3), np.uint8)).save(root / "002.png")
    assert main(["eval", str(run), "--no-images"]) == 2
    assert "002.png" in capsys.readouterr().err


def test_resume_of_a_downscaled_photo_folder_run_keeps_its_cameras_when_the_photos_change(tmp_path, monkeypatch):
    from recon.priors import sfm

    photos = photo_folder(tmp_path / "photos")
    run = tmp_path / "run"
    assert main(["train", "--data", str(photos), "--out", str(run), "--iterations", "2", "--init", "random",
                 "--sparse", "False", "--downscale", "2"]) == 0
    before = json.loads((run / "cameras.json").read_text())
    assert max(before["widths"]) <= 80  # trained at --downscale 2 (the photos are 160 wide)
    arr = np.asarray(Image.open(photos / "003.png")).copy()
    Image.fromarray(255 - arr).save(photos / "003.png")  # a new SfM cache key: resuming must not notice
    monkeypatch.setattr(sfm, "run_sfm", lambda *a, **k: pytest.fail("resume ran structure from motion"))
    assert main(["train", "--resume", str(run), "--iterations", "4"]) == 0
    assert load_run(run).step == 4
    assert json.loads((run / "cameras.json").read_text()) == before


def test_photo_folder_downscale_applies_to_the_sfm_images_and_cameras(photo_run):
    from recon.config import DataConfig
    from recon.data.images import downscale_array
    from recon.run import load_training_scene

    record = json.loads((photo_run / "cameras.json").read_text())
    photos = load_run(photo_run).config.data.path
    half = load_training_scene(DataConfig(path=photos, downscale=2), photo_run, verbose=False)  # SfM cached in the run
    ref = np.asarray(Image.open(photo_run / record["sfm_dir"] / "images" / half.names[0]).convert("RGB"), np.float32)
    expected = downscale_array(torch.from_numpy(ref / 255), 2)  # the loaders' box filter on the SfM image
    torch.testing.assert_close(half.images[0], expected)
    assert int(half.cameras.widths[0]) == expected.shape[1] and int(half.cameras.heights[0]) == expected.shape[0]
    K = torch.tensor(record["Ks"][record["names"].index(half.names[0])], dtype=half.cameras.Ks.dtype)
    torch.testing.assert_close(half.cameras.Ks[0, :2], K[:2] / 2)
