"""transforms.json (nerfstudio / instant-ngp) and Blender scenes: round trip, hand-written files."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from recon.data.formats import load_scene
from recon.data.nerfstudio import write_transforms
from recon.errors import DataError


def test_write_read_round_trip(tiny_scene):
    s = tiny_scene
    write_transforms(s.root / "transforms.json", s.cameras, [f"images/{n}" for n in s.names])
    data = json.loads((s.root / "transforms.json").read_text())
    assert "fl_x" in data["frames"][0] and "w" in data  # per-frame focal (differs), shared size
    scene = load_scene(s.root, verbose=False)
    assert scene.format == "nerfstudio" and len(scene) == len(s.names)
    torch.testing.assert_close(scene.cameras.Ks, s.cameras.Ks)
    torch.testing.assert_close(scene.cameras.viewmats, s.cameras.viewmats, atol=1e-5, rtol=0)
    np.testing.assert_allclose(scene.images[2].numpy(), s.images[2] / 255.0, atol=1e-6)


def test_instant_ngp_file_with_global_intrinsics(tmp_path: Path):
    # One camera at z = +5 (OpenGL, identity rotation) with global intrinsics and barrel
    # distortion (undistorting it needs no zoom, so K is kept).
    Image.fromarray(np.zeros((30, 40, 3), np.uint8)).save(tmp_path / "a.jpg")
    frames = [
        {
            "file_path": "a.jpg",
            "transform_matrix": [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 5], [0, 0, 0, 1]],
        }
    ]
    data = {
        "fl_x": 50.0,
        "fl_y": 52.0,
        "cx": 19.0,
        "cy": 16.0,
        "w": 40,
        "h": 30,
        "k1": -0.01,
        "k2": 0.0,
        "p1": 0.0,
        "p2": 0.0,
        "aabb_scale": 16,
        "frames": frames,
    }
    (tmp_path / "transforms.json").write_text(json.dumps(data))
    scene = load_scene(tmp_path, verbose=False)
    uv, _ = scene.cameras.project(torch.tensor([[1.0, 1.0, 0.0]]))
    torch.testing.assert_close(uv[0, 0], torch.tensor([19.0 + 50 / 5, 16.0 - 52 / 5]))
    assert scene.cameras.dist is None  # the image was undistorted on load


def test_blender_split_focal_and_alpha(tmp_path: Path):
    rng = np.random.default_rng(0)
    angle = 0.69
    for split, n in (("train", 3), ("test", 2)):
        (tmp_path / split).mkdir()
        frames = []
        for i in range(n):
            rgba = rng.integers(0, 256, size=(20, 20, 4), dtype=np.uint8)
            Image.fromarray(rgba, "RGBA").save(tmp_path / split / f"r_{i}.png")
            frames.append({"file_path": f"./{split}/r_{i}", "transform_matrix": np.eye(4).tolist()})
        (tmp_path / f"transforms_{split}.json").write_text(
            json.dumps({"camera_angle_x": angle, "frames": frames})
        )
    scene = load_scene(tmp_path, background=(0.0, 0.0, 0.0), verbose=False)
    assert scene.format == "blender" and len(scene) == 5
    assert scene.split == {"train": [0, 1, 2], "test": [3, 4]}
    torch.testing.assert_close(
        scene.cameras.Ks[0, 0, 0], torch.tensor(0.5 * 20 / math.tan(angle / 2))
    )
    rgba = np.asarray(Image.open(tmp_path / "test" / "r_1.png"), dtype=np.float64) / 255.0
    np.testing.assert_allclose(scene.images[4].numpy(), rgba[..., :3] * rgba[..., 3:], atol=1e-6)
    np.testing.assert_allclose(scene.masks[4].numpy(), rgba[..., 3], atol=1e-6)
    sub = load_scene(tmp_path, verbose=False, indices=[4, 0])
    assert sub.split == {"train": [1], "test": [0]}


def test_missing_frames_error_and_skip(tiny_scene):
    s = tiny_scene
    paths = [f"images/{n}" for n in s.names] + ["images/gone_1.png", "images/gone_2.png"]
    cams = s.cameras[list(range(len(s.names))) + [0, 1]]
    write_transforms(s.root / "transforms.json", cams, paths)
    write_transforms(s.root / "transforms_ok.json", s.cameras, [f"images/{n}" for n in s.names])
    with pytest.raises(
        DataError, match=r"2 of 8 listed images do not exist: images/gone_1.png"
    ) as err:
        load_scene(s.root, verbose=False)
    assert "transforms_ok.json" in str(err.value) and "\n" not in str(err.value)
    assert len(load_scene(s.root, verbose=False, skip_missing=True)) == len(s.names)
    assert len(load_scene(s.root / "transforms_ok.json", verbose=False)) == len(s.names)


@pytest.mark.parametrize("ascii_ply", [False, True])
def test_nerfstudio_points_and_masks(tiny_scene, ascii_ply: bool):
    o3d = pytest.importorskip("open3d")  # an independent PLY writer
    s = tiny_scene
    cloud = o3d.geometry.PointCloud()
    cloud.points = o3d.utility.Vector3dVector(s.points)
    cloud.colors = o3d.utility.Vector3dVector(s.colors)
    o3d.io.write_point_cloud(str(s.root / "sparse_pc.ply"), cloud, write_ascii=ascii_ply)
    (s.root / "masks").mkdir()
    rng = np.random.default_rng(5)
    for n in s.names:
        Image.fromarray(rng.integers(0, 256, (24, 32), dtype=np.uint8), "L").save(
            s.root / "masks" / n
        )
    write_transforms(s.root / "transforms.json", s.cameras, [f"images/{n}" for n in s.names])
    data = json.loads((s.root / "transforms.json").read_text())
    data["ply_file_path"] = "sparse_pc.ply"
    for frame, n in zip(data["frames"], s.names):
        frame["mask_path"] = f"masks/{n}"
    (s.root / "transforms.json").write_text(json.dumps(data))
    scene = load_scene(s.root, verbose=False, indices=[1])
    torch.testing.assert_close(scene.points.double(), torch.as_tensor(s.points), atol=1e-6, rtol=0)
    torch.testing.assert_close(
        scene.point_colors.double(), torch.as_tensor(s.colors), atol=1e-6, rtol=0
    )
    mask = np.asarray(Image.open(s.root / "masks" / s.names[1]), dtype=np.float64) / 255.0
    np.testing.assert_allclose(scene.masks[0].numpy(), mask, atol=1e-6)
