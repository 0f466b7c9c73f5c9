"""SfM on a photo folder (pycolmap) and triangulation on known poses."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from recon.data.scene import SceneData
from recon.errors import DataError
from recon.priors import sfm as sfm_mod
from recon.priors.sfm import check_photos, ensure_poses, run_sfm

from .synthetic_views import make_views

pycolmap = pytest.importorskip("pycolmap")


def _noise_png(path: Path, size=(64, 48), seed=0) -> None:
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)).save(path)


def test_bad_photo_sets(tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    _noise_png(photos / "a.png")
    with pytest.raises(DataError, match="at least 2 photos"):
        run_sfm(photos, tmp_path / "out")
    shutil.copy(photos / "a.png", photos / "b.png")
    with pytest.raises(DataError, match="duplicate photos.*b.png = a.png"):
        run_sfm(photos, tmp_path / "out")
    (photos / "b.png").write_bytes(b"not an image")
    with pytest.raises(DataError, match="b.png: cannot read image"):
        run_sfm(photos, tmp_path / "out")
    _noise_png(photos / "b.png", size=(80, 60), seed=1)
    _noise_png(photos / "c.png", size=(64, 48), seed=2)
    assert check_photos(photos, ["a.png", "b.png", "c.png"]) == {(64, 48): ["a.png", "c.png"], (80, 60): ["b.png"]}
    assert not (tmp_path / "out").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["photos"]  # no temp folder left


def _umeyama_error(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Residuals of the best similarity a -> b (independent closed form, Umeyama 1991)."""
    mu_a, mu_b = a.mean(0), b.mean(0)
    U, S, Vt = np.linalg.svd((b - mu_b).T @ (a - mu_a))
    D = np.diag([1, 1, np.sign(np.linalg.det(U @ Vt))])
    R = U @ D @ Vt
    s = np.trace(np.diag(S) @ D) / ((a - mu_a) ** 2).sum()
    return np.linalg.norm((s * (R @ (a - mu_a).T)).T + mu_b - b, axis=1)


def test_lund_door_photos_register_and_match_ground_truth(shared_data, tmp_path, monkeypatch):
    root = shared_data / "gtsfm_lund_door" / "set1_lund_door"
    photos = tmp_path / "photos"
    photos.mkdir()
    names = ["DSC_0001.JPG", "DSC_0002.JPG", "DSC_0003.JPG", "DSC_0004.JPG"]
    for n in names:  # downscaled copies keep the test fast
        Image.open(root / "images" / n).reduce(4).save(photos / n, quality=95)
    Image.new("RGB", (324, 484), (128, 128, 128)).save(photos / "flat.png")  # textureless

    with pytest.raises(DataError, match=r"registered only 4 of 5.*flat.png: only 0 SIFT features.*fallbacks"):
        run_sfm(photos, tmp_path / "strict", min_registered=5, max_image_size=500)
    assert not (tmp_path / "strict").exists()

    scene = SceneData(images=[torch.zeros(2, 2, 3)] * 5, cameras=None, names=names + ["flat.png"],
                      format="folder", root=photos)
    posed = ensure_poses(scene, tmp_path / "cache", max_image_size=500)
    assert posed.names == names and posed.has_poses and posed.num_points > 100
    report = posed.meta["sfm"]
    assert report["num_images"] == 5 and "flat.png" in report["failed"]
    # The output is a COLMAP model pycolmap reads, with pinhole cameras matching the images.
    out = next((tmp_path / "cache").iterdir())
    rec = pycolmap.Reconstruction(str(out / "sparse" / "0"))
    assert {c.model.name for c in rec.cameras.values()} == {"PINHOLE"}
    assert tuple(posed.images[0].shape[:2]) == (int(posed.cameras.heights[0]), int(posed.cameras.widths[0]))
    gt = pycolmap.Reconstruction(str(root / "colmap_ground_truth"))
    gt_c = {im.name: im.projection_center() for im in gt.images.values()}
    a = posed.cameras.centers.double().numpy()
    b = np.array([gt_c[n] for n in names])
    extent = max(np.linalg.norm(p - q) for p in b for q in b)
    assert np.median(_umeyama_error(a, b)) < 0.01 * extent

    # Cached: a second call never runs SfM again.
    monkeypatch.setattr(sfm_mod, "run_sfm", lambda *a, **k: pytest.fail("SfM ran twice"))
    again = ensure_poses(scene, tmp_path / "cache")
    torch.testing.assert_close(again.cameras.viewmats, posed.cameras.viewmats)


def test_triangulation_uses_known_poses():
    from recon.priors.triangulate import triangulate_known_poses

    images, cams, _, _ = make_views(4, 200, 150, arc_deg=40)
    scene = SceneData(images=list(images), cameras=cams, names=list("abcd"), format="x", root=Path("."))
    cloud = triangulate_known_poses(scene, [0, 1, 2])
    assert cloud.source == "sfm" and len(cloud) >= 10
    p = cloud.points.double()
    dist = torch.minimum((p.norm(dim=-1) - 1).abs(), (p[:, 2] - 2.5).abs())  # sphere or back wall
    assert float(dist.median()) < 0.02
    with pytest.raises(DataError, match="at least 2"):
        triangulate_known_poses(scene, [0])
