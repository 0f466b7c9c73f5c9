"""Reference twin, triangles: analytic window, per-pixel oracle, finite differences, edge cases."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from recon.ops import rasterize_triangles

from .compositing_oracle import project_points, render_oracle, triangle_window
from .finite_diff import check_gradients
from .scenes import cameras

F64 = torch.float64


def _render(vertices, colors, opacities, sigma, viewmats, Ks, w, h, **kw):
    return rasterize_triangles(
        vertices, colors, opacities, sigma, viewmats, Ks, w, h, backend="reference", **kw
    )


def _pixel_camera(dtype=F64):
    """Camera at z = -1 looking at the z = 0 plane with f = 10, c = 0: pixel = 10 * (x, y)."""
    viewmat = torch.eye(4, dtype=dtype)
    viewmat[2, 3] = 1.0
    K = torch.tensor([[10.0, 0, 0], [0, 10.0, 0], [0, 0, 1]], dtype=dtype)
    return viewmat[None], K[None]


def _lift(pixels, dtype=F64):
    """World points on z = 0 that project to the given pixel coordinates [..., 2]."""
    p = torch.as_tensor(pixels, dtype=dtype) / 10.0
    return torch.cat([p, torch.zeros(p.shape[:-1] + (1,), dtype=dtype)], -1)


@pytest.mark.parametrize("dtype", [torch.float32, F64])
def test_right_triangle_window_by_hand(dtype):
    # Legs of 12 px: inradius r = (12 + 12 - 12 sqrt 2) / 2; the incentre sits on pixel (8, 8).
    r = 12 - 6 * math.sqrt(2)
    p0 = (8.5 - r, 8.5 - r)
    tri = _lift([[p0, (p0[0] + 12, p0[1]), (p0[0], p0[1] + 12)]], dtype)
    viewmats, Ks = _pixel_camera(dtype)
    o, s = 0.9, 1.7
    out = _render(tri, torch.ones(1, 1, dtype=dtype), torch.tensor([o], dtype=dtype),
                  torch.tensor([s], dtype=dtype), viewmats, Ks, 20, 20)  # fmt: skip
    alpha = out.alphas[0, ..., 0].double()
    assert alpha[8, 8].item() == pytest.approx(o, rel=1e-5)  # window 1 at the incentre
    # Pixel (9, 8): distances to the legs r and r + 1, to the hypotenuse (11 - 2r) / sqrt 2.
    phi = max(-r, -(r + 1), (2 * r - 11) / math.sqrt(2))
    assert alpha[8, 9].item() == pytest.approx(o * (phi / -r) ** s, rel=1e-5)
    # Zero outside: pixel centres with x < p0.x, y < p0.y or x + y > p0.x + p0.y + 12.
    ys, xs = torch.meshgrid(torch.arange(20) + 0.5, torch.arange(20) + 0.5, indexing="ij")
    outside = (xs < p0[0]) | (ys < p0[1]) | (xs + ys > p0[0] + p0[1] + 12)
    assert (alpha[outside] == 0).all() and (alpha[~outside] > 0).any()
    assert out.radii[0, 0].tolist() == [7, 7]  # ceil(12 / 2) + 1
    torch.testing.assert_close(
        out.means2d[0, 0].double(), torch.tensor([p0[0] + 6, p0[1] + 6], dtype=F64)
    )


def _random_triangles(n, seed=0, size=0.35):
    g = torch.Generator().manual_seed(seed)
    centres = (torch.rand(n, 1, 3, generator=g, dtype=F64) - 0.5) * 1.2
    verts = centres + size * torch.randn(n, 3, 3, generator=g, dtype=F64)
    opac = 0.3 + 0.6 * torch.rand(n, generator=g, dtype=F64)
    sigma = 1.2 + 1.3 * torch.rand(n, generator=g, dtype=F64)
    return verts, opac, sigma


def test_matches_per_pixel_oracle():
    verts, opac, sigma = _random_triangles(10, size=0.6)
    viewmats, Ks = cameras(2, 20, 16)
    feats = torch.rand(10, 5, dtype=F64)
    bgs = torch.rand(2, 5, dtype=F64)
    out = _render(verts, feats, opac, sigma, viewmats, Ks, 20, 16, backgrounds=bgs)
    for v in range(2):
        tri2d, z = project_points(verts.numpy(), viewmats[v].numpy(), Ks[v].numpy())
        order = sorted(range(10), key=lambda n: z[n].mean())
        img, alpha, mw = render_oracle(
            20, 16, order, lambda n, x, y: triangle_window(tri2d[n], sigma[n].item(), x, y),
            opac.numpy(), feats.numpy(), bgs[v].numpy(),
        )  # fmt: skip
        assert (alpha > 0).mean() > 0.2
        np.testing.assert_allclose(out.colors[v].numpy(), img, atol=1e-10)
        np.testing.assert_allclose(out.alphas[v, ..., 0].numpy(), alpha, atol=1e-10)
        np.testing.assert_allclose(out.max_weights[v].numpy(), mw, atol=1e-10)
    # Expected depth: render the camera depth of each triangle's centroid as a feature.
    zc = torch.stack(
        [
            torch.from_numpy(
                project_points(verts.numpy(), viewmats[v].numpy(), Ks[v].numpy())[1].mean(-1)
            )
            for v in range(2)
        ]
    )
    ref = _render(verts, zc[..., None], opac, sigma, viewmats, Ks, 20, 16)
    mask = out.alphas > 0
    torch.testing.assert_close(out.depths[mask], (ref.colors / out.alphas.clamp_min(1e-300))[mask])


def test_gradients_match_finite_differences():
    verts, opac, sigma = _random_triangles(3, seed=3, size=0.5)
    viewmats, Ks = cameras(2, 16, 12)
    inputs = {
        "vertices": verts, "colors": torch.rand(3, 3, dtype=F64), "opacities": opac,
        "sigma": sigma, "backgrounds": torch.rand(2, 3, dtype=F64),
    }  # fmt: skip
    inputs = {k: v.clone().requires_grad_() for k, v in inputs.items()}

    def fn(vertices, colors, opacities, sigma, backgrounds):
        out = _render(vertices, colors, opacities, sigma, viewmats, Ks, 16, 12,
                      backgrounds=backgrounds)  # fmt: skip
        return out.colors, out.alphas, out.depths

    check_gradients(fn, inputs, rtol=1e-4, atol=1e-6)


def test_zero_area_and_behind_camera_triangles_are_culled():
    verts, opac, sigma = _random_triangles(3, seed=5)
    viewmats, Ks = cameras(1, 16, 12)
    bad = verts.clone()
    bad[1, 2] = 0.5 * (bad[1, 0] + bad[1, 1])  # collinear vertices: zero area
    cam_pos = torch.linalg.inv(viewmats[0])[:3, 3]
    bad[2, 0] = cam_pos - 0.5 * (viewmats[0, 2, :3])  # one vertex behind the camera
    bad = bad.requires_grad_()
    cols = torch.rand(3, 3, dtype=F64)
    out = _render(bad, cols, opac, sigma, viewmats, Ks, 16, 12)
    assert out.radii[0, 1].tolist() == [0, 0] and out.radii[0, 2].tolist() == [0, 0]
    alone = _render(verts[:1], cols[:1], opac[:1], sigma[:1], viewmats, Ks, 16, 12)
    torch.testing.assert_close(out.colors, alone.colors, rtol=0, atol=1e-14)
    out.colors.sum().backward()
    assert torch.isfinite(bad.grad).all() and (bad.grad[1:] == 0).all()


def test_means2d_grad_is_the_footprint_translation_gradient():
    verts, opac, sigma = _random_triangles(4, seed=7)
    viewmats, Ks = cameras(1, 16, 12)
    Ks = Ks.clone().requires_grad_()
    out = _render(verts.clone().requires_grad_(), torch.rand(4, 3, dtype=F64), opac, sigma,
                  viewmats, Ks, 16, 12)  # fmt: skip
    (out.colors * torch.randn_like(out.colors)).sum().backward()
    g = out.means2d.grad
    assert g is not None and g.abs().sum() > 0
    torch.testing.assert_close(g[0, :, 0].sum(), Ks.grad[0, 0, 2])
    torch.testing.assert_close(g[0, :, 1].sum(), Ks.grad[0, 1, 2])
