"""Bilateral grids: zero grid is a no-op, slicing against a numpy trilinear oracle, gradients, a
spatially varying colour change recovered where an affine transform cannot, state round trip."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from recon.config import WildConfig
from recon.data.synthetic_wild import make_synthetic_variant
from recon.errors import ConfigError
from recon.wild.appearance import AffineAppearance, apply_affine, fit_affine
from recon.wild.bilateral import LUMA, BilateralAppearance, apply_grid, slice_grid, total_variation
from recon.wild.protocol import apply_appearance, nerfw_halves
from recon.wild.terms import make_appearance
from tests.wild.conftest import make_trainer, wild_config


def _trilinear_oracle(grid: np.ndarray, rgb: np.ndarray) -> np.ndarray:
    """Pixel by pixel: grid [12, L, Gy, Gx], rgb [H, W, 3] -> [H, W, 12], corners clamped at the borders."""
    _, nl, ny, nx = grid.shape
    h, w, _ = rgb.shape
    out = np.zeros((h, w, 12))
    for y in range(h):
        for x in range(w):
            luma = min(max(float(rgb[y, x] @ np.array(LUMA)), 0.0), 1.0)
            pos = (luma * (nl - 1), (y / max(h - 1, 1)) * (ny - 1), (x / max(w - 1, 1)) * (nx - 1))
            lo = [int(np.floor(p)) for p in pos]
            frac = [p - i for p, i in zip(pos, lo, strict=True)]
            for dz in (0, 1):
                for dy in (0, 1):
                    for dx in (0, 1):
                        weight = (
                            (frac[0] if dz else 1 - frac[0])
                            * (frac[1] if dy else 1 - frac[1])
                            * (frac[2] if dx else 1 - frac[2])
                        )
                        iz, iy, ix = min(lo[0] + dz, nl - 1), min(lo[1] + dy, ny - 1), min(lo[2] + dx, nx - 1)
                        out[y, x] += weight * grid[:, iz, iy, ix]
    return out


def test_zero_grid_is_bitwise_noop():
    rgb = torch.rand(2, 5, 7, 3)
    assert torch.equal(apply_grid(rgb, torch.zeros(12, 4, 3, 3)), rgb)


def test_slice_matches_numpy_trilinear_oracle():
    gen = torch.Generator().manual_seed(0)
    grid = torch.randn(12, 3, 4, 5, generator=gen, dtype=torch.float64)
    rgb = torch.rand(2, 6, 7, 3, generator=gen, dtype=torch.float64) * 1.2 - 0.1  # guide clamps outside [0, 1]
    sliced = slice_grid(grid, rgb)  # [2, 6, 7, 3, 4]
    for b in range(2):
        want = _trilinear_oracle(grid.numpy(), rgb[b].numpy())  # [6, 7, 12]
        np.testing.assert_allclose(sliced[b].reshape(6, 7, 12).numpy(), want, atol=1e-12)
        offset = torch.from_numpy(want).reshape(6, 7, 3, 4)
        manual = rgb[b] + torch.einsum("hwij,hwj->hwi", offset[..., :3], rgb[b]) + offset[..., 3]
        np.testing.assert_allclose(apply_grid(rgb[b], grid).numpy(), manual.numpy(), atol=1e-12)


def test_apply_grid_gradients_match_finite_differences():
    gen = torch.Generator().manual_seed(1)
    grid = (0.3 * torch.randn(12, 2, 3, 3, generator=gen, dtype=torch.float64)).requires_grad_()
    rgb = (0.1 + 0.8 * torch.rand(4, 5, 3, generator=gen, dtype=torch.float64)).requires_grad_()
    assert torch.autograd.gradcheck(apply_grid, (rgb, grid))


def test_total_variation_matches_explicit_differences():
    grid = torch.randn(12, 3, 4, 5, dtype=torch.float64)
    g = grid.numpy()
    want = sum(
        np.mean(d**2) for d in (g[:, 1:] - g[:, :-1], g[:, :, 1:] - g[:, :, :-1], g[:, :, :, 1:] - g[:, :, :, :-1])
    )
    assert float(total_variation(grid)) == pytest.approx(want, rel=1e-12)
    assert float(total_variation(torch.zeros(12, 1, 1, 1))) == 0.0


def test_first_step_with_zero_grids_equals_plain_training():
    plain = make_trainer(wild_config(**{"wild.mode": "off"}))
    wild = make_trainer(wild_config(**{"wild.mode": "on", "wild.appearance": "bilateral", "wild.robust_start": 0.5}))
    assert isinstance(wild.wild.appearance, BilateralAppearance)
    a, b = plain.train_step(0), wild.train_step(0)
    assert a["loss"] == b["loss"] and a["l1"] == b["l1"] and b["appearance_reg"] == 0.0 and b["appearance_tv"] == 0.0
    for k, p in plain.params.items():
        assert torch.equal(p, wild.params[k]), k


def _ramp(h: int, w: int) -> torch.Tensor:
    """[H, W, 3] a left-to-right gain ramp, a little different per channel (0.55 -> 1.0 on red)."""
    x = torch.linspace(0.0, 1.0, w)
    lo = torch.tensor([0.55, 0.6, 0.7])
    return (lo + (1 - lo) * x[:, None]).expand(h, w, 3)


def test_grid_recovers_a_gain_ramp_the_affine_model_cannot():
    """Scene fixed at the truth, photos = clean x a horizontal gain ramp: the grid fitted by Adam
    reproduces the ramp's gain within 2 % where the best affine transform is off by over 10 %."""
    scene = make_synthetic_variant("synthetic", num_views=4, width=32, height=24, test_every=0)
    clean = [scene.images[i] for i in range(4)]
    ramp = _ramp(24, 32)
    photos = [img * ramp for img in clean]
    model = BilateralAppearance(4, lr=0.02, cells=8, bins=2, tv=1.0)
    for step in range(240):
        v = step % 4
        loss = (model(v, clean[v]) - photos[v]).abs().mean() + sum(model.regularisers(v).values())
        loss.backward()
        model.step()
    lit = torch.stack(clean).mean(-1) > 0.15  # [V, H, W] gains are only defined where there is light
    with torch.no_grad():
        gain = torch.stack([model(v, clean[v]) / clean[v].clamp_min(1e-3) for v in range(4)])  # [V, H, W, 3]
        affine = torch.stack([apply_affine(clean[v], fit_affine(clean[v], photos[v])) for v in range(4)])
    affine_gain = affine / torch.stack(clean).clamp_min(1e-3)
    grid_err = ((gain - ramp) / ramp).abs()[lit].mean()
    affine_err = ((affine_gain - ramp) / ramp).abs()[lit].mean()
    assert grid_err < 0.02 and affine_err > 0.1, (float(grid_err), float(affine_err))


