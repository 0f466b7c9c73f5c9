"""Repair pairs: only training views are read, the warp is right, noise is what it says, files round-trip."""

from __future__ import annotations

import dataclasses
import json
import math

import pytest
import torch

from recon.config import TrainConfig, override
from recon.data.splits import Split
from recon.data.synthetic import make_synthetic_scene
from recon.errors import ConfigError, DataError
from recon.repair.dataset import CONDITION_CHANNELS, condition, load_pairs, make_pairs, random_crops, save_pairs
from recon.repair.pairs import PairConfig, perturb, training_scene, warp_neighbour
from recon.train.setup import initial_cloud, make_split

PAIRS = PairConfig(held_out=2, min_iterations=16, render_at=(0.5, 1.0), noise_per_view=1, downscale=1.0)


def _config(**kw) -> TrainConfig:
    base = {"data.path": "synthetic", "data.synthetic_width": 32, "data.synthetic_height": 24,
            "data.synthetic_views": 8, "data.test_every": 4, "iterations": 100, "init.max_points": 200,
            "optim.sh_degree": 0, "strategy.refine_start": 20, "strategy.refine_every": 20}  # fmt: skip
    base.update(kw)
    return override(TrainConfig(), **base)


@pytest.fixture(scope="module")
def scene():
    return make_synthetic_scene(num_views=8, width=32, height=24, test_every=4)


def _poisoned(scene, test: list[int]):
    """The scene with NaN images, masks and depths at the test views: reading one poisons a pair."""
    nan = lambda lst: [torch.full_like(x, math.nan) if i in test else x for i, x in enumerate(lst)]
    return dataclasses.replace(scene, images=nan(scene.images), masks=nan(scene.masks), depths=nan(scene.depths))


def _init_params(scene, split, config):
    from recon.primitives import family

    cloud = initial_cloud(scene, split.train, config.init, 0)
    return family("gaussian").init_from_points(cloud.points, cloud.colors, sh_degree=0, opacity=0.5)


def test_pairs_never_read_a_test_view(scene):
    config = _config()
    split = make_split(scene, config.data)
    assert split.test == [0, 4]
    poisoned = _poisoned(scene, split.test)
    params = _init_params(scene, split, config)
    ps = make_pairs(config, poisoned, split, params, pair_config=dataclasses.replace(PAIRS, noise_strength=0.2))
    assert {p.kind for p in ps.pairs} == {"loo", "noise"}
    assert len([p for p in ps.pairs if p.kind == "loo"]) == 2 * 2  # 2 held-out views x 2 renders
    assert len([p for p in ps.pairs if p.kind == "noise"]) == len(split.train)
    for p in ps.pairs:
        assert p.view in split.train and p.source in split.train and p.view != p.source
        for name in ("render", "alpha", "depth", "warped", "valid", "target"):
            assert torch.isfinite(getattr(p, name)).all(), (p.kind, p.view, name)
    assert {p.view for p in ps.pairs if p.kind == "loo"} == {split.train[0], split.train[-1]}
    assert ps.test_views == split.test and ps.train_views == split.train


def test_leave_one_out_needs_two_training_views(scene):
    config = _config()
    with pytest.raises(ConfigError, match="at least 2 training views"):
        make_pairs(config, scene, Split([1], [0]), pair_config=PAIRS)


def test_warp_with_true_depth_reproduces_the_view(scene):
    """The synthetic scene is Lambertian with exact depths: a neighbour warped through the true
    depth must match the view's own photo where valid, better still with the occlusion test."""
    a, b = 1, 2
    cams = scene.cameras
    warped, valid = warp_neighbour(scene.depths[a], cams[a], scene.images[b], cams[b])
    warped_occ, valid_occ = warp_neighbour(scene.depths[a], cams[a], scene.images[b], cams[b], scene.depths[b])
    err = lambda w, m: float(((w - scene.images[a]).abs().mean(-1) * m).sum() / m.sum())
    assert valid.sum() > 100 and valid_occ.sum() <= valid.sum()
    assert err(warped_occ, valid_occ) < 0.05
    assert err(warped_occ, valid_occ) < 0.8 * err(warped, valid)  # occluded pixels removed
    assert float((warped * (1 - valid[..., None])).abs().max()) == 0.0
    far = warp_neighbour(scene.depths[a] * 1.5, cams[a], scene.images[b], cams[b])  # wrong depth, wrong colours
    assert err(*far) > 2 * err(warped, valid)


