"""Photometric losses, depth-prior losses (FSGS, SparseNeRF, metric), multi-view warp consistency, depth smoothness."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from recon.priors.consistency import warp_to_view


def _gaussian_window(size: int = 11, sigma: float = 1.5, dtype=torch.float32, device=None) -> Tensor:
    x = torch.arange(size, dtype=torch.float64, device=device) - (size - 1) / 2
    g = torch.exp(-(x**2) / (2 * sigma**2))
    g = g / g.sum()
    return (g[:, None] * g[None, :]).to(dtype)  # [size, size]


def ssim(img1: Tensor, img2: Tensor, window_size: int = 11) -> Tensor:
    """Mean SSIM of two [..., H, W, C] images (3DGS implementation: 11x11 Gaussian, sigma 1.5,
    zero padding, channel averaged)."""
    return ssim_map(img1, img2, window_size).mean()


def ssim_map(img1: Tensor, img2: Tensor, window_size: int = 11) -> Tensor:
    """[B, C, H, W] per-pixel SSIM of two [..., H, W, C] images (the map :func:`ssim` averages)."""
    a = img1.reshape(-1, *img1.shape[-3:]).permute(0, 3, 1, 2)  # [B, C, H, W]
    b = img2.reshape(-1, *img2.shape[-3:]).permute(0, 3, 1, 2)
    c = a.shape[1]
    w = _gaussian_window(window_size, dtype=a.dtype, device=a.device).expand(c, 1, window_size, window_size)
    pad = window_size // 2
    mu1 = F.conv2d(a, w, padding=pad, groups=c)
    mu2 = F.conv2d(b, w, padding=pad, groups=c)
    s11 = F.conv2d(a * a, w, padding=pad, groups=c) - mu1**2
    s22 = F.conv2d(b * b, w, padding=pad, groups=c) - mu2**2
    s12 = F.conv2d(a * b, w, padding=pad, groups=c) - mu1 * mu2
    c1, c2 = 0.01**2, 0.03**2
    return ((2 * mu1 * mu2 + c1) * (2 * s12 + c2)) / ((mu1**2 + mu2**2 + c1) * (s11 + s22 + c2))


def photometric_loss(render: Tensor, target: Tensor, ssim_lambda: float,
                     weight: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """``(1 - l) L1 + l (1 - SSIM)`` of [V, H, W, 3] images; returns (loss, l1).

    ``weight`` [H, W] (or [V, H, W]) turns both terms into weighted means over the pixels (recon.wild's
    transient masks); None is the plain mean. SSIM windows straddle the mask, so SSIM compares a
    render whose zero-weight pixels are replaced by the target's: they carry no gradient at all.
    """
    if weight is None:
        l1 = (render - target).abs().mean()
        if ssim_lambda <= 0:
            return l1, l1
        return (1 - ssim_lambda) * l1 + ssim_lambda * (1 - ssim(render, target)), l1
    w = weight.expand(render.shape[:-1]).to(render.dtype)  # [V, H, W]
    total = w.sum().clamp_min(1e-8)
    l1 = (w[..., None] * (render - target).abs()).sum() / (total * render.shape[-1])
    if ssim_lambda <= 0:
        return l1, l1
    filled = w[..., None] * render + (1 - w[..., None]) * target  # [V, H, W, 3]
    s = (w[:, None] * ssim_map(filled, target)).sum() / (total * render.shape[-1])  # map: [V, C, H, W]
    return (1 - ssim_lambda) * l1 + ssim_lambda * (1 - s), l1


def pearson(x: Tensor, y: Tensor, eps: float = 1e-8) -> Tensor:
    """Pearson correlation of two equally shaped tensors (all entries)."""
    x = x.reshape(-1) - x.mean()
    y = y.reshape(-1) - y.mean()
    return (x * y).sum() / (x.norm() * y.norm() + eps)


def pearson_depth_loss(depth: Tensor, prior: Tensor, valid: Tensor | None = None) -> Tensor:
    """FSGS depth loss ``min(1 - rho(d, -D), 1 - rho(d, 1/(D + 200)))``, scale/shift invariant.

    Here ``prior`` is a depth (camera z, as every recon prior), so FSGS' two forms of its
    disparity ``D = 1/prior`` become ``rho(d, prior)`` and ``rho(d, -1/prior)``; the smaller loss
    counts, so a prior that is affine in depth or in inverse depth both give zero.

    Args:
        depth: [H, W] rendered depth.
        prior: [H, W] prior depth (> 0 where valid).
        valid: [H, W] bool pixels to use (default: prior > 0).
    """
    valid = (prior > 0) if valid is None else valid
    if int(valid.sum()) < 16:
        return depth.sum() * 0.0
    d, p = depth[valid], prior[valid]
    return torch.minimum(1 - pearson(d, p), 1 - pearson(d, -1.0 / p))


def relative_depth_loss(depth: Tensor, prior: Tensor, valid: Tensor | None = None) -> Tensor:
    """Mean ``|d - D| / D`` over valid pixels: for metric priors (stereo depth from the training
    cameras, or aligned monocular depth), where Pearson's scale/shift invariance throws away
    what the prior knows.

    Args:
        depth: [H, W] rendered depth.
        prior: [H, W] prior depth (> 0 where valid).
        valid: [H, W] bool pixels to use (default: prior > 0).
    """
    valid = (prior > 0) if valid is None else valid & (prior > 0)
    if int(valid.sum()) < 16:
        return depth.sum() * 0.0
    return ((depth[valid] - prior[valid]).abs() / prior[valid]).mean()


def ranking_loss(
    depth: Tensor, prior: Tensor, num_pairs: int, box: int, generator: torch.Generator | None = None, margin: float = 1e-4
) -> Tensor:
    """SparseNeRF local depth ranking: pixel pairs in small boxes, ordered by the prior.

    For pairs (a, b) where the prior says a is nearer, ``mean max(d_a - d_b + margin, 0)``.

    Args:
        depth: [H, W] rendered depth.
        prior: [H, W] prior depth (0 = unknown).
        num_pairs: pairs sampled.
        box: the second pixel lies within +-box of the first.
        generator: random source.
    """
    h, w = prior.shape
    # pixel indices drawn on the generator's device (the CPU one by default); they index any device
    draw = {"size": (num_pairs,), "generator": generator, "device": "cpu" if generator is None else generator.device}
    ya, xa = torch.randint(0, h, **draw), torch.randint(0, w, **draw)
    yb = (ya + torch.randint(-box, box + 1, **draw)).clamp(0, h - 1)
    xb = (xa + torch.randint(-box, box + 1, **draw)).clamp(0, w - 1)
    pa, pb = prior[ya, xa], prior[yb, xb]
    ok = (pa > 0) & (pb > 0) & (pa != pb)
    if not bool(ok.any()):
        return depth.sum() * 0.0
    da, db = depth[ya, xa], depth[yb, xb]
    near_first = pa < pb
    d_near = torch.where(near_first, da, db)[ok]
    d_far = torch.where(near_first, db, da)[ok]
    return (d_near - d_far + margin).clamp_min(0).mean()


def depth_smoothness(depth: Tensor, image: Tensor | None = None) -> Tensor:
    """Mean absolute depth gradient (edge-aware when ``image`` [H, W, 3] is given)."""
    dx = (depth[:, 1:] - depth[:, :-1]).abs()
    dy = (depth[1:] - depth[:-1]).abs()
    if image is not None:
        dx = dx * torch.exp(-(image[:, 1:] - image[:, :-1]).abs().mean(-1))
        dy = dy * torch.exp(-(image[1:] - image[:-1]).abs().mean(-1))
    return dx.mean() + dy.mean()


def warp_consistency_loss(depth: Tensor, image_ref: Tensor, image_src: Tensor, K_ref: Tensor, viewmat_ref: Tensor,
                          K_src: Tensor, viewmat_src: Tensor, valid: Tensor | None = None,
                          mask_src: Tensor | None = None) -> Tensor:
    """Multi-view photometric consistency of a rendered depth: the source image warped into the
    reference view through ``depth`` should reproduce the reference image (mean L1 over valid pixels).

    The loss is a function of the depth only (images are ground truth), so it moves geometry to
    where the training views agree: few-view 3DGS otherwise explains each view with its own
    Gaussians (self-supervised stereo, as in Binocular3DGS / MVPGS).

    Args:
        depth: [H, W] rendered camera-z depth of the reference view (0 = unknown).
        image_ref: [H, W, C] ground truth of the reference view.
        image_src: [Hs, Ws, C] ground truth of the source view.
        K_ref, viewmat_ref, K_src, viewmat_src: the two cameras ([3, 3], [4, 4]).
        valid: [H, W] bool reference pixels to use (e.g. inside its object mask).
        mask_src: [Hs, Ws] source object mask: pixels landing outside it are ignored.
    """
    hs, ws = image_src.shape[:2]
    grid, ok = warp_to_view(depth, K_ref, viewmat_ref, K_src, viewmat_src, ws, hs)
    if valid is not None:
        ok = ok & valid
    src = image_src.permute(2, 0, 1)[None].to(depth.dtype)  # [1, C, Hs, Ws]
    warped = F.grid_sample(src, grid[None], mode="bilinear", padding_mode="border", align_corners=False)[0]
    warped = warped.permute(1, 2, 0)  # [H, W, C]
    if mask_src is not None:
        m = F.grid_sample(mask_src[None, None].to(depth.dtype), grid[None], mode="nearest", align_corners=False)[0, 0]
        ok = ok & (m > 0.5)
    if int(ok.sum()) < 16:
        return depth.sum() * 0.0
    return (warped - image_ref.to(depth.dtype)).abs().mean(-1)[ok].mean()


def weighted_l1(render: Tensor, target: Tensor, weight: Tensor) -> Tensor:
    """Mean over all pixels of ``weight`` [H, W] x L1 between ``render`` and ``target`` [H, W, 3]
    (zero-weight pixels count in the mean: a small mask gives a small loss)."""
    return (weight[..., None] * (render - target).abs()).mean()


def weighted_photometric(render: Tensor, target: Tensor, weight: Tensor, ssim_lambda: float) -> Tensor:
    """``(1 - l) weighted_l1 + l mean(weight (1 - SSIM))`` of [H, W, 3] images and an [H, W] weight,
    both means over all pixels (a small mask gives a small loss, as :func:`weighted_l1`); SSIM
    compares a render whose zero-weight pixels are the target's, so they carry no gradient."""
    l1 = weighted_l1(render, target, weight)
    if ssim_lambda <= 0:
        return l1
    filled = torch.where(weight[..., None] > 0, render, target)  # [H, W, 3]
    dssim = (weight * (1 - ssim_map(filled, target)[0].mean(0))).mean()  # map: [1, 3, H, W]
    return (1 - ssim_lambda) * l1 + ssim_lambda * dssim


def psnr(render: Tensor, target: Tensor) -> float:
    """PSNR in dB of images in [0, 1]."""
    mse = float((render - target).square().mean())
    return float("inf") if mse == 0 else -10.0 * math.log10(mse)
