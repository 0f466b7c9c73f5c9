"""Repair rounds without training: the model is asked once, rounds replace their views, draws are
per step, weights follow the schedule, a refused model turns repair off; colour matching."""

from __future__ import annotations

import pytest
import torch

from recon.cameras import Cameras
from recon.config import RepairConfig
from recon.data.synthetic import default_world, make_synthetic_scene, render_world
from recon.render.render import RenderOutput
from recon.repair.rounds import RepairRounds, load_round
from recon.repair.schedule import loss_weight
from recon.repair.source import match_colors


class _Brighter:
    """A stand-in repair model: the render, brighter (a known, deterministic change)."""

    def repair(self, inputs, **_):
        return (inputs[:, :3] * 1.1).clamp(0, 1)


@pytest.fixture(scope="module")
def scene():
    return make_synthetic_scene(num_views=6, width=40, height=32)


def _render_fn(scene):
    world = default_world(tuple(scene.meta["background"]))

    def render_fn(cam: Cameras) -> RenderOutput:
        img, depth, mask = render_world(world, cam, supersample=1)
        empty = torch.zeros(1, 0, 2)
        return RenderOutput(rgb=img, depth=depth[..., None], alpha=mask[..., None], means2d=empty, radii=empty,
                            max_weights=torch.zeros(1, 0))

    return render_fn


def _rounds(scene, model_fn, folder=None, masks=None, **kw) -> RepairRounds:
    config = RepairConfig(**{"rounds": 2, "first": 0.2, "last": 0.5, "stop": 0.9, "ramp": 0.1, "probability": 0.5,
                             "orbit_tilt": 0.0, "color_match": False, **kw})  # fmt: skip
    train = [0, 1, 2, 3]
    return RepairRounds(config, 100, 0, model_fn, _render_fn(scene), scene.cameras[train],
                        [scene.images[i] for i in train], folder, say=lambda _: None, masks=masks)


def test_rounds_ask_once_replace_views_and_draw_per_step(scene, tmp_path):
    calls = []
    rounds = _rounds(scene, lambda step: calls.append(step) or _Brighter(), tmp_path)
    assert rounds.views(19) == [] and calls == []  # before the first round
    assert rounds.views(20) == [] and calls == [20]  # round 1 made; its weight starts at 0
    first = [v.image for v in rounds.current]
    drawn = {s: rounds.views(s) for s in range(21, 50)}
    assert calls == [20]
    hits = [s for s, v in drawn.items() if v]
    assert 5 <= len(hits) <= 25  # probability 0.5 over 29 steps
    for s in hits:
        (view,) = drawn[s]
        match = [k for k, v in enumerate(rounds.current) if torch.equal(v.image, view.image)]
        assert len(match) == 1
        assert torch.allclose(view.weight, rounds.current[match[0]].weight * loss_weight(rounds.config, 100, s))
    assert [bool(v) for v in map(rounds.views, hits)] == [True] * len(hits)  # the same draw at the same step
    rounds.views(50)
    assert rounds.round == 1 and calls == [20] and len(rounds.current) == len(first) // 2  # midpoints only
    assert not any(torch.equal(a.image, b) for a in rounds.current for b in first)
    saved = load_round(tmp_path / "round_1")
    assert all(torch.equal(a.image, b.image) and torch.equal(a.weight, b.weight) for a, b in
               zip(saved, rounds.current, strict=True))
    assert all(rounds.views(s) == [] for s in range(90, 100))  # after stop


def test_alpha_threshold_reaches_the_pseudo_views(scene):
    """``repair.alpha_threshold`` 0 puts loss on the empty pixels too (holes and background)."""
    default, every = (_rounds(scene, lambda step: _Brighter(), **kw) for kw in ({}, {"alpha_threshold": 0.0}))
    default.views(20), every.views(20)
    assert any(bool((v.weight == 0).any()) for v in default.current)
    assert all(bool((v.weight > 0).all()) for v in every.current)


def test_hull_option_hands_the_masks_to_the_pseudo_views(scene):
    """``repair.hull``: the visual hull's silhouette joins the rendered coverage; without it the masks are unused."""
    masks = [scene.masks[i] for i in range(4)]
    plain, off, hull = (_rounds(scene, lambda step: _Brighter(), masks=m, hull=h)
                        for m, h in ((None, False), (masks, False), (masks, True)))  # fmt: skip
    for r in (plain, off, hull):
        r.views(20)
    assert all(torch.equal(a.weight, b.weight) for a, b in zip(plain.current, off.current, strict=True))
    grown = [int((b.weight > 0).sum()) - int((a.weight > 0).sum()) for a, b in zip(plain.current, hull.current, strict=True)]
    assert all(g >= 0 for g in grown) and sum(grown) > 0  # the hull is larger than the object it wraps


def test_a_refused_model_turns_repair_off_for_good(scene):
    calls = []
    rounds = _rounds(scene, lambda step: calls.append(step))
    assert all(rounds.views(s) == [] for s in range(100)) and calls == [20]


def test_match_colors_moves_masked_statistics_to_the_reference():
    gen = torch.Generator().manual_seed(0)
    ref = 0.3 + 0.2 * torch.rand(24, 32, 3, generator=gen)
    image = 0.1 + 0.5 * torch.rand(24, 32, 3, generator=gen)
    mask = torch.zeros(24, 32)
    mask[4:20, 6:30] = 1
    out = match_colors(image, ref, mask)
    inside = mask > 0.5
    assert torch.allclose(out[inside].mean(0), ref[inside].mean(0), atol=1e-5)
    assert torch.allclose(out[inside].std(0), ref[inside].std(0), atol=1e-5)
    # an affine map per channel: the ordering of pixel values is kept everywhere
    assert torch.equal(out[..., 0].flatten().argsort(), image[..., 0].flatten().argsort())
    assert torch.equal(match_colors(image, ref, torch.zeros(24, 32)), image)  # nothing to match on


def test_rounds_add_the_orbit_after_the_interpolated_cameras(scene):
    from recon.repair.schedule import orbit_cameras

    rounds = _rounds(scene, lambda step: None, orbit=5)
    plain = _rounds(scene, lambda step: None, orbit=0).cameras_for_round(0)
    cams = rounds.cameras_for_round(0)
    assert len(cams) == len(plain) + 5
    assert torch.allclose(cams.viewmats[: len(plain)], plain.viewmats, atol=1e-6)
    assert torch.allclose(cams.viewmats[len(plain) :], orbit_cameras(rounds.train_cameras, 5).viewmats, atol=1e-6)
