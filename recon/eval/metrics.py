"""Image metrics with the conventions of the 3DGS family of papers.

Images are ``[H, W, C]`` or ``[B, H, W, C]`` float tensors in [0, 1] (clamp renders before calling:
nothing is clamped here). A single image gives a 0-dim tensor, a batch gives ``[B]`` values
(average them yourself: papers average per-image values).

* PSNR = ``-10 log10(MSE)`` per image, the MSE over pixels and channels.
* SSIM = the 3DGS implementation (``utils/loss_utils.py``): 11x11 Gaussian window with sigma 1.5,
  zero-padded 'same' convolution per channel, ``C1 = 0.01^2``, ``C2 = 0.03^2`` (data range 1),
  the SSIM map averaged over pixels and channels.
* Masked variants (DTU, METHODS.md section 7, DNGaussian ``metrics_dtu.py``): prediction and ground
  truth are composited on a background (white by default) with the object mask; PSNR is then the
  MSE over mask pixels only, SSIM is computed on the full composited images.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

SSIM_WINDOW = 11
SSIM_SIGMA = 1.5
SSIM_C1 = 0.01**2
SSIM_C2 = 0.03**2


def _batched(pred: Tensor, gt: Tensor) -> tuple[Tensor, Tensor, bool]:
    """[B, H, W, C] views of both images and whether the input was a single image."""
    if pred.shape != gt.shape:
        raise ValueError(
            f"prediction {tuple(pred.shape)} and ground truth {tuple(gt.shape)} differ in shape"
        )
    if pred.dim() == 3:
        return pred[None], gt[None], True
    if pred.dim() == 4:
        return pred, gt, False
    raise ValueError(f"images must be [H, W, C] or [B, H, W, C], got {tuple(pred.shape)}")


def _mask_like(mask: Tensor, images: Tensor) -> Tensor:
    """A mask [H, W], [B, H, W] or with a trailing 1 as [B, H, W, 1] matching ``images`` [B, H, W, C]."""
    m = mask.to(images.dtype)
    if (
        m.dim() >= 1
        and m.shape[-1] == 1
        and m.dim() in (3, 4)
        and m.shape[-3:-1] == images.shape[1:3]
    ):
        m = m[..., 0]
    if m.dim() == 2:
        m = m[None]
    if m.dim() != 3 or m.shape[-2:] != images.shape[1:3] or m.shape[0] not in (1, images.shape[0]):
        raise ValueError(f"mask {tuple(mask.shape)} does not match images {tuple(images.shape)}")
    return m.expand(images.shape[0], -1, -1)[..., None]


def composite(images: Tensor, mask: Tensor, background: float | Tensor = 1.0) -> Tensor:
    """``images * mask + background * (1 - mask)``: images [B, H, W, C] or [H, W, C], mask [(B,) H, W]."""
    x, _, single = _batched(images, images)
    m = _mask_like(mask, x)
    bg = torch.as_tensor(background, dtype=x.dtype, device=x.device)
    out = x * m + bg * (1.0 - m)
    return out[0] if single else out


def mse(pred: Tensor, gt: Tensor, mask: Tensor | None = None) -> Tensor:
    """Mean squared error per image, over all pixels or over mask pixels (weighted by the mask)."""
    p, g, single = _batched(pred, gt)
    err = (p - g).square()
    if mask is None:
        out = err.flatten(1).mean(1)
    else:
        m = _mask_like(mask, p)
        weight = m.flatten(1).sum(1) * p.shape[-1]
        if bool((weight <= 0).any()):
            raise ValueError(
                "the mask is empty: a masked metric needs at least one pixel with mask > 0"
            )
        out = (err * m).flatten(1).sum(1) / weight
    return out[0] if single else out


def psnr(
    pred: Tensor, gt: Tensor, mask: Tensor | None = None, background: float | Tensor = 1.0
) -> Tensor:
    """Peak signal-to-noise ratio in dB (data range 1).

    Args:
        pred: [H, W, C] or [B, H, W, C] prediction in [0, 1].
        gt: ground truth of the same shape.
        mask: optional [H, W] / [B, H, W] object mask: both images are composited on
            ``background`` and the MSE is taken over mask pixels only (DTU protocol).
        background: composite colour for the masked variant.

    Returns:
        0-dim tensor for one image, [B] for a batch (inf for identical images).
    """
    if mask is not None:
        pred, gt = composite(pred, mask, background), composite(gt, mask, background)
    return -10.0 * torch.log10(mse(pred, gt, mask))


def gaussian_window(
    size: int = SSIM_WINDOW, sigma: float = SSIM_SIGMA, dtype=torch.float32
) -> Tensor:
    """[size] normalised 1D Gaussian taps (the 2D window is their outer product)."""
    x = torch.arange(size, dtype=torch.float64) - size // 2
    g = torch.exp(-(x**2) / (2.0 * sigma**2))
    return (g / g.sum()).to(dtype)


def _blur(x: Tensor, taps: Tensor) -> Tensor:
    """Separable zero-padded 'same' filtering of x [B, C, H, W] with the outer product of ``taps``."""
    C, r = x.shape[1], taps.shape[0] // 2
    kx = taps.view(1, 1, 1, -1).expand(C, 1, 1, -1)
    ky = taps.view(1, 1, -1, 1).expand(C, 1, -1, 1)
    return F.conv2d(F.conv2d(x, kx, padding=(0, r), groups=C), ky, padding=(r, 0), groups=C)


def ssim_map(
    pred: Tensor, gt: Tensor, window: int = SSIM_WINDOW, sigma: float = SSIM_SIGMA
) -> Tensor:
    """Per-pixel, per-channel SSIM, [B, H, W, C] (or [H, W, C] for one image); see :func:`ssim`."""
    p, g, single = _batched(pred, gt)
    x, y = p.permute(0, 3, 1, 2), g.permute(0, 3, 1, 2)  # [B, C, H, W]
    taps = gaussian_window(window, sigma, x.dtype).to(x.device)
    mu_x, mu_y = _blur(x, taps), _blur(y, taps)
    sxx = _blur(x * x, taps) - mu_x**2
    syy = _blur(y * y, taps) - mu_y**2
    sxy = _blur(x * y, taps) - mu_x * mu_y
    num = (2.0 * mu_x * mu_y + SSIM_C1) * (2.0 * sxy + SSIM_C2)
    den = (mu_x**2 + mu_y**2 + SSIM_C1) * (sxx + syy + SSIM_C2)
    out = (num / den).permute(0, 2, 3, 1)
    return out[0] if single else out


def ssim(
    pred: Tensor, gt: Tensor, mask: Tensor | None = None, background: float | Tensor = 1.0
) -> Tensor:
    """Structural similarity with the 3DGS convention (differentiable, usable as a loss).

    Args:
        pred: [H, W, C] or [B, H, W, C] prediction in [0, 1].
        gt: ground truth of the same shape.
        mask: optional [H, W] / [B, H, W] object mask: both images are composited on
            ``background`` first and SSIM is taken over the full composited images (DTU).
        background: composite colour for the masked variant.

    Returns:
        0-dim tensor for one image, [B] for a batch.
    """
    if mask is not None:
        pred, gt = composite(pred, mask, background), composite(gt, mask, background)
    m = ssim_map(pred, gt)
    return m.mean() if m.dim() == 3 else m.flatten(1).mean(1)


def average_error(psnr_db: float, ssim_value: float, lpips_value: float) -> float:
    """The 'Average' of RegNeRF/FreeNeRF tables: geometric mean of 10^(-PSNR/10), sqrt(1-SSIM), LPIPS."""
    terms = (10.0 ** (-psnr_db / 10.0), math.sqrt(max(0.0, 1.0 - ssim_value)), lpips_value)
    return math.exp(sum(math.log(max(t, 1e-12)) for t in terms) / 3.0)
