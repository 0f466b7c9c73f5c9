"""Image reading: alpha, grey, 16-bit, EXIF orientation, downscale, bad files, undistortion."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from recon.data.images import (
    distort_normalized,
    image_size,
    read_image,
    read_mask,
    undistort,
    undistorted_intrinsics,
)
from recon.errors import DataError


def test_rgba_is_composited_on_background(tmp_path: Path):
    rng = np.random.default_rng(0)
    rgba = rng.integers(0, 256, size=(6, 5, 4), dtype=np.uint8)
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    rgb, alpha = read_image(tmp_path / "a.png", background=(0.0, 0.0, 1.0))
    c, a = rgba[..., :3] / 255.0, rgba[..., 3:] / 255.0
    expected = c * a + np.array([0.0, 0.0, 1.0]) * (1 - a)
    np.testing.assert_allclose(rgb.numpy(), expected, atol=1e-6)
    np.testing.assert_allclose(alpha.numpy(), a[..., 0], atol=1e-6)
    assert rgb.dtype == torch.float32 and rgb.shape == (6, 5, 3)


def test_grey_and_16bit(tmp_path: Path):
    grey = np.arange(20, dtype=np.uint8).reshape(4, 5) * 12
    Image.fromarray(grey, "L").save(tmp_path / "g.png")
    rgb, alpha = read_image(tmp_path / "g.png")
    assert alpha is None
    for ch in range(3):
        np.testing.assert_allclose(rgb[..., ch].numpy(), grey / 255.0, atol=1e-7)
    deep = (np.arange(20).reshape(4, 5) * 3000).astype(np.uint16)
    Image.fromarray(deep).save(tmp_path / "d.png")
    rgb16, _ = read_image(tmp_path / "d.png")
    np.testing.assert_allclose(rgb16[..., 1].numpy(), deep / 65535.0, atol=1e-6)
    np.testing.assert_allclose(read_mask(tmp_path / "d.png").numpy(), deep / 65535.0, atol=1e-6)


def test_exif_orientation_is_applied(tmp_path: Path):
    # Orientation 6: the stored image must be rotated 90 degrees clockwise for display.
    stored = np.zeros((16, 32, 3), dtype=np.uint8)
    stored[:, :16] = (255, 0, 0)  # left half red, right half blue
    stored[:, 16:] = (0, 0, 255)
    im = Image.fromarray(stored)
    exif = im.getexif()
    exif[274] = 6
    im.save(tmp_path / "r.jpg", exif=exif, quality=100)
    assert image_size(tmp_path / "r.jpg") == (16, 32)
    rgb, _ = read_image(tmp_path / "r.jpg")
    expected = np.rot90(stored, k=-1) / 255.0  # clockwise: the left half goes to the top
    assert rgb.shape == (32, 16, 3)
    assert np.abs(rgb.numpy() - expected)[2:-2].mean() < 0.02
    assert rgb[2, 8, 0] > 0.9 and rgb[-3, 8, 2] > 0.9


def test_box_downscale_matches_block_means(tmp_path: Path):
    rng = np.random.default_rng(1)
    img = rng.integers(0, 256, size=(10, 13, 3), dtype=np.uint8)
    Image.fromarray(img).save(tmp_path / "x.png")
    rgb, _ = read_image(tmp_path / "x.png", downscale=3)
    assert rgb.shape == (3, 4, 3)  # floor(10/3) x floor(13/3): the partial border is dropped
    block = img[3:6, 6:9] / 255.0
    np.testing.assert_allclose(rgb[1, 2].numpy(), block.reshape(-1, 3).mean(0), atol=1e-6)


def test_corrupt_and_truncated_images_name_the_file(tmp_path: Path):
    (tmp_path / "junk.png").write_bytes(b"\x89PNG not really an image")
    with pytest.raises(DataError, match="junk.png"):
        read_image(tmp_path / "junk.png")
    rng = np.random.default_rng(2)
    Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(tmp_path / "full.jpg")
    data = (tmp_path / "full.jpg").read_bytes()
    (tmp_path / "cut.jpg").write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match="cut.jpg.*truncated"):
        read_image(tmp_path / "cut.jpg")


def test_distortion_model_matches_pycolmap():
    pycolmap = pytest.importorskip("pycolmap")
    params = [90.0, 91.0, 50.0, 40.0, 0.1, -0.05, 0.01, 0.002]
    cam = pycolmap.Camera(model="OPENCV", width=100, height=80, params=params)
    xy = np.random.default_rng(3).uniform(-0.5, 0.5, size=(30, 2))
    ref = cam.img_from_cam(np.hstack([xy, np.ones((30, 1))]))
    dist = torch.tensor([0.1, -0.05, 0.01, 0.002, 0.0], dtype=torch.float64)
    xyd = distort_normalized(torch.as_tensor(xy), dist).numpy()
    ours = np.stack([90 * xyd[:, 0] + 50, 91 * xyd[:, 1] + 40], axis=-1)
    np.testing.assert_allclose(ours, ref, atol=1e-9)


def test_undistort_recovers_pinhole_image():
    pycolmap = pytest.importorskip("pycolmap")
    # A smooth pattern g on the ideal pinhole image; the distorted image samples g where pycolmap
    # (an independent implementation) says each distorted pixel's ray lands.
    w, h = 80, 60
    params = [70.0, 72.0, 40.0, 30.0, -0.15, 0.03, 0.004, -0.003]
    cam = pycolmap.Camera(model="OPENCV", width=w, height=h, params=params)
    fx, fy, cx, cy = params[:4]

    def g(u, v):
        return 0.5 + 0.4 * np.sin(u / 6.0) * np.cos(v / 5.0)

    vv, uu = np.mgrid[0:h, 0:w] + 0.5
    rays = cam.cam_from_img(np.stack([uu.ravel(), vv.ravel()], axis=-1))  # [HW, 2] undistorted
    distorted = g(fx * rays[:, 0] + cx, fy * rays[:, 1] + cy).reshape(h, w)
    K = torch.tensor([[fx, 0, cx], [0, fy, cy], [0, 0, 1]])
    dist = torch.tensor(params[4:] + [0.0])
    out = undistort(torch.as_tensor(distorted, dtype=torch.float32), K, dist).numpy()
    inner = (slice(8, -8), slice(8, -8))
    assert np.abs(out - g(uu, vv))[inner].max() < 0.02
    # With other output intrinsics the pattern is seen through K_new: g(K K_new^-1 p).
    K_new = torch.tensor([[80.0, 0, 41.0], [0, 81.0, 29.0], [0, 0, 1]])
    out2 = undistort(torch.as_tensor(distorted, dtype=torch.float32), K, dist, K_new=K_new).numpy()
    expected2 = g(fx * (uu - 41.0) / 80.0 + cx, fy * (vv - 29.0) / 81.0 + cy)
    assert np.abs(out2 - expected2)[inner].max() < 0.02
    assert np.abs(distorted - g(uu, vv))[inner].max() > 0.05  # the distortion was not negligible


@pytest.mark.parametrize("k1,zooms", [(-0.15, False), (0.2, True)])
def test_undistorted_intrinsics_leave_no_blank_border(k1: float, zooms: bool):
    pycolmap = pytest.importorskip("pycolmap")
    w, h = 80, 60
    params = [70.0, 72.0, 40.0, 30.0, k1, 0.0, 0.0, 0.0]
    cam = pycolmap.Camera(model="OPENCV", width=w, height=h, params=params)
    K = torch.tensor([[70.0, 0, 40.0], [0, 72.0, 30.0], [0, 0, 1]])
    K_new = undistorted_intrinsics(K, torch.tensor([k1, 0, 0, 0, 0.0]), w, h)
    scale = float(K_new[0, 0] / K[0, 0])
    assert (scale > 1.001) == zooms and torch.equal(K_new[:2, 2], K[:2, 2])
    assert float(K_new[1, 1] / K[1, 1]) == pytest.approx(scale)

    def border_sources(s: float) -> np.ndarray:
        # Where pycolmap sends the rays of the undistorted image's outermost pixel centres.
        u = np.concatenate(
            [np.arange(w) + 0.5, np.arange(w) + 0.5, np.full(h, 0.5), np.full(h, w - 0.5)]
        )
        v = np.concatenate(
            [np.full(w, 0.5), np.full(w, h - 0.5), np.arange(h) + 0.5, np.arange(h) + 0.5]
        )
        rays = np.stack([(u - 40.0) / (70.0 * s), (v - 30.0) / (72.0 * s), np.ones_like(u)], -1)
        return cam.img_from_cam(rays)

    def all_inside(px: np.ndarray) -> bool:
        return bool(
            ((px[:, 0] >= 0.5 - 1e-6) & (px[:, 0] <= w - 0.5 + 1e-6)).all()
            and ((px[:, 1] >= 0.5 - 1e-6) & (px[:, 1] <= h - 0.5 + 1e-6)).all()
        )

    assert all_inside(border_sources(scale))
    if zooms:  # and the zoom is the smallest that works
        assert not all_inside(border_sources(scale * 0.995))
