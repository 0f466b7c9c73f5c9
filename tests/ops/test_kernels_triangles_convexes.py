"""CPU kernels for triangles and smooth convexes against the pure-PyTorch reference twin."""

from __future__ import annotations

import pytest
import torch

from recon.ops import reference as ref
from tests.ops.test_kernels_gaussians import cameras, rel_err

kernels = pytest.importorskip("recon.ops.kernels")
_ok, _why = kernels.available("cpu")
pytestmark = pytest.mark.skipif(not _ok, reason=f"CPU kernels unavailable: {_why}")


def triangles(N: int) -> dict[str, torch.Tensor]:
    """Well-shaped random triangles (rotated equilateral ones, jittered) plus two bad ones."""
    centres = torch.randn(N, 1, 3) * 0.7
    ang = torch.tensor([0.0, 2.094, 4.189])
    unit = torch.stack([ang.cos(), ang.sin(), torch.zeros(3)], -1)  # [3, 3]
    rot = torch.linalg.qr(torch.randn(N, 3, 3)).Q
    verts = centres + 0.25 * unit @ rot.transpose(1, 2) + torch.randn(N, 3, 3) * 0.03
    verts[0] = torch.tensor([[0.0, 0.0, 0.0], [0.1, 0.0, 0.0], [0.3, 0.0, 0.0]])  # zero area in view 0
    verts[1] = torch.tensor([[0.0, 0.0, -4.5], [0.3, 0.0, -3.0], [0.0, 0.3, -3.0]])  # behind cam 0
    return {"vertices": verts, "sigma": torch.rand(N) * 1.5 + 0.3, "opacities": torch.rand(N) * 0.9 + 0.05}


def convexes(N: int, K: int = 6) -> dict[str, torch.Tensor]:
    points = torch.randn(N, 1, 3) * 0.7 + torch.randn(N, K, 3) * 0.2
    points[0] = torch.linspace(-0.3, 0.3, K)[:, None] * torch.tensor([1.0, 0.0, 0.0])  # collinear
    points[1, :, 2] -= 4.6  # behind / through camera 0
    return {
        "points": points,
        "delta": torch.rand(N) * 0.05 + 0.02,
        "sigma": torch.rand(N) * 0.02 + 0.01,
        "opacities": torch.rand(N) * 0.9 + 0.05,
    }


def render(module, family, p, feats, viewmats, Ks, W, H, bg=None):
    if family == "triangle":
        m2, d, v2, radii = module.project_triangles(p["vertices"], viewmats, Ks, W, H)
        extra = (v2,)
    else:
        m2, d, p2, hull, radii = module.project_convexes(
            p["points"], p["delta"], p["sigma"], p["opacities"], viewmats, Ks, W, H
        )
        extra = (p2, hull)
    offsets, ids = module.isect_tiles(m2, radii, d, W, H)
    f = torch.cat([feats, d[..., None]], dim=-1)
    if family == "triangle":
        out = module.rasterize_triangles_to_pixels(
            v2, p["sigma"], f, p["opacities"], W, H, offsets, ids, backgrounds=bg
        )
    else:
        out = module.rasterize_convexes_to_pixels(
            p2, hull, p["delta"], p["sigma"], d, f, p["opacities"], W, H, offsets, ids, backgrounds=bg
        )
    return out, (m2, d, radii, *extra), (offsets, ids)


SIZES = [(1, 30, 32, 32, 1), (2, 200, 48, 32, 3), (3, 300, 64, 48, 8)]


@pytest.mark.parametrize("family", ["triangle", "convex"])
@pytest.mark.parametrize("V,N,W,H,C", SIZES)
def test_projection_matches_reference(family, V, N, W, H, C):
    viewmats, Ks = cameras(V, W, H)
    p = triangles(N) if family == "triangle" else convexes(N)
    key = "vertices" if family == "triangle" else "points"
    outs = {}
    for name, module in (("ref", ref), ("cpu", kernels)):
        x = p[key].clone().requires_grad_()
        if family == "triangle":
            m2, d, v2, radii = module.project_triangles(x, viewmats, Ks, W, H)
            diff, extra = (m2, d, v2), ()
        else:
            m2, d, p2, hull, radii = module.project_convexes(
                x, p["delta"], p["sigma"], p["opacities"], viewmats, Ks, W, H
            )
            diff, extra = (d, p2), (hull, m2)
        outs[name] = (diff, extra, radii, x)
    (d_r, e_r, r_r, x_r), (d_c, e_c, r_c, x_c) = outs["ref"], outs["cpu"]
    valid = r_r.gt(0).all(-1)
    assert not valid[0, 0] and not valid[0, 1]  # degenerate and behind-the-camera primitives culled
    assert valid.sum() > V * N // 2
    assert torch.equal(r_c, r_r)
    if family == "convex":  # same hull indices; footprint centres from a double-precision
        assert torch.equal(e_c[0], e_r[0])  # vertex search on float32 lines agree to ~1e-5
        torch.testing.assert_close(e_c[1][valid], e_r[1][valid], atol=1e-3, rtol=1e-4)
    for a, b in zip(d_r, d_c):
        torch.testing.assert_close(b[valid], a[valid], atol=1e-4, rtol=1e-5)
    cot = [torch.randn_like(t) * valid.reshape(V, N, *([1] * (t.dim() - 2))) for t in d_r]
    for diff, _, _, _ in (outs["ref"], outs["cpu"]):
        sum((o * v).sum() for o, v in zip(diff, cot)).backward()
    assert rel_err(x_r.grad, x_c.grad) < 1e-3


