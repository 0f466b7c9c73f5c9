"""Densification strategies: geometry of children, relocation formula, growth on gradients."""

from __future__ import annotations

import math

import torch

from recon.primitives import gaussian
from recon.strategy import ConvexStrategy, DefaultStrategy, MCMCStrategy, TriangleStrategy
from recon.strategy.convex import split_convexes
from recon.strategy.mcmc import relocation_values
from recon.strategy.triangle import in_plane_noise, subdivide


def _params(raw):
    params = {k: torch.nn.Parameter(v.clone()) for k, v in raw.items()}
    return params, {k: torch.optim.Adam([p], lr=1e-3) for k, p in params.items()}


def _area(v):
    return 0.5 * torch.linalg.cross(v[:, 1] - v[:, 0], v[:, 2] - v[:, 0]).norm(dim=-1)


def test_subdivide_preserves_area_and_plane():
    v = torch.randn(5, 3, 3)
    kids = subdivide(v)
    assert kids.shape == (20, 3, 3)
    torch.testing.assert_close(_area(kids).reshape(4, 5).sum(0), _area(v), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(_area(kids).reshape(4, 5), (_area(v) / 4).expand(4, 5), rtol=1e-4, atol=1e-6)
    noise = in_plane_noise(v)
    normal = torch.linalg.cross(v[:, 1] - v[:, 0], v[:, 2] - v[:, 0])
    torch.testing.assert_close((noise * normal).sum(-1), torch.zeros(5), atol=1e-5, rtol=0)


def test_convex_children_inside_parent_and_touch_vertex():
    pts = torch.randn(3, 6, 3)
    kids = split_convexes(pts, 0.63).reshape(6, 3, 6, 3)  # [child j, parent, K, 3]
    for j in range(6):
        torch.testing.assert_close(kids[j, :, j], pts[:, j])  # child j keeps vertex j fixed
    # every child point is a convex combination of parent points: p' = v_j + s (p - v_j)
    torch.testing.assert_close(kids[2, :, 4], 0.37 * pts[:, 2] + 0.63 * pts[:, 4])


def test_relocation_formula_single_and_pairs():
    o = torch.tensor([0.3, 0.8, 0.5])
    s = torch.rand(3, 3) + 0.1
    new_o, new_s = relocation_values(o, s, torch.tensor([1, 1, 1]))
    torch.testing.assert_close(new_o, o)  # one copy: unchanged
    torch.testing.assert_close(new_s, s, rtol=1e-5, atol=1e-6)
    new_o, new_s = relocation_values(o, s, torch.tensor([2, 2, 2]))
    torch.testing.assert_close(new_o, 1 - (1 - o).sqrt())
    # n = 2: denom = o' + (o' - o'^2 / sqrt 2)
    op = 1 - (1 - o).sqrt()
    denom = op + op - op**2 / math.sqrt(2)
    torch.testing.assert_close(new_s, (o / denom)[:, None] * s, rtol=1e-5, atol=1e-6)


def test_mcmc_relocates_dead_and_grows():
    raw = gaussian.init_from_points(torch.rand(20, 3), torch.rand(20, 3), sh_degree=0, opacity=0.5)
    raw["opacities"][:5] = -20.0  # dead
    params, opts = _params(raw)
    strat = MCMCStrategy(cap_max=22, refine_start=0, refine_every=1)
    state = strat.initialize_state(params)
    assert strat.relocate(params, opts, state) == 5
    assert bool((torch.sigmoid(params["opacities"]) > 0.005).all())
    assert strat.add(params, opts, state) == 1  # int(1.05 * 20) = 21 <= cap 22
    assert params["means"].shape[0] == 21


def test_default_strategy_clones_and_splits_on_high_gradient():
    pts = torch.rand(4, 3)
    raw = gaussian.init_from_points(pts, torch.rand(4, 3), sh_degree=0, opacity=0.5)
    raw["scales"][0] = math.log(1e-4)  # small -> clone
    raw["scales"][1] = math.log(0.5)  # large -> split
    params, opts = _params(raw)
    strat = DefaultStrategy(refine_start=0, refine_every=1, grow_grad2d=1e-3, scene_scale=1.0, prune_scale3d=10.0)
    state = strat.initialize_state(params)
    means2d = torch.zeros(1, 4, 2, requires_grad=True)
    (means2d[0, :2].sum() * 1.0).backward()  # gradients only on rows 0 and 1
    info = {"means2d": means2d, "radii": torch.ones(1, 4, 2, dtype=torch.int32), "width": 10, "height": 10,
            "n_cameras": 1}
    strat.step_post_backward(params, opts, state, 1, info)
    # 4 + 1 clone + (2 split children - 1 parent) = 6
    assert params["means"].shape[0] == 6
    assert state["grad2d"].shape == (6,) and float(state["grad2d"].sum()) == 0.0
    split_scales = torch.exp(params["scales"][-2:])
    torch.testing.assert_close(split_scales, torch.full((2, 3), 0.5 / 1.6))


def test_triangle_strategy_resamples_budget():
    raw = {
        "vertices": torch.randn(10, 3, 3),
        "sigma": torch.zeros(10),
        "opacities": torch.zeros(10),
        "sh0": torch.zeros(10, 1, 3),
        "shN": torch.zeros(10, 0, 3),
    }
    params, opts = _params(raw)
    strat = TriangleStrategy(refine_start=0, refine_every=1, growth=1.3, split_size=24.0)
    state = strat.initialize_state(params)
    mw = torch.full((1, 10), 0.5)
    mw[0, :2] = 0.0  # two dead
    radii = torch.full((1, 10, 2), 4, dtype=torch.int32)
    strat.step_post_backward(params, opts, state, 1, {"max_weights": mw, "radii": radii})
    # n_add = 13 - 10 + 2 = 5 sampled (clones -> 2 each); 10 - 2 dead - 5 sampled + 10 new = 13
    assert params["vertices"].shape[0] == 13
    torch.testing.assert_close(torch.sigmoid(params["opacities"][-10:]).detach(),
                               torch.full((10,), 1 - math.sqrt(0.5)))


def test_convex_strategy_splits_high_sigma_gradient():
    raw = {
        "points": torch.randn(3, 6, 3),
        "delta": torch.zeros(3),
        "sigma": torch.full((3,), -7.0),
        "opacities": torch.zeros(3),
        "sh0": torch.zeros(3, 1, 3),
        "shN": torch.zeros(3, 0, 3),
    }
    params, opts = _params(raw)
    strat = ConvexStrategy(refine_start=0, refine_every=1, grad_threshold=1e-3, prune_opacity=0.0)
    state = strat.initialize_state(params)
    grad = torch.tensor([1.0, 0.0, 0.0]) * math.exp(-7.0)  # d/draw -> d/dsigma = 1 for row 0
    info = {"radii": torch.ones(1, 3, 2, dtype=torch.int32), "param_grads": {"sigma": grad}}
    strat.step_post_backward(params, opts, state, 1, info)
    assert params["points"].shape[0] == 2 + 6
    torch.testing.assert_close(torch.sigmoid(params["opacities"][-6:]).detach(), torch.full((6,), 0.25))
    torch.testing.assert_close(params["sigma"][-6:].detach(), torch.full((6,), -7.0 * 0.88))
