"""Reference twin, GES: beta = 2 is the Gaussian, per-pixel oracle, finite differences, footprint."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch

from recon.ops.family import GES
from recon.ops.rasterize import rasterize
from recon.ops.reference import project_ges
from recon.ops.validate import RasterInputError

from .compositing_oracle import render_oracle
from .finite_diff import check_gradients
from .scenes import cameras, random_gaussians

F64 = torch.float64


def _ges_window(mean, conic, beta, x, y):
    """The generalized exponential exp(-(q/2)^(beta/2)) written from METHODS.md (float64)."""
    dx, dy = x - mean[0], y - mean[1]
    a, b, c = conic
    half_q = 0.5 * (a * dx * dx + c * dy * dy) + b * dx * dy
    return 0.0 if half_q < 0 else math.exp(-(half_q ** (beta / 2)))


def _scene(n=4, views=2, w=16, h=12, dtype=F64):
    means, quats, scales, opac = (t.to(dtype) for t in random_gaussians(n, scale=0.25, spread=0.4))
    viewmats, Ks = (t.to(dtype) for t in cameras(views, w, h))
    colors = torch.rand(n, 3, dtype=dtype, generator=torch.Generator().manual_seed(1))
    beta = (0.6 + 5.0 * torch.rand(n, dtype=F64, generator=torch.Generator().manual_seed(2))).to(dtype)
    return {"means": means, "quats": quats, "scales": scales, "opacities": opac}, beta, colors, viewmats, Ks


def _ges(prims, beta, colors, viewmats, Ks, w, h, **kw):
    return rasterize("ges", {**prims, "shape": beta}, colors, viewmats, Ks, w, h, backend="reference", **kw)


def test_beta_two_equals_the_gaussian_render_exactly():
    prims, beta, colors, viewmats, Ks = _scene(n=40, views=2, w=40, h=30, dtype=torch.float32)
    bgs = torch.rand(2, 3)
    grads = []
    outs = []
    for fam in ("ges", "gaussian"):
        leaves = {k: v.clone().requires_grad_() for k, v in prims.items()}
        inputs = {**leaves, "shape": torch.full_like(beta, 2.0)} if fam == "ges" else leaves
        out = rasterize(fam, inputs, colors, viewmats, Ks, 40, 30, backgrounds=bgs, backend="reference")
        (out.colors.square().sum() + out.depths.sum()).backward()
        outs.append(out)
        grads.append({k: v.grad for k, v in leaves.items()})
    ges, gauss = outs
    assert gauss.alphas.max() > 0.5
    for name in ("colors", "alphas", "depths", "max_weights", "means2d"):
        assert torch.equal(getattr(ges, name), getattr(gauss, name)), name
    # opacity-aware boxes: never larger than the Gaussian's 3.33 sigma
    assert (ges.radii <= gauss.radii).all() and (ges.radii < gauss.radii).any()
    for k in prims:
        torch.testing.assert_close(grads[0][k], grads[1][k], rtol=1e-6, atol=1e-7, msg=k)


def test_matches_per_pixel_oracle():
    prims, beta, _, viewmats, Ks = _scene(n=10, views=2, w=20, h=18)
    feats = torch.rand(10, 5, dtype=F64)
    bgs = torch.rand(2, 5, dtype=F64)
    out = _ges(prims, beta, feats, viewmats, Ks, 20, 18, backgrounds=bgs)
    m2d, depth, conics, radii = project_ges(*(prims[k] for k in ("means", "quats", "scales")), beta,
                                            prims["opacities"], viewmats, Ks, 20, 18)  # fmt: skip
    for v in range(2):
        order = sorted((n for n in range(10) if radii[v, n].min() > 0), key=lambda n: float(depth[v, n]))
        m2, con, b = m2d[v].numpy(), conics[v].numpy(), beta.numpy()
        img, alpha, mw = render_oracle(
            20, 18, order, lambda n, x, y, m2=m2, con=con, b=b: _ges_window(m2[n], con[n], b[n], x, y),
            prims["opacities"].numpy(), feats.numpy(), bgs[v].numpy(),
        )  # fmt: skip
        np.testing.assert_allclose(out.colors[v].numpy(), img, atol=1e-10)
        np.testing.assert_allclose(out.alphas[v, ..., 0].numpy(), alpha, atol=1e-10)
        np.testing.assert_allclose(out.max_weights[v].numpy(), mw, atol=1e-10)


def test_gradients_match_finite_differences_including_beta():
    prims, beta, colors, viewmats, Ks = _scene(n=3)
    inputs = {**prims, "shape": beta, "colors": colors}
    inputs = {k: v.clone().requires_grad_(k != "opacities") for k, v in inputs.items()}
    inputs["opacities"].requires_grad_()

    def fn(means, quats, scales, opacities, shape, colors):
        prims = {"means": means, "quats": quats, "scales": scales, "opacities": opacities}
        out = _ges(prims, shape, colors, viewmats, Ks, 16, 12)
        return out.colors, out.alphas, out.depths

    check_gradients(fn, inputs, rtol=1e-4, atol=1e-6)
    v_beta = torch.autograd.grad(fn(**inputs)[0].sum(), inputs["shape"])[0]
    assert (v_beta.abs() > 1e-4).all()  # beta is learnt through the window


@pytest.mark.parametrize("beta", [0.5, 1.0, 2.0, 4.0, 8.0])
def test_footprint_box_holds_every_pixel_above_the_alpha_threshold(beta):
    """Brute force on a large canvas: every pixel with o w >= 1/255 lies in the box, the box is tight."""
    n, w, h = 12, 160, 120
    prims, _, _, viewmats, Ks = _scene(n=n, views=1, w=w, h=h)
    prims["opacities"] = torch.linspace(0.01, 1.0, n, dtype=F64)
    shape = torch.full((n,), beta, dtype=F64)
    m2d, _, conics, radii = project_ges(*(prims[k] for k in ("means", "quats", "scales")), shape,
                                        prims["opacities"], viewmats, Ks, w, h)  # fmt: skip
    xs, ys = np.meshgrid(np.arange(w) + 0.5, np.arange(h) + 0.5)
    grown = 0
    for i in range(n):
        if radii[0, i].max() == 0:
            continue
        (mx, my), (a, b, c), o = m2d[0, i].tolist(), conics[0, i].tolist(), float(prims["opacities"][i])
        dx, dy = xs - mx, ys - my
        half_q = np.maximum(0.5 * (a * dx * dx + c * dy * dy) + b * dx * dy, 0.0)
        alpha = np.minimum(0.99, o * np.exp(-(half_q ** (beta / 2))))
        hit = alpha >= 1 / 255
        rx, ry = radii[0, i].tolist()
        assert (np.abs(dx[hit]) <= rx).all() and (np.abs(dy[hit]) <= ry).all()
        # tight: the analytic extent of the level set, rounded up (no 3.33-sigma padding)
        level = math.log(255 * o) ** (2 / beta)
        det = a * c - b * b
        assert rx == math.ceil(math.sqrt(2 * level * c / det) * (1 + 1e-6))
        grown += rx > math.ceil(3.33 * math.sqrt(c / det))
    assert (grown > 0) == (beta < 2)


def test_opacity_at_the_threshold_is_culled():
    prims, beta, _, viewmats, Ks = _scene(n=2)
    prims["opacities"] = torch.tensor([1 / 255, 0.5], dtype=F64)
    radii = project_ges(*(prims[k] for k in ("means", "quats", "scales")), beta, prims["opacities"], viewmats,
                        Ks, 16, 12)[-1]  # fmt: skip
    assert (radii[:, 0] == 0).all() and (radii[:, 1] > 0).any()


def test_a_family_without_kernel_renders_with_the_reference():
    prims, beta, colors, viewmats, Ks = _scene(n=6, dtype=torch.float32)
    no_kernel = dataclasses.replace(GES, kernel_id=None)
    inputs = {**prims, "shape": beta}
    auto = rasterize(no_kernel, inputs, colors, viewmats, Ks, 16, 12, backend="auto")
    ref = rasterize(GES, inputs, colors, viewmats, Ks, 16, 12, backend="reference")
    assert auto.alphas.sum() > 0 and torch.equal(auto.colors, ref.colors)
    with pytest.raises(RasterInputError, match="no compiled kernel"):
        rasterize(no_kernel, inputs, colors, viewmats, Ks, 16, 12, backend="cpu")
    with pytest.raises(RasterInputError, match="shape"):
        rasterize(GES, {**prims, "shape": -beta}, colors, viewmats, Ks, 16, 12, backend="reference")