def test_convex_hull_matches_reference_on_degenerate_sets():
    # Exact duplicates, collinear points on axis-aligned lines and interior points.
    V, W, H = 1, 64, 64
    viewmats, Ks = cameras(V, W, H)
    pts = torch.tensor([
        [[0.0, 0.0, 0.0], [0.2, 0.0, 0.0], [0.4, 0.0, 0.0], [0.2, 0.3, 0.0], [0.2, 0.1, 0.0], [0.2, 0.0, 0.0]],
        [[0.0, 0.0, 0.0], [0.1, 0.0, 0.0], [0.2, 0.0, 0.0], [0.3, 0.0, 0.0], [0.4, 0.0, 0.0], [0.5, 0.0, 0.0]],
        [[0.0, 0.0, 0.0], [0.3, 0.0, 0.0], [0.3, 0.3, 0.0], [0.0, 0.3, 0.0], [0.15, 0.0, 0.0], [0.1, 0.1, 0.0]],
    ])  # fmt: skip
    N = pts.shape[0]
    args = (torch.full((N,), 0.05), torch.full((N,), 0.02), torch.full((N,), 0.8), viewmats, Ks, W, H)
    hull_r = ref.project_convexes(pts, *args)[3]
    hull_c = kernels.project_convexes(pts, *args)[3]
    assert torch.equal(hull_c, hull_r)
    assert hull_c[0, 1].eq(-1).all() and (hull_c[0, 2] >= 0).sum() == 4


@pytest.mark.parametrize("family", ["triangle", "convex"])
@pytest.mark.parametrize("V,N,W,H,C", SIZES)
def test_rasterize_matches_reference(family, V, N, W, H, C):
    viewmats, Ks = cameras(V, W, H)
    p = triangles(N) if family == "triangle" else convexes(N)
    feats = torch.rand(V, N, C)
    bg = torch.rand(V, C + 1)
    results = {}
    for name, module in (("ref", ref), ("cpu", kernels)):
        pp = {k: v.clone().requires_grad_() for k, v in p.items()}
        ff = feats.clone().requires_grad_()
        bb = bg.clone().requires_grad_()
        (colors, alphas, max_w), _, _ = render(module, family, pp, ff, viewmats, Ks, W, H, bb)
        gen = torch.Generator().manual_seed(5)
        v_c, v_a = torch.randn(colors.shape, generator=gen), torch.randn(alphas.shape, generator=gen)
        ((colors * v_c).sum() + (alphas * v_a).sum()).backward()
        names = list(p)
        grads = [pp[k].grad for k in names] + [ff.grad, bb.grad]
        results[name] = (colors, alphas, max_w, grads, names)
    (c_r, a_r, w_r, g_r, names), (c_c, a_c, w_c, g_c, _) = results["ref"], results["cpu"]
    assert a_r.max() > 0.3
    # A pixel whose transmittance lands within float32 rounding of the 1e-4 cut-off may keep or
    # drop one primitive (a change <= 1e-4 * T-weighted feature): allow 2e-4 at a handful of pixels.
    for a, b, tol in ((c_r[..., :C], c_c[..., :C], 1.0), (c_r[..., C:], c_c[..., C:], 5.0), (a_r, a_c, 1.0)):
        diff = (a - b).abs()
        assert diff.max() < 2e-4 * tol and (diff > 1e-4 * tol).sum() <= 2
    if W % 16 == 0 and H % 16 == 0:  # the reference also counts pixels of partial tiles
        torch.testing.assert_close(w_c, w_r, atol=1e-4, rtol=0)
    if family == "triangle":
        # Slivers (projected inradius < 0.5 px in some view, e.g. the zero-area triangle seen
        # from the side) have float32-ill-conditioned gradients (~1e3); compare the others.
        v2 = ref.project_triangles(p["vertices"], viewmats, Ks, W, H)[2]
        e = torch.roll(v2, -1, dims=-2) - v2
        cross = e[..., 0, 0] * e[..., 1, 1] - e[..., 0, 1] * e[..., 1, 0]
        inradius = cross.abs() / e.norm(dim=-1).sum(-1)  # [V, N]
        good = inradius.amin(0) > 0.5
        g_r = [g[good] if g is not None and g.shape[0] == N else g for g in g_r]
        g_c = [g[good] if g is not None and g.shape[0] == N else g for g in g_c]
    for name, a, b in zip(names + ["features", "backgrounds"], g_r, g_c):
        if a is None:  # e.g. convex delta/sigma only reach the window
            assert b is None or b.abs().max() == 0, name
            continue
        # The reference pads tile lists with primitive 0: when primitive 0 is degenerate (the
        # collinear convex) its delta/sigma gradients become NaN there; compare the rest.
        finite = torch.isfinite(a)
        assert rel_err(a[finite], b[finite]) < 1e-3, name


@pytest.mark.parametrize("family", ["triangle", "convex"])
def test_empty_image(family):
    V, N, W, H, C = 1, 20, 32, 32, 2
    viewmats, Ks = cameras(V, W, H)
    p = triangles(N) if family == "triangle" else convexes(N)
    key = "vertices" if family == "triangle" else "points"
    p[key] = p[key] * 0.05 + torch.tensor([0.0, 0.0, -8.0])  # all behind the camera
    bg = torch.rand(V, C + 1)
    (colors, alphas, max_w), proj, (_, ids) = render(kernels, family, p, torch.rand(V, N, C), viewmats, Ks, W, H, bg)
    assert proj[2].eq(0).all() and ids.numel() == 0
    torch.testing.assert_close(colors, bg[:, None, None, :].expand_as(colors))
    assert alphas.eq(0).all() and max_w.eq(0).all()
