"""Point-cloud clean-up and PLY files, checked against open3d."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from recon.priors.pointcloud import (
    PointCloud, clean_cloud, merge_clouds, read_ply, statistical_outlier_mask, voxel_downsample, write_ply,
)


def _clusters(seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    centres = torch.tensor([[0.15, 0.15, 0.15], [2.15, 0.15, 0.15], [0.15, 4.15, 1.15]])
    pts = centres.repeat_interleave(50, 0) + 0.01 * torch.randn(150, 3, generator=gen)
    cols = torch.rand(150, 3, generator=gen)
    return centres, pts, cols


def test_voxel_downsample_gives_cluster_means():
    centres, pts, cols = _clusters()
    out = voxel_downsample(PointCloud(pts, cols, "x"), voxel_size=1.0)
    assert len(out) == 3
    order = torch.argsort(out.points[:, 0] + 10 * out.points[:, 1])
    exp_p = torch.stack([pts[i * 50:(i + 1) * 50].mean(0) for i in range(3)])
    exp_c = torch.stack([cols[i * 50:(i + 1) * 50].mean(0) for i in range(3)])
    torch.testing.assert_close(out.points[order], exp_p, atol=1e-5, rtol=0)
    torch.testing.assert_close(out.colors[order], exp_c, atol=1e-5, rtol=0)


def test_outlier_mask_matches_open3d():
    o3d = pytest.importorskip("open3d")
    gen = torch.Generator().manual_seed(1)
    pts = torch.cat([torch.randn(500, 3, generator=gen) * 0.1, torch.randn(20, 3, generator=gen) * 3])
    keep = statistical_outlier_mask(pts, num_neighbors=16, std_ratio=1.5)
    pcd = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(pts.double().numpy()))
    _, idx = pcd.remove_statistical_outlier(nb_neighbors=16, std_ratio=1.5)
    expected = torch.zeros(len(pts), dtype=torch.bool)
    expected[torch.as_tensor(idx, dtype=torch.long)] = True
    assert torch.equal(keep, expected)
    assert not bool(expected[-20:].all())  # the test data does contain outliers


def test_ply_round_trip_and_open3d_reads_it(tmp_path):
    o3d = pytest.importorskip("open3d")
    _, pts, cols = _clusters()
    cloud = PointCloud(pts, cols, "mvs")
    path = tmp_path / "p.ply"
    write_ply(path, cloud)
    back = read_ply(path)
    assert back.source == "mvs"
    torch.testing.assert_close(back.points, pts)
    assert (back.colors - cols).abs().max() <= 0.5 / 255 + 1e-6
    pcd = o3d.io.read_point_cloud(str(path))
    np.testing.assert_allclose(np.asarray(pcd.points), pts.numpy(), atol=1e-6)
    np.testing.assert_allclose(np.asarray(pcd.colors), back.colors.numpy(), atol=1e-6)
    assert [p.name for p in tmp_path.iterdir()] == ["p.ply"]  # no temp file left


def test_merge_and_clean():
    centres, pts, cols = _clusters()
    a, b = PointCloud(pts[:75], cols[:75], "hull"), PointCloud(pts[75:], cols[75:], "mvs")
    merged = merge_clouds([a, b])
    assert merged.source == "hull+mvs" and len(merged) == 150
    far = PointCloud(torch.tensor([[50.0, 50.0, 50.0]]), torch.zeros(1, 3), "x")
    cleaned = clean_cloud(merge_clouds([merged, far]), voxel_size=0.005, num_neighbors=5)
    assert bool((cleaned.points.norm(dim=-1) < 10).all())
    assert len(cleaned) > 100
