"""Reference twin, convexes: scipy hull, analytic square, per-pixel oracle, finite differences."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from recon.ops import rasterize_convexes
from recon.ops import reference as R
from recon.ops.reference import convex_hull_2d

from .compositing_oracle import convex_window, project_points, render_oracle
from .finite_diff import check_gradients
from .scenes import cameras

F64 = torch.float64
spatial = pytest.importorskip("scipy.spatial")


def _render(points, colors, opacities, delta, sigma, viewmats, Ks, w, h, **kw):
    return rasterize_convexes(
        points, colors, opacities, delta, sigma, viewmats, Ks, w, h, backend="reference", **kw
    )


def _pixel_camera(dtype=F64):
    """Camera at z = -1 looking at the z = 0 plane with f = 10, c = 0: pixel = 10 * (x, y)."""
    viewmat = torch.eye(4, dtype=dtype)
    viewmat[2, 3] = 1.0
    K = torch.tensor([[10.0, 0, 0], [0, 10.0, 0], [0, 0, 1]], dtype=dtype)
    return viewmat[None], K[None]


def _lift(pixels, dtype=F64):
    p = torch.as_tensor(pixels, dtype=dtype) / 10.0
    return torch.cat([p, torch.zeros(p.shape[:-1] + (1,), dtype=dtype)], -1)


def test_hull_matches_scipy_on_random_point_sets():
    g = torch.Generator().manual_seed(0)
    pts = torch.randn(300, 7, 2, generator=g, dtype=F64)
    hull = convex_hull_2d(pts)
    for b in range(300):
        expect = spatial.ConvexHull(pts[b].numpy()).vertices.tolist()  # CCW, any start
        got = [i for i in hull[b].tolist() if i >= 0]
        start = expect.index(got[0])
        assert got == expect[start:] + expect[:start]
        # Starts at the lexicographically smallest point.
        lex = min(range(7), key=lambda i: (pts[b, i, 0].item(), pts[b, i, 1].item()))
        assert got[0] == lex


def test_hull_drops_collinear_interior_and_duplicate_points():
    square = [[4.5, 4.5], [12.5, 4.5], [12.5, 12.5], [4.5, 12.5]]
    extra = [[8.5, 4.5], [8.5, 8.5], [12.5, 12.5]]  # edge midpoint, interior, duplicate corner
    pts = torch.tensor([extra[0], square[2], square[0], extra[1], square[1], square[3], extra[2]])
    assert convex_hull_2d(pts).tolist() == [2, 4, 1, 5, -1, -1, -1]
    line = torch.tensor([[0.0, 0.0], [1.0, 1.0], [2.0, 2.0], [3.0, 3.0]])
    assert convex_hull_2d(line).tolist() == [-1] * 4
    same = torch.ones(5, 2)
    assert convex_hull_2d(same).tolist() == [-1] * 5


@pytest.mark.parametrize("dtype", [torch.float32, F64])
def test_square_indicator_by_hand(dtype):
    square = [[4.5, 4.5], [12.5, 4.5], [12.5, 12.5], [4.5, 12.5], [8.5, 4.5], [8.5, 8.5]]
    pts = _lift([square], dtype)
    viewmats, Ks = _pixel_camera(dtype)
    o, delta, sigma, z = 0.9, 0.05, 5.0, 1.0
    out = _render(pts, torch.ones(1, 1, dtype=dtype), torch.tensor([o], dtype=dtype),
                  torch.tensor([delta], dtype=dtype), torch.tensor([sigma], dtype=dtype),
                  viewmats, Ks, 18, 18)  # fmt: skip

    def indicator(x, y):  # unnormalised lines of the 8 px square: L = 8 * signed distance
        L = [8 * (4.5 - y), 8 * (x - 12.5), 8 * (y - 12.5), 8 * (4.5 - x)]
        phi = math.log(sum(math.exp(z * delta * l) for l in L))
        return 1 / (1 + math.exp(z * sigma * phi))

    alpha = out.alphas[0, ..., 0].double()
    for i, j in [(8, 8), (5, 8), (12, 12), (2, 8), (15, 15)]:
        expect = min(0.99, o * indicator(i + 0.5, j + 0.5))
        expect = expect if expect >= 1 / 255 else 0.0
        assert alpha[j, i].item() == pytest.approx(expect, rel=1e-5, abs=1e-7)
    assert alpha[8, 8].item() == pytest.approx(
        o / (1 + math.exp(z * sigma * (math.log(4) - 1.6))), rel=1e-5
    )


def _random_convexes(n, seed=0, size=0.25, k=6):
    g = torch.Generator().manual_seed(seed)
    centres = (torch.rand(n, 1, 3, generator=g, dtype=F64) - 0.5) * 1.2
    pts = centres + size * torch.randn(n, k, 3, generator=g, dtype=F64)
    opac = 0.3 + 0.6 * torch.rand(n, generator=g, dtype=F64)
    delta = 0.1 + 0.4 * torch.rand(n, generator=g, dtype=F64)
    sigma = 0.1 + 0.4 * torch.rand(n, generator=g, dtype=F64)
    return pts, opac, delta, sigma


def test_matches_per_pixel_oracle_without_footprint_boxes():
    """The oracle evaluates every convex at every pixel: the conservative boxes lose nothing."""
    pts, opac, delta, sigma = _random_convexes(8, size=0.5)
    viewmats, Ks = cameras(2, 20, 16)
    feats = torch.rand(8, 4, dtype=F64)
    bgs = torch.rand(2, 4, dtype=F64)
    out = _render(pts, feats, opac, delta, sigma, viewmats, Ks, 20, 16, backgrounds=bgs)
    assert (
        (out.radii[..., 0] > 0) & (out.radii[..., 0] < 8)
    ).any()  # some boxes are local, so the bound is exercised
    for v in range(2):
        p2d, zs = project_points(pts.numpy(), viewmats[v].numpy(), Ks[v].numpy())
        zc = zs.mean(-1)
        order = sorted(range(8), key=lambda n: zc[n])
        img, alpha, mw = render_oracle(
            20, 16, order,
            lambda n, x, y: convex_window(p2d[n], zc[n], delta[n].item(), sigma[n].item(), x, y),
            opac.numpy(), feats.numpy(), bgs[v].numpy(),
        )  # fmt: skip
        assert 0.1 < (alpha > 0).mean()
        np.testing.assert_allclose(out.colors[v].numpy(), img, atol=1e-9)
        np.testing.assert_allclose(out.alphas[v, ..., 0].numpy(), alpha, atol=1e-9)
        np.testing.assert_allclose(out.max_weights[v].numpy(), mw, atol=1e-9)


def test_gradients_match_finite_differences():
    """Every input but the points through the public op; the points stage by stage, because the
    window treats the depth z as a constant by contract (ENGINE.md) while finite differences
    would also move it."""
    pts, opac, delta, sigma = _random_convexes(3, seed=2, size=0.35)
    viewmats, Ks = cameras(2, 16, 12)
    inputs = {
        "colors": torch.rand(3, 3, dtype=F64), "opacities": opac, "delta": delta,
        "sigma": sigma, "backgrounds": torch.rand(2, 3, dtype=F64),
    }  # fmt: skip
    inputs = {k: v.clone().requires_grad_() for k, v in inputs.items()}

    def fn(colors, opacities, delta, sigma, backgrounds):
        out = _render(pts, colors, opacities, delta, sigma, viewmats, Ks, 16, 12,
                      backgrounds=backgrounds)  # fmt: skip
        return out.colors, out.alphas, out.depths

    check_gradients(fn, inputs, rtol=1e-4, atol=1e-6)

    # Stage 1: projected points and depths w.r.t. the 3D points.
    def project(points):
        _, depths, points2d, _, _ = R.project_convexes(
            points, delta, sigma, opac, viewmats, Ks, 16, 12
        )
        return depths, points2d

    check_gradients(project, {"points": pts.clone().requires_grad_()})

    # Stage 3: the image w.r.t. the projected points, with the window depth held fixed.
    means2d, depths, points2d, hull, radii = R.project_convexes(
        pts, delta, sigma, opac, viewmats, Ks, 16, 12
    )
    offsets, flat = R.isect_tiles(means2d, radii, depths, 16, 12)
    feats = torch.rand(2, 3, 2, dtype=F64)

    def raster(points2d):
        colors, alphas, _ = R.rasterize_convexes_to_pixels(
            points2d, hull, delta, sigma, depths, feats, opac, 16, 12, offsets, flat
        )
        return colors, alphas

    check_gradients(raster, {"points2d": points2d.detach().clone().requires_grad_()})


def test_collinear_and_behind_camera_convexes_are_culled():
    pts, opac, delta, sigma = _random_convexes(3, seed=4)
    viewmats, Ks = cameras(1, 16, 12)
    bad = pts.clone()
    t = torch.linspace(0, 1, 6, dtype=F64)[:, None]
    bad[1] = bad[1, 0] + t * (bad[1, 1] - bad[1, 0])  # all six points on one 3D line
    cam_pos = torch.linalg.inv(viewmats[0])[:3, 3]
    bad[2, 3] = cam_pos - 0.5 * viewmats[0, 2, :3]  # one point behind the camera
    bad = bad.requires_grad_()
    cols = torch.rand(3, 2, dtype=F64)
    out = _render(bad, cols, opac, delta, sigma, viewmats, Ks, 16, 12)
    assert (out.radii[0, 1:] == 0).all()
    alone = _render(pts[:1], cols[:1], opac[:1], delta[:1], sigma[:1], viewmats, Ks, 16, 12)
    torch.testing.assert_close(out.colors, alone.colors, rtol=0, atol=1e-14)
    out.colors.sum().backward()
    assert torch.isfinite(bad.grad).all() and (bad.grad[1:] == 0).all()


def test_means2d_grad_is_the_footprint_translation_gradient():
    pts, opac, delta, sigma = _random_convexes(4, seed=6)
    viewmats, Ks = cameras(1, 16, 12)
    Ks = Ks.clone().requires_grad_()
    out = _render(pts.clone().requires_grad_(), torch.rand(4, 3, dtype=F64), opac, delta, sigma,
                  viewmats, Ks, 16, 12)  # fmt: skip
    (out.colors * torch.randn_like(out.colors)).sum().backward()
    g = out.means2d.grad
    assert g is not None and g.abs().sum() > 0
    torch.testing.assert_close(g[0, :, 0].sum(), Ks.grad[0, 0, 2])
    torch.testing.assert_close(g[0, :, 1].sum(), Ks.grad[0, 1, 2])