def test_state_round_trip_is_exact_and_compact():
    model = BilateralAppearance(3, lr=0.01, cells=4, bins=2)
    for v in range(3):
        (model(v, torch.rand(5, 6, 3)) ** 2).sum().backward()
        model.step()
    state = model.state_dict()
    assert state["model"] == "bilateral" and "float32_b64" in state["transforms"]
    other = BilateralAppearance(3, lr=0.5, cells=4, bins=2)
    other.load_state_dict(state)
    assert torch.equal(other.transforms, model.transforms) and other.optimizer.param_groups[0]["lr"] == 0.01
    for p, q in zip(model.params, other.params, strict=True):
        for key in ("exp_avg", "exp_avg_sq"):
            assert torch.equal(model.optimizer.state[p][key], other.optimizer.state[q][key])
    with pytest.raises(ConfigError, match="holds a bilateral appearance"):
        AffineAppearance(3, lr=0.01).load_state_dict(state)


def test_bad_grid_size_is_a_config_error():
    with pytest.raises(ConfigError, match="wild.bilateral_cells: 0 must be at least 1"):
        make_appearance(WildConfig(appearance="bilateral", bilateral_cells=0), 2)


def test_nerfw_halves_keep_the_reference_grid_and_fit_the_affine_part():
    """Photo = known affine of (render through a known grid): the protocol with that grid undoes it exactly."""
    gen = torch.Generator().manual_seed(2)
    render = 0.2 + 0.6 * torch.rand(8, 10, 3, generator=gen)
    grid = 0.1 * torch.randn(12, 2, 3, 3, generator=gen)
    known = torch.tensor([[0.8, 0.1, 0.0, 0.05], [0.0, 0.9, 0.0, 0.0], [0.05, 0.0, 0.7, 0.02]])
    gt = apply_affine(apply_appearance(render, grid), known)
    pred, photo = nerfw_halves(render, gt, grid)
    assert torch.equal(photo, gt[:, 5:]) and torch.allclose(pred, photo.clamp(0, 1), atol=1e-4)
    plain, _ = nerfw_halves(render, gt)  # without the grid an affine fit cannot undo it
    assert (plain - photo).abs().max() > 1e-2


def test_bilateral_run_trains_resumes_and_evaluates_with_its_protocol(tmp_path, capsys):
    """``recon train --appearance-model bilateral``: grids in the checkpoint, eval JSON names the grid protocol."""
    from recon.cli import main
    from recon.run import find_checkpoint

    out = tmp_path / "run"
    argv = ["train", "--data", "synthetic:wild-appearance", "--preset", "demo", "--iterations", "8",
            "--checkpoint-every", "4", "--out", str(out), "--wild", "on", "--appearance-model", "bilateral"]  # fmt: skip
    assert main(argv) == 0
    wild = find_checkpoint(out / "checkpoints").extra["wild"]
    assert wild["appearance"]["model"] == "bilateral"
    capsys.readouterr()
    assert main(["eval", str(out), "--json", "--no-images"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["protocol"].startswith("nerf-w (bilateral grid)") and res["appearance"] == "mean"
