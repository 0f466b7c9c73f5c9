"""CPU kernels for Gaussians against the pure-PyTorch reference twin and gsplat's torch oracle."""

from __future__ import annotations

import math

import pytest
import torch

from recon.ops import reference as ref

kernels = pytest.importorskip("recon.ops.kernels")
_ok, _why = kernels.available("cpu")
pytestmark = pytest.mark.skipif(not _ok, reason=f"CPU kernels unavailable: {_why}")


def look_at(eye: list[float], target: list[float] = (0.0, 0.0, 0.0)) -> torch.Tensor:
    """World-to-camera [4, 4] (OpenCV axes) of a camera at ``eye`` looking at ``target``."""
    eye_t, tgt = torch.tensor(eye), torch.tensor(target, dtype=torch.float32)
    fwd = (tgt - eye_t) / (tgt - eye_t).norm()
    up = torch.tensor([0.0, -1.0, 0.0]) if abs(fwd[1]) < 0.99 else torch.tensor([0.0, 0.0, 1.0])
    right = torch.linalg.cross(fwd, up)
    right = right / right.norm()
    down = torch.linalg.cross(fwd, right)
    R = torch.stack([right, down, fwd])
    M = torch.eye(4)
    M[:3, :3], M[:3, 3] = R, -R @ eye_t
    return M


def cameras(V: int, W: int, H: int) -> tuple[torch.Tensor, torch.Tensor]:
    """V cameras around the origin; the second one looks from behind (+z towards -z)."""
    eyes = [[0.0, 0.0, -4.0], [0.3, -0.5, 4.0], [3.0, 1.0, 2.5], [-2.5, 2.0, -3.0]]
    viewmats = torch.stack([look_at(eyes[v % len(eyes)]) for v in range(V)])
    f = 0.9 * max(W, H)
    Ks = torch.tensor([[f, 0.0, W / 2], [0.0, f, H / 2], [0.0, 0.0, 1.0]]).expand(V, 3, 3)
    return viewmats.contiguous(), Ks.contiguous()


def gaussians(N: int, tiny: bool = False) -> dict[str, torch.Tensor]:
    """Random Gaussians around the origin, a few far behind every camera's near plane."""
    means = torch.randn(N, 3) * 0.8
    means[: max(1, N // 20)] = torch.tensor([0.0, 0.0, -4.005])  # at the first camera's near plane
    scales = torch.rand(N, 3) * (1e-4 if tiny else 0.15) + (1e-5 if tiny else 0.02)
    return {
        "means": means,
        "quats": torch.randn(N, 4),
        "scales": scales,
        "opacities": torch.rand(N) * 0.9 + 0.05,
    }


def render(module, g: dict[str, torch.Tensor], feats, viewmats, Ks, W, H, bg=None, tile_size: int = 16):
    """Stages 1-3 with the depth channel appended; returns outputs and the projection."""
    means2d, depths, conics, radii = module.project_gaussians(
        g["means"], g["quats"], g["scales"], viewmats, Ks, W, H
    )
    offsets, ids = module.isect_tiles(means2d, radii, depths, W, H, tile_size)
    f = torch.cat([feats, depths[..., None]], dim=-1)
    colors, alphas, max_w = module.rasterize_gaussians_to_pixels(
        means2d, conics, f, g["opacities"], W, H, offsets, ids, backgrounds=bg, tile_size=tile_size
    )
    return (colors, alphas, max_w), (means2d, depths, conics, radii), (offsets, ids)


def render_and_grad(module, g, feats, bg, viewmats, Ks, W, H, tile_size: int = 16):
    """:func:`render`, then a backward pass of fixed random cotangents on colours and alphas.

    Returns (colors, alphas, max_w, grads of means, quats, scales, opacities, feats[, bg])."""
    gg = {k: v.clone().requires_grad_() for k, v in g.items()}
    ff = feats.clone().requires_grad_()
    bb = None if bg is None else bg.clone().requires_grad_()
    (colors, alphas, max_w), _, _ = render(module, gg, ff, viewmats, Ks, W, H, bb, tile_size)
    gen = torch.Generator().manual_seed(3)
    v_c = torch.randn(colors.shape, generator=gen)
    v_a = torch.randn(alphas.shape, generator=gen)
    ((colors * v_c).sum() + (alphas * v_a).sum()).backward()
    grads = [gg[k].grad for k in ("means", "quats", "scales", "opacities")] + [ff.grad]
    if bb is not None:
        grads.append(bb.grad)
    return colors, alphas, max_w, grads


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a - b).norm() / a.norm().clamp_min(1e-12)).item()


