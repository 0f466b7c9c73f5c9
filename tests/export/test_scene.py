"""Cameras and points: COLMAP text model (recon's reader and pycolmap), transforms.json, point cloud PLY."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from recon.cli import main
from recon.run import read_cameras


def test_colmap_text_model_read_by_recon_and_pycolmap(gaussian_run, tmp_path):
    from recon.data.colmap_io import read_model_text
    from recon.priors.pointcloud import read_ply

    out = tmp_path / "sparse"
    assert main(["export", str(gaussian_run), "--format", "colmap", "--out", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["cameras.txt", "images.txt", "points3D.txt"]
    cams, names, _, _ = read_cameras(gaussian_run)
    cloud = read_ply(gaussian_run / "priors" / "points.ply")

    model = read_model_text(out)
    by_name = {im.name: im for im in model.images.values()}
    assert sorted(by_name) == sorted(names)
    for i, name in enumerate(names):
        im = by_name[name]
        np.testing.assert_allclose(im.viewmat(), cams.viewmats[i].double().numpy(), atol=1e-6)
        K, _ = model.cameras[im.camera_id].intrinsics()
        np.testing.assert_allclose(K, cams.Ks[i].double().numpy(), atol=1e-9)
    np.testing.assert_allclose(model.points.xyz, cloud.points.double().numpy(), atol=1e-6)

    pycolmap = pytest.importorskip("pycolmap")
    rec = pycolmap.Reconstruction(str(out))
    assert rec.num_images() == len(names) and rec.num_points3D() == len(cloud)
    for image in rec.images.values():
        i = names.index(image.name)
        world_to_cam = np.eye(4)
        world_to_cam[:3] = image.cam_from_world().matrix()
        np.testing.assert_allclose(world_to_cam, cams.viewmats[i].double().numpy(), atol=1e-6)
        cam = rec.cameras[image.camera_id]
        np.testing.assert_allclose(cam.calibration_matrix(), cams.Ks[i].double().numpy(), atol=1e-9)
        assert (cam.width, cam.height) == (int(cams.widths[i]), int(cams.heights[i]))
    xyz = np.stack([p.xyz for p in rec.points3D.values()])
    rgb = np.stack([p.color for p in rec.points3D.values()])
    order = np.lexsort(xyz.T)
    ref_order = np.lexsort(cloud.points.double().numpy().T)
    np.testing.assert_allclose(xyz[order], cloud.points.double().numpy()[ref_order], atol=1e-6)
    np.testing.assert_array_equal(rgb[order], np.round(cloud.colors.numpy()[ref_order] * 255).astype(np.uint8))


def test_transforms_json_round_trip(gaussian_run, tmp_path):
    from recon.data.nerfstudio import read_frames

    out = tmp_path / "transforms.json"
    assert main(["export", str(gaussian_run), "--format", "transforms", "--out", str(out)]) == 0
    cams, names, _, _ = read_cameras(gaussian_run)
    data = json.loads(out.read_text())
    assert [f["file_path"] for f in data["frames"]] == [f"images/{n}" for n in names]
    from PIL import Image

    (tmp_path / "images").mkdir()
    for i, n in enumerate(names):  # the reader checks that frames exist (images are not exported)
        Image.new("RGB", (int(cams.widths[i]), int(cams.heights[i]))).save(tmp_path / "images" / n)
    frames = read_frames(out, data, skip_missing=False)
    torch.testing.assert_close(frames.cameras.viewmats.double(), cams.viewmats.double(), atol=1e-5, rtol=0)
    torch.testing.assert_close(frames.cameras.Ks.double(), cams.Ks.double(), atol=1e-6, rtol=0)
    # nerfstudio's convention, independently: OpenGL camera-to-world = inverse(viewmat) with y, z flipped
    c2w = np.linalg.inv(cams.viewmats[0].double().numpy()) @ np.diag([1.0, -1.0, -1.0, 1.0])
    np.testing.assert_allclose(np.array(data["frames"][0]["transform_matrix"]), c2w, atol=1e-6)


def test_points_ply_read_by_plyfile(gaussian_run, tmp_path):
    plyfile = pytest.importorskip("plyfile")
    from recon.priors.pointcloud import read_ply

    out = tmp_path / "points.ply"
    assert main(["export", str(gaussian_run), "--format", "points", "--out", str(out)]) == 0
    cloud = read_ply(gaussian_run / "priors" / "points.ply")
    v = plyfile.PlyData.read(str(out))["vertex"]
    np.testing.assert_array_equal(np.stack([v["x"], v["y"], v["z"]], 1), cloud.points.numpy())
    rgb = np.stack([v["red"], v["green"], v["blue"]], 1)
    np.testing.assert_array_equal(rgb, np.round(cloud.colors.numpy() * 255).astype(np.uint8))
    assert len(v) == 150 and out.stat().st_mode & 0o044  # readable by others, like any other output
