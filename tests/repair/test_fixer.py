"""The fixer: starts as the identity, learns a known degradation, DDIM plumbing, gate, save/load."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

pytest.importorskip("diffusers")

from recon.data.synthetic import make_synthetic_scene
from recon.repair.dataset import condition
from recon.repair.fixer import (
    Fixer,
    FixerConfig,
    calibrate_blend,
    evaluate_gate,
    fit_and_gate,
    fit_fixer,
    repair_pairs,
    split_held_out,
)
from recon.repair.pairs import RepairPair

TINY = FixerConfig(channels=(16, 32), norm_groups=8, crop=32, batch=4, steps=60, lr=2e-3, ema_decay=0.0)


def _noisy_pairs(sigma: float = 0.1, seed: int = 0, kind: str = "loo") -> list[RepairPair]:
    """The demo scene's photos with additive Gaussian noise as the degradation (no warped view)."""
    scene = make_synthetic_scene(num_views=8, width=48, height=40, test_every=0)
    gen = torch.Generator().manual_seed(seed)
    pairs = []
    for v, img in enumerate(scene.images):
        noisy = (img + sigma * torch.randn(img.shape, generator=gen)).clamp(0, 1)
        zeros = torch.zeros(img.shape[:2])
        pairs.append(RepairPair(render=noisy, alpha=torch.ones_like(zeros), depth=zeros, warped=torch.zeros_like(img),
                                valid=zeros, target=img, view=v, source=(v + 1) % 8, kind=kind, step=0))
    return pairs


def _psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    return -10 * math.log10(float((a - b).square().mean()))


@pytest.fixture(scope="module")
def noisy_pairs():
    return _noisy_pairs()


@pytest.fixture(scope="module")
def trained(noisy_pairs):
    fit, _ = noisy_pairs[:6], noisy_pairs[6:]
    return fit_fixer(fit, TINY, progress=False)


def test_fresh_fixer_is_the_identity_at_any_size():
    fixer = Fixer.create(TINY)
    x = torch.rand(2, 8, 23, 31)  # odd sizes: padded to the UNet's multiple and cropped back
    out = fixer.repair(x)
    assert out.shape == (2, 3, 23, 31)
    assert torch.allclose(out, x[:, :3], atol=1e-6)


