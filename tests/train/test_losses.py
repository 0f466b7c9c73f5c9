"""Losses against hand-computed values and an independent SSIM."""

from __future__ import annotations

import torch

from recon.eval import metrics
from recon.priors.consistency import warp_to_view
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


def _plane_views(h: int = 48, w: int = 64):
    """Two cameras seeing the textured plane z = 4 + 0.3 x: ground truth images and the reference
    view's depth by ray-plane intersection (independent of the warping code)."""
    from recon.cameras import Cameras

    K = torch.tensor([[60.0, 0.0, w / 2], [0.0, 60.0, h / 2], [0.0, 0.0, 1.0]], dtype=torch.float64)
    ang = torch.tensor(0.1, dtype=torch.float64)
    R = torch.tensor([[ang.cos(), 0.0, -ang.sin()], [0.0, 1.0, 0.0], [ang.sin(), 0.0, ang.cos()]], dtype=torch.float64)
    vm_a, vm_b = torch.eye(4, dtype=torch.float64), torch.eye(4, dtype=torch.float64)
    vm_b[:3, :3] = R
    vm_b[:3, 3] = -R @ torch.tensor([0.6, 0.1, 0.0], dtype=torch.float64)  # centre at (0.6, 0.1, 0)
    cams = Cameras.create(torch.stack([K, K]), torch.stack([vm_a, vm_b]), [w, w], [h, h])

    def render(vm):
        ys, xs = torch.meshgrid(torch.arange(h, dtype=torch.float64) + 0.5, torch.arange(w, dtype=torch.float64) + 0.5,
                                indexing="ij")
        d_cam = torch.stack([(xs - w / 2) / 60.0, (ys - h / 2) / 60.0, torch.ones_like(xs)], -1)
        c2w = torch.linalg.inv(vm)
        d = d_cam @ c2w[:3, :3].T
        o = c2w[:3, 3]
        t = (4.0 + 0.3 * o[0] - o[2]) / (d[..., 2] - 0.3 * d[..., 0])  # o_z + t d_z = 4 + 0.3 (o_x + t d_x)
        p = o + t[..., None] * d
        img = torch.stack([0.5 + 0.4 * torch.sin(3 * p[..., 0]), 0.5 + 0.4 * torch.cos(2.5 * p[..., 1]),
                           0.5 + 0.2 * torch.sin(2 * p[..., 0] + p[..., 1])], -1)
        return img, t * d_cam[..., 2], p  # image, camera z (d_cam has z = 1), world points

    img_a, depth_a, pts_a = render(vm_a)
    img_b, _, _ = render(vm_b)
    return cams, img_a, img_b, depth_a, pts_a


def test_warp_lands_where_the_cameras_project_the_surface():
    cams, _, _, depth_a, pts_a = _plane_views()
    grid, valid = warp_to_view(depth_a, cams.Ks[0], cams.viewmats[0], cams.Ks[1], cams.viewmats[1], 64, 48)
    uv, _ = cams[1].project(pts_a.reshape(-1, 3))  # float32 cameras
    expected = torch.stack([2 * uv[0, :, 0] / 64 - 1, 2 * uv[0, :, 1] / 48 - 1], -1).reshape(48, 64, 2).double()
    assert valid.float().mean() > 0.6
    torch.testing.assert_close(grid[valid], expected[valid], atol=1e-5, rtol=0)  # 1e-5 of the half-width
    assert not bool(valid[(expected.abs() >= 1).any(-1)].any())  # outside the source image = invalid


def test_warp_loss_is_minimal_at_the_true_depth_and_pulls_towards_it():
    cams, img_a, img_b, depth_a, _ = _plane_views()
    args = (img_a, img_b, cams.Ks[0], cams.viewmats[0], cams.Ks[1], cams.viewmats[1])
    at_truth = float(losses.warp_consistency_loss(depth_a, *args))
    assert at_truth < 0.01  # bilinear resampling error only
    assert float(losses.warp_consistency_loss(1.15 * depth_a, *args)) > 5 * at_truth
    for s, sign in ((1.1, 1.0), (0.9, -1.0)):
        scale = torch.tensor(s, dtype=torch.float64, requires_grad=True)
        losses.warp_consistency_loss(scale * depth_a, *args).backward()
        assert sign * float(scale.grad) > 0  # gradient descent moves the depth back to the surface


def test_relative_depth_loss_hand_value_and_valid_pixels():
    prior = torch.tensor([[2.0, 4.0, 0.0, 5.0]]).repeat(8, 1)  # 0 = unknown
    depth = torch.tensor([[3.0, 4.0, 9.0, 4.0]]).repeat(8, 1).requires_grad_()
    valid = torch.ones(8, 4, dtype=torch.bool)
    valid[:, 3] = False  # excluded by the caller (e.g. transparent pixels)
    loss = losses.relative_depth_loss(depth, prior, valid)
    assert abs(float(loss) - (0.5 + 0.0) / 2) < 1e-6  # columns 0 and 1 count, |3-2|/2 and 0
    loss.backward()
    assert float(depth.grad[0, 0]) > 0 and float(depth.grad[:, 2:].abs().sum()) == 0


def test_weighted_photometric_against_l1_the_unweighted_loss_and_masked_gradients():
    g = torch.Generator().manual_seed(3)
    render, target = torch.rand(20, 24, 3, generator=g), torch.rand(20, 24, 3, generator=g)
    weight = (torch.rand(20, 24, generator=g) > 0.4).float() * 0.7
    assert torch.equal(losses.weighted_photometric(render, target, weight, 0.0), losses.weighted_l1(render, target, weight))
    ones = torch.ones(20, 24)  # full weight: the 3DGS loss, (1 - l) L1 + l (1 - SSIM)
    reference, _ = losses.photometric_loss(render[None], target[None], 0.2)
    assert torch.allclose(losses.weighted_photometric(render, target, ones, 0.2), reference, atol=1e-6)
    r = render.clone().requires_grad_(True)
    losses.weighted_photometric(r, target, weight, 0.2).backward()
    assert bool((r.grad[weight == 0] == 0).all()) and bool((r.grad[weight > 0] != 0).any())
    half = losses.weighted_photometric(render, target, weight * 0.5, 0.2)  # linear in the weight's scale
    assert torch.allclose(half, 0.5 * losses.weighted_photometric(render, target, weight, 0.2), atol=1e-7)
