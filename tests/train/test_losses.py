"""Losses against hand-computed values and an independent SSIM."""

from __future__ import annotations

import torch

from recon.eval import metrics
from recon.train import losses


def test_pearson_invariant_to_affine_depth():
    d = torch.rand(20, 30) + 0.5
    assert float(losses.pearson(d, 3.0 * d + 2.0)) > 1 - 1e-6
    assert float(losses.pearson_depth_loss(d, 3.0 * d + 2.0)) < 1e-6
    # a prior affine in inverse depth scores perfectly through the -1/prior branch
    assert float(losses.pearson_depth_loss(5.0 - 2.0 / d, d)) < 1e-6
    assert float(losses.pearson_depth_loss(torch.rand(20, 30), d)) > 0.5


def test_ranking_loss_zero_when_orders_agree_and_positive_when_reversed():
    prior = torch.rand(16, 16) + 1.0
    gen = torch.Generator().manual_seed(0)
    assert float(losses.ranking_loss(2 * prior + 1, prior, 256, 4, gen)) == 0.0
    rev = losses.ranking_loss(-prior, prior, 256, 4, torch.Generator().manual_seed(0))
    assert float(rev) > 0.0


def test_ranking_loss_hand_value():
    prior = torch.tensor([[1.0, 2.0]])
    depth = torch.tensor([[5.0, 3.0]], requires_grad=True)  # reversed by 2
    gen = torch.Generator().manual_seed(0)
    loss = losses.ranking_loss(depth, prior, 64, 1, gen, margin=0.0)
    assert abs(float(loss) - 2.0) < 1e-6  # every valid pair is (near=5, far=3)
    loss.backward()
    assert depth.grad is not None


def test_ssim_matches_metrics_module_and_photometric_value():
    a, b = torch.rand(1, 24, 32, 3), torch.rand(1, 24, 32, 3)
    torch.testing.assert_close(losses.ssim(a, b), metrics.ssim(a[0], b[0]), rtol=1e-4, atol=1e-5)
    loss, l1 = losses.photometric_loss(a, b, 0.2)
    expected = 0.8 * (a - b).abs().mean() + 0.2 * (1 - metrics.ssim(a[0], b[0]))
    torch.testing.assert_close(loss, expected, rtol=1e-4, atol=1e-5)
    assert abs(losses.psnr(torch.zeros(4, 4), torch.full((4, 4), 0.1)) - 20.0) < 1e-4


def test_depth_smoothness_zero_on_constant():
    assert float(losses.depth_smoothness(torch.full((8, 8), 2.0))) == 0.0
    ramp = torch.arange(8.0)[None].expand(8, 8)
    assert abs(float(losses.depth_smoothness(ramp)) - 1.0) < 1e-6