def test_ddim_path_ends_on_the_predicted_image(monkeypatch):
    """With a predictor that returns the clean image, DDIM (prediction type "sample") must end
    exactly on it, after ``steps`` calls at decreasing timesteps starting below strength x T."""
    fixer = Fixer.create(TINY)
    clean = torch.rand(1, 3, 16, 16)
    seen = []

    def perfect(x_t, cond, t):
        seen.append(int(t))
        return clean * 2 - 1

    monkeypatch.setattr(fixer, "predict", perfect)
    x = torch.cat([torch.rand(1, 3, 16, 16), torch.rand(1, 5, 16, 16)], 1)
    out = fixer.repair(x, steps=3, strength=0.5, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(out, clean, atol=1e-5)
    assert len(seen) == 3 and seen == sorted(seen, reverse=True) and seen[-1] == 0 and seen[0] < 500
    seen.clear()
    assert torch.allclose(fixer.repair(x), clean, atol=1e-6) and seen == [TINY.timestep]


def test_fixer_learns_denoising_and_the_gate_turns_repair_on(noisy_pairs, trained):
    held = noisy_pairs[6:]  # views never seen in fitting
    gate = evaluate_gate(trained, held)
    identity = -10 * math.log10(sum(float((p.render - p.target).square().sum()) for p in held)
                                / sum(p.render.numel() for p in held))
    assert gate.psnr_identity == pytest.approx(identity, abs=1e-6)
    assert gate.enabled and gate.views == [6, 7] and "repair on" in gate.reason
    assert gate.psnr_fixed > gate.psnr_identity + 1.0, gate.reason
    for p, fixed in zip(held, repair_pairs(trained, held), strict=True):  # per view too
        assert _psnr(fixed, p.target) > _psnr(p.render, p.target)
    assert trained.meta["fit_steps"] == TINY.steps and trained.meta["last_loss"] < trained.meta["first_loss"]


def test_gate_turns_repair_off_for_a_worse_fixer(noisy_pairs):
    fixer = Fixer.create(TINY)
    torch.nn.init.normal_(fixer.unet.conv_out.weight, std=0.5)  # a fixer that adds structured noise
    gate = evaluate_gate(fixer, noisy_pairs[6:])
    assert not gate.enabled and gate.psnr_fixed < gate.psnr_identity
    assert "repair off" in gate.reason and "without it" in gate.reason and "\n" not in gate.reason
    clean = [dataclasses.replace(p, render=p.target) for p in noisy_pairs[6:]]  # nothing to repair: identity is perfect
    assert not evaluate_gate(fixer, clean).enabled


def test_split_held_out_keeps_every_pair_of_the_gate_view_out_of_fitting(noisy_pairs):
    pairs = noisy_pairs + [dataclasses.replace(p, kind="noise") for p in noisy_pairs]
    fit, gate = split_held_out(pairs, views=2)
    assert {p.view for p in gate} == {6, 7} and all(p.kind == "loo" for p in gate)
    assert not {p.view for p in fit} & {6, 7} and len(fit) == 12


def test_fit_and_gate_records_the_gate(noisy_pairs):
    fixer, gate = fit_and_gate(noisy_pairs, dataclasses.replace(TINY, steps=2), progress=False)
    assert gate.views == [7] and fixer.meta["gate"]["psnr_identity"] == gate.psnr_identity


def test_save_and_load_round_trip(trained, noisy_pairs, tmp_path):
    trained.meta["gate"] = {"enabled": True}
    trained.save_pretrained(tmp_path / "model")
    assert (tmp_path / "model" / "unet" / "config.json").is_file()
    back = Fixer.from_pretrained(tmp_path / "model")
    assert back.config == trained.config and back.meta["gate"] == {"enabled": True}
    x = condition(noisy_pairs[7])[None]
    assert torch.equal(back.repair(x), trained.repair(x))


def test_a_cpu_cap_stops_the_fit_early_and_keeps_the_weights_so_far(noisy_pairs):
    capped = fit_fixer(noisy_pairs[:6], dataclasses.replace(TINY, steps=100_000, max_seconds=0.5), progress=False)
    assert capped.meta["stopped_early"] and 0 < capped.meta["fit_steps"] < 100_000
    x = condition(noisy_pairs[7])[None]
    assert not torch.equal(capped.repair(x), Fixer.create(TINY).repair(x))  # trained, not the fresh identity
    full = fit_fixer(noisy_pairs[:6], dataclasses.replace(TINY, steps=3), progress=False)
    assert not full.meta["stopped_early"] and full.meta["fit_steps"] == 3


def test_fit_cap_is_the_smaller_of_the_fixed_cap_and_the_base_run_fraction():
    from recon.config import RepairConfig
    from recon.repair.training import fit_cap_seconds

    # 300 steps took 60 CPU s: the base run of 1500 steps is estimated at 300 s
    assert fit_cap_seconds(RepairConfig(fit_max_seconds=0, fit_time_fraction=0.5), 60.0, 300, 1500) == 150.0
    assert fit_cap_seconds(RepairConfig(fit_max_seconds=100, fit_time_fraction=0.5), 60.0, 300, 1500) == 100.0
    assert fit_cap_seconds(RepairConfig(fit_max_seconds=200, fit_time_fraction=0.5), 60.0, 300, 1500) == 150.0
    assert fit_cap_seconds(RepairConfig(fit_max_seconds=200, fit_time_fraction=0), 60.0, 300, 1500) == 200.0
    assert fit_cap_seconds(RepairConfig(fit_max_seconds=0, fit_time_fraction=0), 60.0, 300, 1500) == 0.0
    assert fit_cap_seconds(RepairConfig(fit_max_seconds=0, fit_time_fraction=0.5), 0.0, 0, 1500) == 0.0


def test_blend_scales_the_fixers_change_and_its_calibration_is_the_least_squares_optimum(trained, noisy_pairs):
    held = noisy_pairs[6:]
    x = condition(held[0])[None]
    full = trained.repair(x)
    half = Fixer(trained.unet, trained.scheduler, trained.config, {"blend": 0.5}).repair(x)
    assert torch.allclose(half, (x[:, :3] + 0.5 * (full - x[:, :3])).clamp(0, 1), atol=1e-6)
    s = calibrate_blend(trained, held)
    fixed = repair_pairs(trained, held)

    def sse(t: float) -> float:
        return sum(float((p.render + t * (f - p.render) - p.target).square().sum()) for p, f in zip(held, fixed))

    grid = [i / 50 for i in range(51)]
    best = min(grid, key=sse)
    assert abs(s - best) <= 0.02 + 1e-9 and sse(s) <= sse(best) + 1e-6  # the closed form beats a grid search
    identity = Fixer.create(TINY)  # changes nothing: blend 1 by convention
    assert calibrate_blend(identity, held) == 1.0


def test_fit_and_gate_calibrates_the_blend_on_the_held_out_views_noise_pairs(noisy_pairs):
    milder = _noisy_pairs(sigma=0.02, seed=1, kind="noise")  # the gate view's mild damage
    config = dataclasses.replace(TINY, steps=30, blend=-1.0)
    fixer, gate = fit_and_gate(noisy_pairs + milder, config, progress=False)
    assert gate.psnr_fixed == evaluate_gate(fixer, [p for p in noisy_pairs if p.view == 7]).psnr_fixed  # gated blended
    probe = Fixer(fixer.unet, fixer.scheduler, fixer.config, {})
    assert fixer.meta["blend"] == pytest.approx(calibrate_blend(probe, [p for p in milder if p.view == 7]), abs=1e-6)
    assert 0.0 <= fixer.meta["blend"] <= 1.0
    fixed, _ = fit_and_gate(noisy_pairs, dataclasses.replace(TINY, steps=2, blend=0.3), progress=False)
    assert fixed.meta["blend"] == 0.3


def test_blend_minus_two_calibrates_on_the_gate_views_earlier_leave_one_out_renders(noisy_pairs):
    earlier = [dataclasses.replace(p, step=1) for p in _noisy_pairs(sigma=0.05, seed=2)]  # step 1 renders
    final = [dataclasses.replace(p, step=2) for p in noisy_pairs]  # the sub-run's last step
    fixer, gate = fit_and_gate(earlier + final, dataclasses.replace(TINY, steps=20, blend=-2.0), progress=False)
    probe = Fixer(fixer.unet, fixer.scheduler, fixer.config, {})
    assert fixer.meta["blend"] == pytest.approx(calibrate_blend(probe, [p for p in earlier if p.view == 7]), abs=1e-6)
    final_7 = [p for p in final if p.view == 7]  # the gate: only the renders the blend was not chosen on
    assert gate.views == [7] and gate.psnr_fixed == evaluate_gate(fixer, final_7).psnr_fixed


def _holed_pairs() -> list[RepairPair]:
    """The demo scene's photos with a square hole in the render: transparent there (alpha 0), the
    black background showing, while the photo shows the scene."""
    scene = make_synthetic_scene(num_views=8, width=48, height=40, test_every=0)
    pairs = []
    for v, img in enumerate(scene.images):
        alpha = torch.ones(img.shape[:2])
        top, left = 6 + 3 * (v % 4), 8 + 4 * (v % 5)  # the hole moves from view to view
        alpha[top : top + 14, left : left + 16] = 0
        zeros = torch.zeros(img.shape[:2])
        pairs.append(RepairPair(render=img * alpha[..., None], alpha=alpha, depth=zeros, warped=torch.zeros_like(img),
                                valid=zeros, target=img, view=v, source=(v + 1) % 8, kind="loo", step=0,
                                background=torch.zeros(3)))  # fmt: skip
    return pairs


def test_a_fixer_fitted_on_random_backgrounds_fills_holes_shown_on_white():
    """Fitted on black holes alone, a fixer has never seen the evaluation's white ones; fitted with a
    random colour behind every crop, it learns holes from alpha and fills them on any background."""
    from recon.repair.dataset import on_background

    pairs = _holed_pairs()
    config = dataclasses.replace(TINY, steps=150)
    on_random = fit_fixer(pairs[:6], config, progress=False)
    on_black = fit_fixer(pairs[:6], dataclasses.replace(config, random_background=False), progress=False)
    assert on_random.any_background and not on_black.any_background
    errors = {}
    for name, fixer in (("random", on_random), ("black", on_black), ("identity", Fixer.create(config))):
        err = 0.0
        for p in pairs[6:]:  # views never fitted, their holes rendered on white
            white = on_background(p, torch.ones(3))
            hole = white.alpha < 0.5
            fixed = fixer.repair(condition(white)[None])[0].permute(1, 2, 0)
            err += float((fixed - white.target)[hole].abs().mean())
        errors[name] = err / 2
    assert errors["random"] < 0.8 * errors["identity"], errors  # white holes: the identity is far off
    assert errors["random"] < 0.8 * errors["black"], errors


def test_fixers_saved_before_random_backgrounds_load_as_fitted_on_one_background(trained, tmp_path):
    import json

    trained.save_pretrained(tmp_path / "new")
    assert Fixer.from_pretrained(tmp_path / "new").config.random_background is True
    info_path = tmp_path / "new" / "recon_fixer.json"
    info = json.loads(info_path.read_text())
    del info["config"]["random_background"]  # as an older recon wrote it
    info_path.write_text(json.dumps(info))
    old = Fixer.from_pretrained(tmp_path / "new")
    assert old.config.random_background is False and not old.any_background
