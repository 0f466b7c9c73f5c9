"""Hypothesis-map costs and propagation of the stereo (recon.priors.patchmatch), against exact
depth of a ray-cast scene, analytic planes and scipy's median filter."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import ndimage

from recon.priors.patchmatch import (
    hypothesis_costs,
    median_filter,
    pixel_rate,
    plane_hypotheses,
    propagate,
    winner,
)
from recon.priors.stereo import _gray

from .synthetic_views import make_views


def _views(width: int = 64, height: int = 48):
    """Reference view 1 with sources 0 and 2 of the sphere-and-wall scene, exact inverse depth."""
    images, cams, depth, masks = make_views(3, width, height)
    grays = [_gray(im) for im in images]
    srcs = [(grays[s], cams.Ks[s].float(), cams.viewmats[s]) for s in (0, 2)]
    return grays[1], cams.Ks[1].float(), cams.viewmats[1], srcs, 1.0 / depth[1], masks[1]


def test_plane_hypotheses_are_exact_for_a_plane():
    h, w = 24, 40
    ys, xs = torch.meshgrid(torch.arange(h) + 0.5, torch.arange(w) + 0.5, indexing="ij")
    inv = (0.3 + 0.004 * xs - 0.002 * ys).double()  # any plane is affine in inverse depth
    hyp = plane_hypotheses(inv, (1, 4))
    assert hyp.shape == (8, h, w)
    m = 4 + 3  # away from the replicated borders (jump + gradient smoothing radius + 1)
    torch.testing.assert_close(hyp[:, m:-m, m:-m], inv[None, m:-m, m:-m].expand(8, -1, -1))


def test_median_filter_matches_scipy():
    x = torch.rand(13, 17, dtype=torch.float64)
    for size in (3, 5):
        expected = ndimage.median_filter(x.numpy(), size=size, mode="nearest")
        np.testing.assert_allclose(median_filter(x, size).numpy(), expected)


def test_pixel_rate_of_a_rectified_pair_is_focal_times_baseline_times_inverse_depth():
    f, b, inv = 100.0, 0.5, 0.25
    K = torch.tensor([[f, 0, 32.0], [0, f, 24.0], [0, 0, 1]])
    ref = torch.eye(4)
    src = torch.eye(4)
    src[0, 3] = -b  # source camera centre at x = +b
    rate = pixel_rate(K, ref, [(torch.zeros(48, 64), K, src)], torch.full((48, 64), inv))
    # disparity = f b inv, so d disparity / d(relative inv) = f b inv
    assert rate == pytest.approx(f * b * inv, rel=1e-3)


def test_winner_parabola_recovers_a_quadratic_minimum():
    hyp = torch.linspace(0.1, 0.5, 9)[:, None, None]  # [D, 1, 1]
    x0 = torch.tensor([[0.2234, 0.3712, 0.41]])  # [1, 3] true minima
    cost = (hyp - x0) ** 2 + 0.1  # [D, 1, 3]
    inv, c = winner(cost, hyp, 0.05)
    torch.testing.assert_close(inv, x0, rtol=0, atol=1e-5)
    assert bool((c >= 0.1).all())


def test_costs_prefer_the_exact_depth():
    g, K, vm, srcs, inv, mask = _views()
    hyp = torch.stack([inv, inv * 1.03, inv * 0.97])  # [3, H, W]
    cost = hypothesis_costs(g, K, vm, srcs, hyp, window=7, ad_weight=1.0)
    inner = torch.zeros_like(mask, dtype=torch.bool)
    inner[8:-8, 8:-8] = True
    assert float((cost.argmin(0) == 0)[inner].float().mean()) > 0.9
    assert float(cost[0][inner].median()) < 0.1  # the exact map matches (slanted wall included)


def test_propagation_spreads_a_correct_seed():
    g, K, vm, srcs, inv, mask = _views()
    start = torch.full_like(inv, 1 / 7.5)  # wrong (far) everywhere ...
    start[:, :6] = inv[:, :6]  # ... but for seed stripes on the wall at both sides
    start[:, -6:] = inv[:, -6:]
    wall = mask == 0

    def good(x: torch.Tensor) -> float:
        return float((((1 / x - 1 / inv).abs() * inv) < 0.01)[wall].float().mean())

    cur = start
    for _ in range(2):
        cur, _ = propagate(g, K, vm, srcs, cur, 0.002, (1 / 8, 1 / 2), 7, (1, 4, 16), ad_weight=1.0)
        cur = median_filter(cur, 5)
    assert good(start) < 0.25
    assert good(cur) > 0.9  # the wall's plane reached the whole wall (32 px in 2 iterations)


def test_geometric_term_is_the_truncated_reprojection_error():
    images, cams, depth, _ = make_views(3, 64, 48)
    g = _gray(images[1])
    src = [(_gray(images[0]), cams.Ks[0].float(), cams.viewmats[0])]
    inv = 1.0 / depth[1]
    hyp = torch.stack([inv, inv * 1.25])  # exact, and 25 % off (~4 px of parallax at 64x48)
    args = (g, cams.Ks[1].float(), cams.viewmats[1], src, hyp, 7)
    plain = hypothesis_costs(*args)
    geo = hypothesis_costs(*args, src_depths=[depth[0]], geo_weight=1.0, geo_trunc=2.0) - plain
    inner = torch.zeros_like(g, dtype=torch.bool)
    inner[8:-8, 8:-8] = True
    seen = inner & (plain[0] < 2.0)  # pixels the source sees
    # Exact depth: the round trip through the source's exact depth comes back (up to the
    # nearest-pixel lookup); 25 % off: the error is past the 2 px truncation almost everywhere.
    assert float(geo[0][seen].median()) < 0.15
    assert float(geo[1][seen].median()) > 0.9
    assert float(geo.max()) <= 1.0 + 1e-5 and float(geo.min()) >= -1e-5
