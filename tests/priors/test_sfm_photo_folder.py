"""Photo folders into training: the ``scene/images/`` layout and EXIF-rotated phone photos.

SfM runs for real (pycolmap) on four ray-cast views of a textured sphere (about 2 s each).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageOps

from recon.cli import main
from recon.config import DataConfig
from recon.data.formats import load_scene
from recon.data.images import image_size, read_image, upright_folder
from recon.run import load_training_scene

from .synthetic_views import make_views

pycolmap = pytest.importorskip("pycolmap")

# EXIF orientation 6 = "rotate 90 degrees clockwise to display": the file stores the upright
# picture turned 90 degrees counter-clockwise (np.rot90 with k=1).
_ROTATE_CW = 6


def _write_photos(folder: Path, orientation: int = 1) -> list[np.ndarray]:
    """Four 200x150 upright views as JPEGs, stored turned when ``orientation`` is 6."""
    folder.mkdir(parents=True)
    images, _, _, _ = make_views(4, 200, 150, arc_deg=40)
    upright = [(im.numpy() * 255).round().astype(np.uint8) for im in images]
    for i, img in enumerate(upright):
        exif = Image.Exif()
        stored = img
        if orientation == _ROTATE_CW:
            exif[274] = _ROTATE_CW
            stored = np.ascontiguousarray(np.rot90(img, k=1))
        Image.fromarray(stored).save(folder / f"view_{i}.jpg", quality=95, exif=exif)
    return upright


def test_images_subfolder_layout_trains(tmp_path: Path):
    scene_dir = tmp_path / "scene"
    _write_photos(scene_dir / "images")
    scene = load_training_scene(DataConfig(path=str(scene_dir)), tmp_path / "run", verbose=False)
    assert scene.has_poses and len(scene) == 4
    assert scene.names == [f"view_{i}.jpg" for i in range(4)]
    assert scene.num_points > 10
    for img, w, h in zip(scene.images, scene.cameras.widths, scene.cameras.heights):
        assert tuple(img.shape[:2]) == (int(h), int(w))


def test_sfm_command_finds_the_images_subfolder(tmp_path: Path, capsys):
    _write_photos(tmp_path / "scene" / "images")
    assert main(["data", "sfm", str(tmp_path / "scene"), "--out", str(tmp_path / "out")]) == 0
    assert "registered 4/4 images" in capsys.readouterr().out
    assert load_scene(tmp_path / "out", verbose=False).has_poses


def test_sfm_sees_photos_upright_like_the_loader(tmp_path: Path):
    photos = tmp_path / "phone" / "images"
    upright = _write_photos(photos, orientation=_ROTATE_CW)
    assert Image.open(photos / "view_0.jpg").size == (150, 200)  # stored portrait
    loaded = load_scene(tmp_path / "phone", verbose=False)
    assert [tuple(im.shape[:2]) for im in loaded.images] == [(150, 200)] * 4  # shown landscape
    assert float(np.abs(loaded.images[0].numpy() * 255 - upright[0]).mean()) < 4  # JPEG noise only
    posed = load_training_scene(DataConfig(path=str(tmp_path / "phone")), tmp_path / "run", verbose=False)
    assert len(posed) == 4
    # SfM's own (distorted) cameras have the loader's sizes; undistortion may crop a pixel.
    (out,) = [p for p in (tmp_path / "run").rglob("sfm-*") if p.is_dir()]  # the SfM cache
    raw = pycolmap.Reconstruction(str(out / "distorted" / "sparse" / "0"))
    assert {(c.width, c.height) for c in raw.cameras.values()} == {(200, 150)}
    assert all(w > h for w, h in zip(posed.cameras.widths.tolist(), posed.cameras.heights.tolist()))
    for img, w, h in zip(posed.images, posed.cameras.widths, posed.cameras.heights):
        assert tuple(img.shape[:2]) == (int(h), int(w))
    assert not (out / "upright").exists()  # the turned copies are a work folder only


@pytest.mark.parametrize("orientation", range(1, 9))
def test_upright_copies_match_the_loader(tmp_path: Path, orientation: int):
    rng = np.random.default_rng(orientation)
    src = tmp_path / "src"
    src.mkdir()
    exif = Image.Exif()
    exif[274] = orientation
    exif[0x010F] = "TestMake"  # kept in the copy (COLMAP reads camera EXIF for its focal prior)
    smooth = Image.fromarray(rng.integers(0, 256, (6, 10, 3), dtype=np.uint8)).resize((40, 24), Image.BILINEAR)
    smooth.save(src / "a.jpg", exif=exif, quality=100)  # stored 40x24, shown 24x40 for 5..8
    smooth.transpose(Image.Transpose.ROTATE_90).save(src / "b.jpg", quality=100)
    out = upright_folder(src, ["a.jpg", "b.jpg"], tmp_path / "work")
    if orientation == 1:
        assert out == src  # nothing to turn: no copies
        return
    # Oracle: Pillow's own EXIF transpose of the original file.
    expected = np.asarray(ImageOps.exif_transpose(Image.open(src / "a.jpg")), dtype=np.float32) / 255
    rgb, _ = read_image(src / "a.jpg")
    np.testing.assert_array_equal(rgb.numpy(), expected)
    assert image_size(src / "a.jpg") == expected.shape[1::-1]
    with Image.open(out / "a.jpg") as copy:
        assert copy.size == expected.shape[1::-1]
        assert copy.getexif().get(274, 1) == 1 and copy.getexif().get(0x010F) == "TestMake"
        assert np.abs(np.asarray(copy, dtype=np.float32) / 255 - expected).mean() < 0.02
    assert (out / "b.jpg").read_bytes() == (src / "b.jpg").read_bytes()
