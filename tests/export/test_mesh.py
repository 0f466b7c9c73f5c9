"""Meshes: triangle export read back with trimesh, TSDF fusion against the demo scene's analytic surfaces."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from recon.export.mesh import merge_vertices, save_mesh, triangle_mesh
from recon.primitives.sh import rgb_to_sh0

trimesh = pytest.importorskip("trimesh")
pytest.importorskip("scipy")
SCENE_SIZE = 4.4  # the demo scene's ground tile is 4.4 x 4.4 units (recon.data.synthetic.default_world)


def quad_params(jitter: float = 1e-6) -> tuple[dict[str, torch.Tensor], np.ndarray]:
    """Two opaque triangles of a unit square whose shared corners are ``jitter`` apart, plus a faint one."""
    square = np.array([[0, 0, 0], [1, 0, 0], [1, 1, 0], [0, 1, 0]], dtype=np.float64)
    tris = np.stack([square[[0, 1, 2]], square[[0, 2, 3]], square[[0, 1, 3]] + 5.0])  # [3, 3, 3]
    tris[1, 0] += jitter  # the shared corners differ by a hair
    tris[1, 1] -= jitter
    colors = torch.tensor([[0.9, 0.1, 0.2], [0.1, 0.8, 0.3], [0.5, 0.5, 0.5]])
    params = {
        "vertices": torch.from_numpy(tris).float(),
        "sigma": torch.zeros(3),
        "opacities": torch.logit(torch.tensor([0.9, 0.6, 0.2])),
        "sh0": rgb_to_sh0(colors)[:, None, :],
        "shN": torch.zeros(3, 0, 3),
    }
    return params, square


def test_merge_vertices_single_linkage_clusters():
    pts = np.array([[0, 0, 0], [0.05, 0, 0], [0.1, 0, 0], [1, 0, 0], [1, 0.2, 0]], dtype=np.float64)
    merged, labels = merge_vertices(pts, tolerance=0.06)
    assert len(merged) == 3  # a chain 0-1-2 (steps 0.05) is one cluster; 3 and 4 are 0.2 apart
    assert labels[0] == labels[1] == labels[2] != labels[3] != labels[4]
    np.testing.assert_allclose(merged[labels[0]], [0.05, 0, 0])


@pytest.mark.parametrize("suffix", ["ply", "obj", "glb"])
def test_triangle_mesh_read_back_by_trimesh(tmp_path, suffix):
    params, square = quad_params()
    mesh = triangle_mesh(params, min_opacity=0.5, tolerance=1e-4)
    assert mesh.vertices.shape == (4, 3) and mesh.faces.shape == (2, 3)  # faint triangle dropped, corners welded
    save_mesh(mesh, tmp_path / f"m.{suffix}", suffix)
    back = trimesh.load(tmp_path / f"m.{suffix}", process=False, force="mesh")
    assert len(back.faces) == 2
    assert sorted(map(tuple, np.round(back.vertices, 5))) == sorted(map(tuple, square))
    face_rgb = np.array([[0.9, 0.1, 0.2], [0.1, 0.8, 0.3]])
    if suffix == "ply":  # one colour per face, in face order
        np.testing.assert_allclose(back.visual.face_colors[:, :3] / 255.0, face_rgb, atol=1 / 255)
    else:  # per vertex: the mean of the faces around it
        expected = {tuple(square[0]): face_rgb.mean(0), tuple(square[1]): face_rgb[0], tuple(square[3]): face_rgb[1]}
        visual = back.visual.to_color() if hasattr(back.visual, "to_color") else back.visual
        got = visual.vertex_colors[:, :3] / 255.0
        checked = 0
        for v, c in zip(np.round(back.vertices, 5), got):
            if tuple(v) in expected:
                np.testing.assert_allclose(c, expected[tuple(v)], atol=1 / 255)
                checked += 1
        assert checked == 3


def test_triangle_mesh_without_merging_keeps_every_corner():
    params, _ = quad_params(jitter=1e-3)
    assert triangle_mesh(params, tolerance=1e-4).vertices.shape == (6, 3)  # 1e-3 apart: not merged
    assert triangle_mesh(params, tolerance=1e-2).vertices.shape == (4, 3)


def analytic_distance(points: np.ndarray, samples: int = 300_000) -> np.ndarray:
    """Distance of each point to the demo scene's surfaces, from dense area-uniform surface samples."""
    from scipy.spatial import cKDTree

    from recon.data.synthetic import default_world

    world, gen = default_world(), torch.Generator().manual_seed(0)
    areas = np.array([s.area for s in world.surfaces])
    counts = np.ceil(samples * areas / areas.sum()).astype(int)
    dense = np.concatenate([s.sample(int(c), gen, torch.float64).numpy() for s, c in zip(world.surfaces, counts)])
    return cKDTree(dense).query(points)[0]


def test_tsdf_of_exact_depths_lies_on_the_analytic_surfaces():
    pytest.importorskip("open3d")
    from recon.data.synthetic import make_synthetic_scene
    from recon.export.tsdf import FusionRegion, fuse_depth_maps

    scene = make_synthetic_scene(num_views=8, width=64, height=48, num_points=1500)
    region = FusionRegion.around(scene.points, resolution=128)
    mesh = fuse_depth_maps([(scene.cameras[i], scene.depths[i], scene.images[i]) for i in range(8)], region)
    d = analytic_distance(mesh.vertices)
    assert d.mean() < 0.3 * region.voxel  # measured 0.15 voxel
    assert mesh.vertex_colors is not None and mesh.vertex_colors.shape == mesh.vertices.shape


def test_tsdf_export_of_a_trained_run_lies_near_the_surfaces(gaussian_run, tmp_path):
    pytest.importorskip("open3d")
    from recon.cli import main

    out = tmp_path / "tsdf.glb"
    assert main(["export", str(gaussian_run), "--format", "tsdf", "--out", str(out), "--resolution", "128"]) == 0
    mesh = trimesh.load(out, process=False, force="mesh")
    assert len(mesh.faces) > 100
    d = analytic_distance(np.asarray(mesh.vertices))
    assert d.mean() < 0.05 * SCENE_SIZE  # a 20-step 48 x 40 run; measured 0.12 (2.8 %)


def test_mesh_export_of_a_triangle_run_keeps_its_triangles(triangle_run, tmp_path):
    from recon.cli import main
    from recon.run import load_run

    out = tmp_path / "tri.obj"
    argv = [
        "export",
        str(triangle_run),
        "--format",
        "mesh",
        "--out",
        str(out),
        "--min-opacity",
        "0",
        "--merge-tolerance",
        "0",
    ]
    assert main(argv) == 0
    corners = load_run(triangle_run).params["vertices"].reshape(-1, 3).double().numpy()
    mesh = trimesh.load(out, process=False, force="mesh")
    assert len(mesh.faces) == len(corners) // 3
    # every exported vertex is one of the run's triangle corners (OBJ stores about 8 digits)
    from scipy.spatial import cKDTree

    assert cKDTree(corners).query(np.asarray(mesh.vertices))[0].max() < 1e-5