SIZES = [(1, 40, 32, 32, 1), (2, 300, 48, 32, 3), (3, 600, 64, 48, 8)]


@pytest.mark.parametrize("V,N,W,H,C", SIZES)
def test_projection_matches_reference(V, N, W, H, C):
    viewmats, Ks = cameras(V, W, H)
    g = gaussians(N)
    ins = [g[k].clone().requires_grad_() for k in ("means", "quats", "scales")]
    outs = {}
    for name, module in (("ref", ref), ("cpu", kernels)):
        xs = [t.detach().clone().requires_grad_() for t in ins]
        m2, d, con, radii = module.project_gaussians(*xs, viewmats, Ks, W, H)
        outs[name] = (m2, d, con, radii, xs)
    (m_r, d_r, c_r, r_r, x_r), (m_c, d_c, c_c, r_c, x_c) = outs["ref"], outs["cpu"]
    assert r_c.dtype == torch.int32 and torch.equal(r_c, r_r)
    valid = r_r.gt(0).all(-1)
    assert 0 < valid.sum() < V * N  # some culled (behind / outside), most visible
    torch.testing.assert_close(m_c[valid], m_r[valid], atol=1e-4, rtol=1e-5)
    torch.testing.assert_close(d_c[valid], d_r[valid], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(c_c[valid], c_r[valid], atol=1e-5, rtol=1e-4)
    # Random cotangents on the visible entries (culled ones get no gradient by contract).
    cot = [torch.randn_like(t) * valid.reshape(V, N, *([1] * (t.dim() - 2))) for t in (m_r, d_r, c_r)]
    for m2, d, con, _, xs in (outs["ref"], outs["cpu"]):
        sum((o * v).sum() for o, v in zip((m2, d, con), cot)).backward()
    for a, b in zip(x_r, x_c):
        assert rel_err(a.grad, b.grad) < 1e-3


def test_projection_matches_gsplat_oracle():
    torch_impl = pytest.importorskip("gsplat.cuda._torch_impl")
    V, N, W, H = 2, 200, 64, 48
    viewmats, Ks = cameras(V, W, H)
    g = gaussians(N)
    covars, _ = torch_impl._quat_scale_to_covar_preci(g["quats"], g["scales"], True, False)
    radii_g, m2_g, d_g, con_g, _ = torch_impl._fully_fused_projection(
        g["means"], covars, viewmats, Ks, W, H
    )
    m2, d, con, radii = kernels.project_gaussians(g["means"], g["quats"], g["scales"], viewmats, Ks, W, H)
    assert torch.equal(radii, radii_g.int())
    valid = radii.gt(0).all(-1)
    torch.testing.assert_close(m2[valid], m2_g[valid], atol=1e-4, rtol=1e-5)
    torch.testing.assert_close(d[valid], d_g[valid])
    torch.testing.assert_close(con[valid], con_g[valid], atol=1e-5, rtol=1e-4)
    # gsplat's own (python loop) tile intersection followed by its offset encoding.
    tw, th = math.ceil(W / 16), math.ceil(H / 16)
    _, isect_ids, flat_g = torch_impl._isect_tiles(m2_g, radii_g, d_g, 16, tw, th)
    offsets_g = torch_impl._isect_offset_encode(isect_ids, V, tw, th)
    offsets, flat = kernels.isect_tiles(m2, radii, d, W, H)
    assert torch.equal(offsets, offsets_g)
    # gsplat's torch.sort is not stable: equal depths may swap. Compare each tile's depth
    # sequence and its set of primitives.
    counts = torch.diff(torch.cat([offsets.reshape(-1).long(), torch.tensor([flat.numel()])]))
    tile_of = torch.repeat_interleave(torch.arange(V * th * tw), counts)  # [M]
    d_flat = d.reshape(-1)
    assert torch.equal(d_flat[flat.long()], d_flat[flat_g.long()])
    key, key_g = tile_of * V * N + flat, tile_of * V * N + flat_g
    assert torch.equal(torch.sort(key).values, torch.sort(key_g).values)


@pytest.mark.parametrize("V,N,W,H,C", SIZES)
def test_isect_matches_reference(V, N, W, H, C):
    viewmats, Ks = cameras(V, W, H)
    g = gaussians(N)
    m2, d, _, radii = ref.project_gaussians(g["means"], g["quats"], g["scales"], viewmats, Ks, W, H)
    d = d.detach().clone()
    d[:, : N // 4] = d[:, :1]  # equal depths: the order must be stable in the primitive index
    for tile_size in (8, 16):
        o_r, f_r = ref.isect_tiles(m2.detach(), radii, d, W, H, tile_size)
        o_c, f_c = kernels.isect_tiles(m2.detach(), radii, d, W, H, tile_size)
        assert torch.equal(o_c, o_r) and torch.equal(f_c, f_r)


@pytest.mark.parametrize("V,N,W,H,C", SIZES)
@pytest.mark.parametrize("with_bg", [False, True])
def test_rasterize_matches_reference(V, N, W, H, C, with_bg):
    viewmats, Ks = cameras(V, W, H)
    g = gaussians(N)
    feats = torch.rand(V, N, C)
    bg = torch.rand(V, C + 1) if with_bg else None
    results = {name: render_and_grad(module, g, feats, bg, viewmats, Ks, W, H)
               for name, module in (("ref", ref), ("cpu", kernels))}
    (c_r, a_r, w_r, g_r), (c_c, a_c, w_c, g_c) = results["ref"], results["cpu"]
    assert a_r.max() > 0.5  # the scene is visible
    torch.testing.assert_close(c_c, c_r, atol=1e-4, rtol=0)  # colours and the depth channel
    torch.testing.assert_close(a_c, a_r, atol=1e-4, rtol=0)
    if W % 16 == 0 and H % 16 == 0:  # the reference also counts pixels of partial tiles
        torch.testing.assert_close(w_c, w_r, atol=1e-4, rtol=0)
    for a, b in zip(g_r, g_c):
        assert rel_err(a, b) < 1e-3


def test_tiny_scales_and_empty_image():
    V, N, W, H, C = 2, 100, 32, 32, 3
    viewmats, Ks = cameras(V, W, H)
    for g in (gaussians(N, tiny=True), {**gaussians(N), "means": torch.randn(N, 3) * 0.1 - torch.tensor([0.0, 0.0, 10.0])}):
        feats = torch.rand(V, N, C)
        (c_r, a_r, _), _, _ = render(ref, g, feats, viewmats, Ks, W, H)
        (c_c, a_c, _), _, _ = render(kernels, g, feats, viewmats, Ks, W, H)
        torch.testing.assert_close(c_c, c_r, atol=1e-4, rtol=0)
        torch.testing.assert_close(a_c, a_r, atol=1e-4, rtol=0)
    # Everything behind every camera: background only, zero gradients.
    g = {k: v.clone().requires_grad_() for k, v in gaussians(N).items()}
    viewmats = viewmats[:1]
    with torch.no_grad():
        g["means"].copy_(torch.randn(N, 3) * 0.1 + torch.tensor([0.0, 0.0, -6.0]))
    bg = torch.rand(1, C + 1)
    (colors, alphas, max_w), (_, _, _, radii), (_, ids) = render(
        kernels, g, torch.rand(1, N, C), viewmats, Ks[:1], W, H, bg
    )
    assert radii.eq(0).all() and ids.numel() == 0
    torch.testing.assert_close(colors, bg[:, None, None, :].expand_as(colors))
    assert alphas.eq(0).all() and max_w.eq(0).all()
    colors.sum().backward()
    assert all(g[k].grad.eq(0).all() for k in ("means", "quats", "scales", "opacities"))