def test_perturb_scales_and_dropout():
    gen = torch.Generator().manual_seed(0)
    n = 2000
    params = {"means": torch.rand(n, 3), "scales": torch.randn(n, 3) * 0.5 - 3, "quats": torch.randn(n, 4),
              "opacities": torch.randn(n), "sh0": torch.rand(n, 1, 3), "shN": torch.zeros(n, 0, 3)}
    same = perturb("gaussian", params, 0.0, 0.0, gen)
    assert all(torch.equal(same[k], params[k]) for k in params)
    noisy = perturb("gaussian", params, 0.5, 0.0, gen)
    assert torch.equal(noisy["sh0"], params["sh0"])  # colours kept
    ratio = (noisy["scales"] - params["scales"]).std(0) / params["scales"].std(0)
    assert torch.allclose(ratio, torch.full((3,), 0.5), atol=0.04)
    from recon.primitives.knn import mean_sq_knn_dist

    spacing = mean_sq_knn_dist(params["means"]).sqrt()
    moved = (noisy["means"] - params["means"]) / spacing[:, None]  # N(0, 0.5^2) per axis
    assert abs(float(moved.std()) - 0.5) < 0.04
    dropped = perturb("gaussian", params, 0.0, 0.3, gen)
    assert abs(dropped["means"].shape[0] / n - 0.7) < 0.04
    assert all(v.shape[0] == dropped["means"].shape[0] for v in dropped.values())


def test_save_load_round_trip(scene, tmp_path):
    config = _config()
    split = make_split(scene, config.data)
    ps = make_pairs(config, scene, split, pair_config=dataclasses.replace(PAIRS, held_out=1, render_at=(1.0,)))
    save_pairs(ps, tmp_path / "pairs")
    pngs = sorted(p.name for p in (tmp_path / "pairs").glob("*.png"))
    assert len(pngs) == 5 * len(ps.pairs) and pngs[0].startswith("0000_loo_v")
    back = load_pairs(tmp_path / "pairs")
    assert back.train_views == split.train and back.test_views == split.test
    for p, q in zip(ps.pairs, back.pairs, strict=True):
        assert (p.view, p.source, p.kind, p.step) == (q.view, q.source, q.kind, q.step)
        for name in ("render", "alpha", "warped", "target"):
            assert (getattr(p, name) - getattr(q, name)).abs().max() <= 0.5 / 255 + 1e-6, name
        assert torch.equal(p.valid, q.valid)
        assert (p.depth - q.depth).abs().max() <= p.depth.max() / 65535
    with pytest.raises(DataError, match="manifest.json missing"):
        load_pairs(tmp_path)


def test_random_crops_are_crops_of_the_pairs(scene):
    sub = training_scene(scene, Split([1, 2], [0]), 1.0)
    assert len(sub) == 2 and sub.images[0].shape == (24, 32, 3)
    ps = make_pairs(_config(), scene, Split([1, 2], [0]), pair_config=dataclasses.replace(PAIRS, render_at=(1.0,)))
    x, y = random_crops(ps.pairs, 6, 16, torch.Generator().manual_seed(0))
    assert x.shape == (6, CONDITION_CHANNELS, 16, 16) and y.shape == (6, 3, 16, 16)
    fulls = [torch.cat([condition(p), p.target.permute(2, 0, 1)]) for p in ps.pairs]
    for crop in torch.cat([x, y], 1):
        found = any(
            torch.equal(f[:, t : t + 16, s : s + 16], c)
            for f in fulls for c in (crop, crop.flip(-1)) for t in range(9) for s in range(17)
        )  # fmt: skip
        assert found
    with pytest.raises(DataError, match="smaller than"):
        random_crops(ps.pairs, 1, 64, torch.Generator())


@pytest.fixture(scope="module")
def fitted(scene):
    """(split, raw parameters, background) of 100 training steps on the split's views: a model whose error
    grows with attribute noise (an untrained one can get better by chance)."""
    from recon.train.trainer import Trainer

    config = _config(**{"iterations": 100, "sparse.enabled": False})
    split = make_split(scene, config.data)
    trainer = Trainer(config, scene, split, None)
    trainer.init_from_cloud(initial_cloud(scene, split.train, config.init, 0))
    trainer.train(install_sigint=False)
    return split, {k: p.detach() for k, p in trainer.params.items()}, trainer.background


def test_noise_error_of_a_masked_protocol_is_measured_against_the_composited_target(scene, fitted):
    """Masked (DTU-style) pairs target the photo on the training background: calibrating against the
    raw photo would count the photo's own background as error (and pick almost no noise on DTU)."""
    from recon.render import render
    from recon.repair.pairs import calibrate_strength, noise_error

    split, params, trained_bg = fitted
    sub = training_scene(scene, split, 1.0)
    bg = 1 - trained_bg  # a training background unlike the photo's
    hand_masked = hand_raw = 0.0
    for v in (0, 1):
        rgb = render("gaussian", params, sub.cameras[v], sh_degree=0, backgrounds=bg.reshape(1, 3)).rgb[0].clamp(0, 1)
        m = sub.masks[v][..., None]
        hand_masked += float((rgb - (sub.images[v] * m + bg * (1 - m))).abs().mean()) / 2
        hand_raw += float((rgb - sub.images[v]).abs().mean()) / 2
    own = noise_error("gaussian", params, 0, sub, [0, 1], 0.0, bg, masked=True)
    assert own == pytest.approx(hand_masked, rel=1e-5) and own != pytest.approx(hand_raw, rel=1e-3)
    assert noise_error("gaussian", params, 0, sub, [0, 1], 0.0, bg) == pytest.approx(hand_raw, rel=1e-5)
    s = calibrate_strength("gaussian", params, 0, sub, own + 0.03, bg, masked=True)
    assert s > 0.01 and noise_error("gaussian", params, 0, sub, [0, 1], s, bg, masked=True) == pytest.approx(
        own + 0.03, abs=0.025  # bisection on a noisy, nearly monotone error
    )


