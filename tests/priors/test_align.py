"""Scale/shift alignment in inverse depth, on synthetic depth of known scale and shift."""

from __future__ import annotations

import pytest
import torch

from recon.priors.align import align_inverse_depth, fit_scale_shift_lstsq, fit_scale_shift_median


def _maps(s: float = 2.5, t: float = 0.3, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    depth = 1.0 + 4.0 * torch.rand(40, 50, generator=gen)  # metric depth in [1, 5]
    pred = (1.0 / depth - t) / s  # the network's affine-invariant inverse depth
    return depth, pred


def test_lstsq_recovers_exact_scale_shift():
    depth, pred = _maps()
    ref = torch.where(torch.rand(40, 50) < 0.1, depth, torch.zeros_like(depth))  # sparse reference
    aligned, s, t = align_inverse_depth(pred, ref, method="lstsq")
    assert s == pytest.approx(2.5, rel=1e-6) and t == pytest.approx(0.3, abs=1e-6)
    torch.testing.assert_close(aligned, depth, rtol=1e-5, atol=0)


def test_median_form_is_exact_on_affine_data_and_follows_reference_formula():
    depth, pred = _maps(s=0.7, t=-0.05)
    x, y = pred.reshape(-1), 1.0 / depth.reshape(-1)
    s, t = fit_scale_shift_median(x, y)
    assert s == pytest.approx(0.7, rel=1e-6) and t == pytest.approx(-0.05, abs=1e-6)
    # On non-affine data it follows graphdeco-inria's make_depth_scale.py formula (numpy oracle).
    import numpy as np

    gen = torch.Generator().manual_seed(1)
    xn, yn = torch.rand(200, generator=gen).double().numpy(), torch.rand(200, generator=gen).double().numpy()
    t_x, t_y = np.median(xn), np.median(yn)
    scale = np.mean(np.abs(yn - t_y)) / np.mean(np.abs(xn - t_x))
    s2, t2 = fit_scale_shift_median(torch.from_numpy(xn), torch.from_numpy(yn))
    assert s2 == pytest.approx(scale, rel=1e-9) and t2 == pytest.approx(t_y - t_x * scale, rel=1e-9)


def test_weighted_lstsq_matches_numpy_lstsq():
    gen = torch.Generator().manual_seed(3)
    x, y, w = torch.rand(100, generator=gen), torch.rand(100, generator=gen), torch.rand(100, generator=gen)
    s, t = fit_scale_shift_lstsq(x, y, w)
    A = torch.stack([x, torch.ones_like(x)], 1).double() * w.double().sqrt()[:, None]
    sol = torch.linalg.lstsq(A, y.double() * w.double().sqrt()).solution
    assert s == pytest.approx(float(sol[0]), rel=1e-9) and t == pytest.approx(float(sol[1]), rel=1e-9)


def test_degenerate_inputs_raise():
    with pytest.raises(ValueError):
        fit_scale_shift_lstsq(torch.ones(10), torch.rand(10))
    with pytest.raises(ValueError):
        fit_scale_shift_median(torch.rand(5), torch.rand(5))
    with pytest.raises(ValueError):
        align_inverse_depth(torch.rand(4, 4), torch.rand(4, 4), method="bogus")
