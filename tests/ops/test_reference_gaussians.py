"""Reference twin, Gaussians: analytic images, finite differences, edge cases, oracle loop."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from recon.ops import rasterize_gaussians

from .compositing_oracle import gaussian_window, render_oracle
from .finite_diff import check_gradients
from .scenes import cameras, random_gaussians

F64 = torch.float64


def _head_on(width=17, height=17, f=20.0, z=2.0, dtype=F64):
    viewmat = torch.eye(4, dtype=dtype)
    viewmat[2, 3] = z
    K = torch.tensor([[f, 0, width / 2], [0, f, height / 2], [0, 0, 1]], dtype=dtype)
    return viewmat[None], K[None]


def _render(means, quats, scales, opacities, colors, viewmats, Ks, w, h, **kw):
    return rasterize_gaussians(
        means, quats, scales, opacities, colors, viewmats, Ks, w, h, backend="reference", **kw
    )


@pytest.mark.parametrize("dtype", [torch.float32, F64])
def test_head_on_gaussian_matches_closed_form(dtype):
    viewmats, Ks = _head_on(dtype=dtype)
    s, o, z, f = 0.3, 0.8, 2.0, 20.0
    color = torch.tensor([[0.2, 0.6, 1.0]], dtype=dtype)
    bg = torch.tensor([[0.5, 0.1, 0.3]], dtype=dtype)
    out = _render(
        torch.zeros(1, 3, dtype=dtype), torch.tensor([[1.0, 0, 0, 0]], dtype=dtype),
        torch.full((1, 3), s, dtype=dtype), torch.tensor([o], dtype=dtype), color,
        viewmats, Ks, 17, 17, backgrounds=bg,
    )  # fmt: skip
    tol = dict(rtol=1e-5, atol=1e-6)
    # The mean projects onto the centre of pixel (8, 8): the window is exactly 1 there.
    torch.testing.assert_close(out.colors[0, 8, 8], (o * color + (1 - o) * bg)[0], **tol)
    # 3 px to the right: the dilated 2D variance is (f s / z)^2 + 0.3.
    var = (f * s / z) ** 2 + 0.3
    alpha = o * math.exp(-0.5 * 9 / var)
    torch.testing.assert_close(out.alphas[0, 8, 11, 0].item(), alpha, **tol)
    torch.testing.assert_close(out.colors[0, 8, 11], (alpha * color + (1 - alpha) * bg)[0], **tol)
    covered = out.alphas[0, ..., 0] > 0
    torch.testing.assert_close(
        out.depths[0, ..., 0][covered], torch.full_like(out.depths[0, ..., 0][covered], z), **tol
    )
    torch.testing.assert_close(out.max_weights[0, 0].item(), o, **tol)
    assert out.radii[0, 0].tolist() == [math.ceil(3.33 * math.sqrt(var))] * 2


def _scene(n=3, views=2, w=16, h=12):
    means, quats, scales, opac = random_gaussians(n, scale=0.25, spread=0.4)
    viewmats, Ks = cameras(views, w, h)
    colors = torch.rand(n, 3, dtype=F64, generator=torch.Generator().manual_seed(1))
    return means, quats, scales, opac, colors, viewmats, Ks


def test_gradients_match_finite_differences():
    means, quats, scales, opac, colors, viewmats, Ks = _scene()
    bgs = torch.rand(2, 3, dtype=F64)
    inputs = {
        "means": means, "quats": quats, "scales": scales, "opacities": opac,
        "colors": colors, "backgrounds": bgs,
    }  # fmt: skip
    inputs = {k: v.clone().requires_grad_() for k, v in inputs.items()}

    def fn(means, quats, scales, opacities, colors, backgrounds):
        out = _render(means, quats, scales, opacities, colors, viewmats, Ks, 16, 12,
                      backgrounds=backgrounds)  # fmt: skip
        return out.colors, out.alphas, out.depths

    check_gradients(fn, inputs, rtol=1e-4, atol=1e-6)


def test_sh_gradients_match_finite_differences():
    means, quats, scales, opac, _, viewmats, Ks = _scene(n=2)
    sh = (0.3 * torch.randn(2, 16, 3, dtype=F64)).requires_grad_()
    means = means.clone().requires_grad_()

    def fn(sh, means):
        out = _render(means, quats, scales, opac, sh, viewmats, Ks, 16, 12, sh_degree=3)
        return (out.colors,)

    check_gradients(fn, {"sh": sh, "means": means}, rtol=1e-4, atol=1e-6)


def test_matches_per_pixel_oracle_with_seven_channels():
    means, quats, scales, opac, _, viewmats, Ks = _scene(n=12, views=2, w=20, h=18)
    feats = torch.rand(12, 7, dtype=F64)
    bgs = torch.rand(2, 7, dtype=F64)
    out = _render(means, quats, scales, opac, feats, viewmats, Ks, 20, 18, backgrounds=bgs)
    for v in range(2):
        m2 = out.means2d[v].detach().numpy()
        from recon.ops.reference import project_gaussians

        _, depth, conics, radii = project_gaussians(means, quats, scales, viewmats, Ks, 20, 18)
        visible = [n for n in range(12) if radii[v, n].min() > 0]
        order = sorted(visible, key=lambda n: float(depth[v, n]))
        con = conics[v].numpy()
        img, alpha, mw = render_oracle(
            20, 18, order, lambda n, x, y: gaussian_window(m2[n], con[n], x, y),
            opac.numpy(), feats.numpy(), bgs[v].numpy(),
        )  # fmt: skip
        np.testing.assert_allclose(out.colors[v].detach().numpy(), img, atol=1e-10)
        np.testing.assert_allclose(out.alphas[v, ..., 0].detach().numpy(), alpha, atol=1e-10)
        np.testing.assert_allclose(out.max_weights[v].numpy(), mw, atol=1e-10)


def test_channel_counts_are_independent():
    means, quats, scales, opac, _, viewmats, Ks = _scene(n=8)
    feats = torch.rand(8, 7, dtype=F64)
    full = _render(means, quats, scales, opac, feats, viewmats, Ks, 16, 12)
    parts = [feats[:, :1], feats[:, 1:4], feats[:, 4:]]
    got = torch.cat(
        [_render(means, quats, scales, opac, p, viewmats, Ks, 16, 12).colors for p in parts], -1
    )
    torch.testing.assert_close(full.colors, got, rtol=0, atol=1e-12)


def test_views_with_different_backgrounds_equal_single_view_renders():
    means, quats, scales, opac, colors, viewmats, Ks = _scene(n=6, views=3)
    bgs = torch.tensor([[1.0, 0, 0], [0, 1.0, 0], [0, 0, 1.0]], dtype=F64)
    out = _render(means, quats, scales, opac, colors, viewmats, Ks, 16, 12, backgrounds=bgs)
    for v in range(3):
        one = _render(means, quats, scales, opac, colors, viewmats[v:v + 1], Ks[v:v + 1], 16, 12,
                      backgrounds=bgs[v:v + 1])  # fmt: skip
        torch.testing.assert_close(out.colors[v], one.colors[0], rtol=0, atol=1e-12)
        empty = out.alphas[v, ..., 0] == 0
        assert empty.any()
        torch.testing.assert_close(out.colors[v][empty], bgs[v].expand(int(empty.sum()), 3))


@pytest.mark.parametrize("case", ["behind", "looking_away"])
def test_invisible_gaussians_give_background_and_zero_gradients(case):
    means, quats, scales, opac, colors, _, Ks = _scene(n=5, views=1)
    viewmat = torch.eye(4, dtype=F64)
    if case == "behind":
        viewmat[2, 3] = -3.0  # every mean has camera z < 0
    else:
        viewmat[:3, :3] = torch.diag(torch.tensor([-1.0, 1.0, -1.0], dtype=F64))  # 180 deg yaw
        viewmat[2, 3] = -3.0
    params = [t.clone().requires_grad_() for t in (means, quats, scales, opac, colors)]
    bg = torch.tensor([[0.3, 0.2, 0.1]], dtype=F64)
    out = _render(*params, viewmat[None], Ks[:1], 16, 12, backgrounds=bg)
    assert (out.radii == 0).all()
    torch.testing.assert_close(
        out.colors, bg.expand(1, 12, 16, 3)[..., None, :].reshape(1, 12, 16, 3)
    )
    assert (out.alphas == 0).all() and (out.depths == 0).all()
    (out.colors.sum() + out.depths.sum()).backward()
    for p in params:
        assert p.grad is not None and torch.isfinite(p.grad).all() and (p.grad == 0).all()


def test_tiny_scales_render_the_dilation_only():
    viewmats, Ks = _head_on()
    o = 0.7
    out = _render(
        torch.zeros(1, 3, dtype=F64), torch.tensor([[1.0, 0, 0, 0]], dtype=F64),
        torch.full((1, 3), 1e-7, dtype=F64).requires_grad_(), torch.tensor([o], dtype=F64),
        torch.ones(1, 1, dtype=F64), viewmats, Ks, 17, 17,
    )  # fmt: skip
    assert out.alphas[0, 8, 8, 0].item() == pytest.approx(o, abs=1e-9)
    # Only eps2d = 0.3 px^2 remains: one pixel away alpha = o exp(-0.5 / 0.3).
    assert out.alphas[0, 8, 9, 0].item() == pytest.approx(o * math.exp(-0.5 / 0.3), rel=1e-6)
    out.colors.sum().backward()


def test_empty_scene_is_background():
    viewmats, Ks = cameras(2, 16, 12)
    bgs = torch.rand(2, 4, dtype=F64)
    z = torch.zeros(0, 3, dtype=F64)
    out = _render(z, torch.zeros(0, 4, dtype=F64), z, torch.zeros(0, dtype=F64),
                  torch.zeros(0, 4, dtype=F64), viewmats, Ks, 16, 12, backgrounds=bgs)  # fmt: skip
    assert out.colors.shape == (2, 12, 16, 4) and out.max_weights.shape == (2, 0)
    torch.testing.assert_close(out.colors, bgs[:, None, None, :].expand(2, 12, 16, 4))
    assert (out.alphas == 0).all()


def test_means2d_grad_is_the_footprint_translation_gradient():
    """d loss / d cx moves every projected mean by +1 px in x: it equals sum of means2d.grad."""
    means, quats, scales, opac, colors, viewmats, Ks = _scene(n=4, views=1)
    cot = torch.randn(1, 12, 16, 3, dtype=F64)
    Ks = Ks.clone().requires_grad_()
    out = _render(means, quats, scales, opac, colors, viewmats, Ks, 16, 12)
    (out.colors * cot).sum().backward()
    g = out.means2d.grad
    assert g is not None
    # Ks also enters the Jacobian only through the FOV clamp limits, inactive here.
    torch.testing.assert_close(g[0, :, 0].sum(), Ks.grad[0, 0, 2], rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(g[0, :, 1].sum(), Ks.grad[0, 1, 2], rtol=1e-9, atol=1e-12)


def test_checkpointed_chunks_give_identical_gradients(monkeypatch):
    from recon.ops.reference import composite

    means, quats, scales, opac, colors, viewmats, Ks = _scene(n=20)

    def grads():
        params = [t.clone().requires_grad_() for t in (means, scales, opac, colors)]
        out = _render(params[0], quats, params[1], params[2], params[3], viewmats, Ks, 16, 12)
        (out.colors.sum() + out.depths.sum()).backward()
        return [p.grad for p in params]

    plain = grads()
    monkeypatch.setattr(composite, "CHECKPOINT_ELEMENTS", 0)
    monkeypatch.setattr(composite, "CHUNK_ELEMENTS", 256)  # several chunks
    for a, b in zip(plain, grads()):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


def test_max_weights_ignore_pixels_beyond_the_image_edge():
    """Edge tiles overhang a 20 px wide image; the weight peak at x = 24.5 must not count."""
    viewmats, Ks = _head_on(width=20, height=17, f=20.0)
    Ks = Ks.clone()
    Ks[0, 0, 2] = 24.5  # the mean projects onto x = 24.5, outside the image
    o, s, z, f = 0.8, 0.2, 2.0, 20.0
    out = _render(
        torch.zeros(1, 3, dtype=F64), torch.tensor([[1.0, 0, 0, 0]], dtype=F64),
        torch.full((1, 3), s, dtype=F64), torch.tensor([o], dtype=F64),
        torch.ones(1, 1, dtype=F64), viewmats, Ks, 20, 17,
    )  # fmt: skip
    assert out.radii[0, 0, 0] > 5  # the box reaches into the image
    # gsplat clamps x/z to (W - cx)/fx + 0.3 tan(fovx/2) = -0.075 inside the Jacobian, so
    # J_x = (f/z, 0, -f (-0.075 z) / z^2) and var_x = s^2 |J_x|^2 + 0.3 (cov2d is diagonal).
    jx = (f / z) ** 2 + (f * 0.075 / z) ** 2
    var_x = s * s * jx + 0.3
    closest = o * math.exp(-0.5 * (24.5 - 19.5) ** 2 / var_x)  # column 19, row 8 (dy = 0)
    assert out.max_weights[0, 0].item() == pytest.approx(closest, rel=1e-9)