def test_noise_levels_make_pairs_from_mild_to_leave_one_out_damage(scene, fitted):
    config = _config()
    split, params, bg = fitted
    pc = dataclasses.replace(PAIRS, noise_levels=(0.0, 0.5, 1.0))
    ps = make_pairs(config, scene, split, params, background=bg, pair_config=pc)
    noise = [p for p in ps.pairs if p.kind == "noise"]
    assert len(noise) == 3 * len(split.train) and len(ps.meta["noise_strengths"]) == 3
    s0, s_half, s1 = ps.meta["noise_strengths"]
    assert ps.meta["own_l1"] < ps.meta["loo_l1"]  # the model sees its training views better than the sub-runs
    assert s0 < 0.05 and s0 <= s_half <= s1  # level 0 = the trained model as it is (up to the bisection)
    assert ps.meta["noise_strength"] == s1


def test_pairs_of_a_random_background_run_render_on_black_as_pseudo_views_do(scene, fitted):
    """One convention for the images a fixer sees (recon.render.solid_background): the run's background,
    black when it is random. The trainer's pseudo views and the pairs of such a run agree on it."""
    from recon.train.trainer import Trainer

    split, params, _ = fitted
    config = _config(**{"loss.background": "random"})
    trainer = Trainer(config, scene, split, None)
    assert trainer.background is None and torch.equal(trainer.pseudo_background(), torch.zeros(3))
    pc = dataclasses.replace(PAIRS, held_out=1, noise_strength=0.0)
    noise = [p for p in make_pairs(config, scene, split, params, pair_config=pc).pairs if p.kind == "noise"]
    for p in noise:  # behind the model: black (empty pixels are 0, not the photo's or a random colour)
        empty = p.alpha < 1e-4
        assert empty.any() and float(p.render[empty].abs().max()) < 1e-4
    white = _config(**{"loss.background": "white"})
    assert torch.equal(Trainer(white, scene, split, None).pseudo_background(), torch.ones(3))


def test_a_pair_put_on_another_background_is_the_pair_rendered_on_it(scene, fitted, tmp_path):
    """``on_background`` (the fixer's random-background crops) against the rasterizer itself: the pair
    rendered on black and moved to a colour equals the pair rendered on that colour, target included
    (masked protocol: the photo on the background outside its mask); the files keep what it needs."""
    from recon.repair.dataset import PairSet, on_background
    from recon.repair.pairs import render_pair

    split, params, _ = fitted
    sub, ids, color = training_scene(scene, split, 1.0), list(split.train), torch.tensor([0.9, 0.2, 0.6])
    kw = {"ids": ids, "kind": "noise", "step": 0, "masked": True}
    black = render_pair("gaussian", params, 0, sub, 0, 1, background=None, **kw)
    direct = render_pair("gaussian", params, 0, sub, 0, 1, background=color, **kw)
    assert torch.equal(black.background, torch.zeros(3)) and torch.equal(black.mask, sub.masks[0])
    assert bool((black.alpha < 0.5).any()) and bool((black.mask < 0.5).any())  # both backgrounds show somewhere
    moved = on_background(black, color)
    assert torch.allclose(moved.render, direct.render, atol=1e-5)
    assert torch.allclose(moved.target, direct.target, atol=1e-6) and torch.equal(moved.background, color)
    save_pairs(PairSet([black], ids, []), tmp_path / "pairs")
    back = load_pairs(tmp_path / "pairs").pairs[0]
    assert torch.equal(back.background, black.background) and (back.mask - black.mask).abs().max() <= 0.5 / 255 + 1e-6
    assert torch.allclose(on_background(back, color).target, direct.target, atol=2 / 255)
    manifest = tmp_path / "pairs" / "manifest.json"
    data = json.loads(manifest.read_text())
    del data["pairs"][0]["background"]  # as pairs saved before the background was recorded
    manifest.write_text(json.dumps(data))
    unknown = load_pairs(tmp_path / "pairs").pairs[0]
    assert unknown.background is None and on_background(unknown, color) is unknown
