"""Every real scene in ../shared/data loads with format auto; counts, sizes and intrinsics match
the values stated in shared/data/README.md and in the scenes' own calibration files.

Only a few images per scene are decoded (``indices``); the rest is checked from metadata.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from recon.data.formats import load_scene, parse_scene
from recon.errors import DataError


def _check_loaded(scene, width: int, height: int) -> None:
    for i, img in enumerate(scene.images):
        assert img.shape == (height, width, 3) and img.dtype == torch.float32
        assert 0.0 <= float(img.min()) and float(img.max()) <= 1.0 and float(img.std()) > 0.01
        assert (int(scene.cameras.widths[i]), int(scene.cameras.heights[i])) == (width, height)


def test_lego_blender(shared_data: Path):
    root = shared_data / "nerf_synthetic" / "lego_400"
    src = parse_scene(root, verbose=False)
    assert src.format == "blender" and len(src) == 300
    assert {k: len(v) for k, v in src.split.items()} == {"train": 100, "test": 200}
    angle = json.loads((root / "transforms_train.json").read_text())["camera_angle_x"]
    cams = src.fit_cameras()
    assert set(cams.widths.tolist()) == {400} and set(cams.heights.tolist()) == {400}
    torch.testing.assert_close(
        cams.Ks[:, 0, 0], torch.full((300,), 0.5 * 400 / math.tan(angle / 2))
    )
    # The synthetic cameras all look at the origin: it projects to the image centre.
    uv, depth = cams.project(torch.zeros(1, 3))
    assert float((uv[:, 0] - 200).abs().max()) < 1.0 and bool((depth > 0).all())
    scene = load_scene(root, indices=[0, 150], verbose=False)
    _check_loaded(scene, 400, 400)
    assert scene.split == {"train": [0], "test": [1]}
    assert scene.masks is not None and float(scene.masks[0].min()) == 0.0
    torch.testing.assert_close(scene.images[0][0, 0], torch.ones(3))  # transparent corner -> white


def test_dtu_scan24(shared_data: Path):
    root = shared_data / "dtu" / "scan24"
    src = parse_scene(root, verbose=False)
    assert src.format == "dtu" and len(src) == 49 and src.mask_paths is not None
    cams = src.fit_cameras()
    assert set(cams.widths.tolist()) == {400} and set(cams.heights.tolist()) == {300}
    npz = np.load(root / "cameras_sphere.npz")
    for i in (0, 24, 48):
        # K_loaded [R|t] must equal diag(1/4, 1/4, 1) world_mat up to scale.
        P = np.diag([0.25, 0.25, 1.0]) @ npz[f"world_mat_{i}"][:3].astype(np.float64)
        ours = cams.Ks[i].double().numpy() @ cams.viewmats[i, :3].double().numpy()
        np.testing.assert_allclose(
            ours, P / P[2, 2] * ours[2, 2], rtol=1e-4, atol=1e-3 * abs(ours).max()
        )
    scene = load_scene(root, indices=[25], verbose=False)
    _check_loaded(scene, 400, 300)
    assert scene.masks[0].shape == (300, 400) and 0.02 < float(scene.masks[0].mean()) < 0.9


def test_gold_cape_llff(shared_data: Path):
    root = shared_data / "nerd_real" / "gold_cape"
    src = parse_scene(root, verbose=False)
    assert src.format == "llff" and len(src) == 119 and src.mask_paths is not None
    hwf = np.load(root / "poses_bounds.npy")[:, :15].reshape(-1, 3, 5)[:, :, 4]
    cams = src.fit_cameras()
    assert set(cams.widths.tolist()) == {456} and set(cams.heights.tolist()) == {456}
    torch.testing.assert_close(
        cams.Ks[:, 0, 0].double(), torch.as_tensor(hwf[:, 2] * 456 / hwf[:, 1]), rtol=1e-6, atol=0
    )
    scene = load_scene(root, indices=[0, 8], verbose=False)
    _check_loaded(scene, 456, 456)
    assert len(scene.masks) == 2 and scene.meta["near"][0] > 0


def test_temple_middlebury(shared_data: Path):
    root = shared_data / "middlebury_mvs" / "templeSparseRing"
    src = parse_scene(root, verbose=False)
    assert src.format == "middlebury" and len(src) == 16
    cams = src.fit_cameras()
    assert set(cams.widths.tolist()) == {640} and set(cams.heights.tolist()) == {480}
    torch.testing.assert_close(
        cams.Ks[0], torch.tensor([[1520.4, 0, 302.32], [0, 1525.9, 246.87], [0, 0, 1]])
    )
    # The README's bounding box centre is in front of every camera and inside its image.
    centre = torch.tensor(
        [[(-0.073568 + 0.028855) / 2, (0.021728 + 0.181892) / 2, (-0.012445 + 0.062736) / 2]]
    )
    uv, depth = cams.project(centre)
    assert bool((depth > 0).all()) and bool((uv[..., 0] > 0).all() & (uv[..., 0] < 640).all())
    _check_loaded(load_scene(root, indices=[3], verbose=False), 640, 480)


def test_lund_door_colmap(shared_data: Path):
    root = shared_data / "gtsfm_lund_door" / "set1_lund_door"
    src = parse_scene(root, verbose=False)
    assert src.format == "colmap" and len(src) == 12 and src.points.shape == (11384, 3)
    cams = src.fit_cameras()
    assert set(cams.widths.tolist()) == {1296} and set(cams.heights.tolist()) == {1936}
    torch.testing.assert_close(cams.Ks[0, 0, 0], torch.tensor(2435.38))
    torch.testing.assert_close(cams.dist[0], torch.tensor([-0.0336422, 0, 0, 0, 0]))
    # Most sparse points project into every image that sees the door.
    uv, depth = cams[[0]].project(src.points)
    inside = (
        (depth > 0)
        & (uv[..., 0] >= 0)
        & (uv[..., 0] < 1296)
        & (uv[..., 1] >= 0)
        & (uv[..., 1] < 1936)
    )
    assert float(inside.float().mean()) > 0.5
    scene = load_scene(root, indices=[0], downscale=4, verbose=False)
    _check_loaded(scene, 324, 484)
    assert scene.cameras.dist is None and scene.point_colors.shape == (11384, 3)


def test_fox_instant_ngp(shared_data: Path):
    root = shared_data / "instant_ngp" / "fox"
    with pytest.raises(
        DataError, match="17 of 67 listed images do not exist.*transforms_available.json"
    ):
        parse_scene(root, verbose=False)
    src = parse_scene(root / "transforms_available.json", verbose=False)
    assert src.format == "nerfstudio" and len(src) == 50
    assert len(parse_scene(root, skip_missing=True, verbose=False)) == 50
    cams = src.fit_cameras()
    assert set(cams.widths.tolist()) == {1080} and set(cams.heights.tolist()) == {1920}
    torch.testing.assert_close(
        cams.Ks[0], torch.tensor([[1375.52, 0, 554.558], [0, 1374.49, 965.268], [0, 0, 1]])
    )
    torch.testing.assert_close(
        cams.dist[0], torch.tensor([0.0578421, -0.0805099, -0.000980296, 0.00015575, 0])
    )
    scene = load_scene(root / "transforms_available.json", indices=[10], downscale=4, verbose=False)
    _check_loaded(scene, 270, 480)
    # Undistorted to a pinhole that zooms in slightly (k2 < 0 would leave blank corners).
    assert (
        scene.cameras.dist is None and 1.0 < float(scene.cameras.Ks[0, 0, 0] * 4 / 1375.52) < 1.05
    )
    assert float(scene.images[0].amax(dim=-1)[[0, -1]][:, [0, -1]].min()) > 0.0
