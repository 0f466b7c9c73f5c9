"""Primitive initialisation against brute-force geometry."""

from __future__ import annotations

import pytest
import torch
from scipy.spatial import cKDTree

from recon.primitives import convex, gaussian, spec, triangle
from recon.primitives.knn import mean_sq_knn_dist
from recon.primitives.sh import sh0_to_rgb


def test_knn_matches_kdtree():
    pts = torch.rand(500, 3)
    d, _ = cKDTree(pts.numpy()).query(pts.numpy(), k=4)  # self + 3 neighbours
    expected = torch.tensor((d[:, 1:] ** 2).mean(1), dtype=torch.float32)
    got = mean_sq_knn_dist(pts, k=3, chunk=64)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-7)


def test_gaussian_init_sizes_and_colours():
    pts = torch.rand(200, 3)
    cols = torch.rand(200, 3)
    p = gaussian.init_from_points(pts, cols, sh_degree=2, opacity=0.3)
    assert p["shN"].shape == (200, 8, 3)
    act = gaussian.SPEC.activate(p)
    torch.testing.assert_close(act["scales"][:, 0], mean_sq_knn_dist(pts).sqrt())
    torch.testing.assert_close(act["opacities"], torch.full((200,), 0.3))
    torch.testing.assert_close(sh0_to_rgb(p["sh0"][:, 0]), cols, atol=1e-6, rtol=0)
    assert gaussian.SPEC.check(p) == 200


def test_triangle_init_is_equilateral_about_point():
    pts = torch.rand(100, 3)
    p = triangle.init_from_points(pts, torch.rand(100, 3), size=2.0, sigma=1.16,
                                  generator=torch.Generator().manual_seed(1))
    v = p["vertices"]  # [N, 3, 3]
    r = 2.0 * mean_sq_knn_dist(pts).sqrt()
    # Fibonacci directions for 3 points are z = 1, 0, -1: two opposite vertices and one at 90 deg
    dist = (v - pts[:, None]).norm(dim=-1)
    torch.testing.assert_close(dist, r[:, None].expand(-1, 3), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(triangle.SPEC.activate(p)["sigma"], torch.full((100,), 1.16))


def test_convex_init_points_on_sphere_and_delta():
    pts = torch.rand(50, 3)
    p = convex.init_from_points(pts, torch.rand(50, 3), num_points=6, size=1.2)
    d = mean_sq_knn_dist(pts).sqrt()
    radii = (p["points"] - pts[:, None]).norm(dim=-1)
    torch.testing.assert_close(radii, (1.2 * d)[:, None].expand(-1, 6), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(convex.SPEC.activate(p)["delta"], 0.1 / d, rtol=1e-5, atol=0)


@pytest.mark.parametrize("name", ["gaussian", "triangle", "convex"])
def test_inverse_activations_round_trip(name):
    s = spec(name)
    for key, act in s.activations.items():
        if act in ("identity", "normalize"):
            continue
        value = torch.tensor([0.02, 0.5, 0.9]) if act != "exp" else torch.tensor([1e-3, 1.0, 30.0])
        torch.testing.assert_close(_act(s, key, s.inverse(key, value)), value, rtol=1e-5, atol=1e-6)


def _act(s, key, raw):
    from recon.primitives.spec import ACTIVATIONS

    return ACTIVATIONS[s.activations[key]](raw)
