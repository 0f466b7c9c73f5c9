"""GES (Generalized Exponential Splatting, METHODS.md section 3): Gaussians with a learnt shape.

Each primitive is a 3D Gaussian (centre, rotation, log-scales, opacity, SH) plus a raw shape
parameter whose activation ``beta`` in [0.5, 8] sets the window ``exp(-(q/2)^(beta/2))`` (``beta
= 2`` the Gaussian, 1 a Laplacian, 8 nearly a box; :mod:`recon.ops.reference.ges`). Training adds
the frequency-modulated loss of the official code (:func:`frequency_loss_terms`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from recon.ops import family as raster
from recon.primitives import gaussian
from recon.primitives.family import Family
from recon.primitives.spec import PrimitiveSpec

SPEC = PrimitiveSpec(
    name="ges",
    activations={**gaussian.SPEC.activations, "shape": "2exp_bounded"},  # shape: [N] beta in (0.5, 8), 2 at raw 0
)
centers = gaussian.centers


@dataclass(frozen=True)
class GesConfig(gaussian.GaussianConfig):
    """GES options (config section ``ges``): the Gaussian ones (same defaults) plus the shape's."""

    shape_lr: float = 1e-3
    """Shape LR (on the raw shape; beta = 2 exp(ln4 tanh(raw / ln4)) in (0.5, 8))."""
    frequency_weight: float = 0.5
    """Weight of the frequency-modulated L1 (DoG mask of the render), taken from L1's share (0.3 L1 +
    0.2 D-SSIM + 0.5 masked L1 with loss.ssim_lambda 0.2); 0 = off."""


def init_from_points(points: Tensor, colors: Tensor, **options: float) -> dict[str, Tensor]:
    """The Gaussians of :func:`recon.primitives.gaussian.init_from_points` (same ``options``), all
    with ``beta = 2`` (raw shape 0): training starts from the Gaussian fit's initial state."""
    raw = gaussian.init_from_points(points, colors, **options)
    return {**raw, "shape": torch.zeros(points.shape[0])}


def _blur(image: Tensor, sigma: float) -> Tensor:
    """[B, 1, H, W] Gaussian blur, kernel size ``2 round(3 sigma) + 1``, zero padding (separable)."""
    radius = max(round(3 * sigma), 0)
    x = torch.arange(-radius, radius + 1, dtype=image.dtype, device=image.device)
    k = torch.exp(-0.5 * (x / sigma) ** 2)
    k = k / k.sum()
    image = F.conv2d(image, k.reshape(1, 1, 1, -1), padding=(0, radius))
    return F.conv2d(image, k.reshape(1, 1, -1, 1), padding=(radius, 0))


@torch.no_grad()
def frequency_mask(render: Tensor, progress: float) -> Tensor:
    """The official GES mask (``apply_dog_filter``): where the render's DoG band is, per pixel.

    Grayscale render downscaled x0.2, difference of Gaussians ``sigma_1 - sigma_2`` with ``sigma_2 =
    2 sigma_1``, ``sigma_1 = 0.1 + 0.1 f`` rising to f = 50 then falling (f = 100 progress),
    upsampled, min-max normalised, inverted in the first half, binarised at 0.5.

    Args:
        render: [V, H, W, 3] rendered colours (the prediction, not the target: METHODS' pitfall).
        progress: fraction of training done, in [0, 1].

    Returns:
        [V, H, W, 1] float mask in {0, 1}.
    """
    f = 100.0 * min(max(progress, 0.0), 1.0)
    sigma = 0.1 + 0.1 * (f if f < 50 else 100.0 - f)
    H, W = render.shape[1:3]
    gray = render.mean(-1, keepdim=True).permute(0, 3, 1, 2)  # [V, 1, H, W]
    small = F.interpolate(gray, size=(max(round(0.2 * H), 1), max(round(0.2 * W), 1)), mode="bilinear",
                          align_corners=False)  # fmt: skip
    dog = F.interpolate(_blur(small, sigma) - _blur(small, 2 * sigma), size=(H, W), mode="bilinear",
                        align_corners=False)  # fmt: skip
    lo, hi = dog.amin(dim=(2, 3), keepdim=True), dog.amax(dim=(2, 3), keepdim=True)
    band = (dog - lo) / (hi - lo).clamp_min(1e-12)
    if f < 50:
        band = 1.0 - band
    return (band > 0.5).to(render.dtype).permute(0, 2, 3, 1)


def frequency_loss_terms(cfg: GesConfig, render: Tensor, target: Tensor, l1: Tensor, progress: float) -> dict:
    """GES' frequency-modulated L1, as a term added to the photometric loss.

    The official loss is ``0.3 L1 + 0.2 D-SSIM + 0.5 L1(M I, M I_gt)``; the photometric loss is
    ``0.8 L1 + 0.2 D-SSIM``, so the term is ``w (L1(M I, M I_gt) - L1)`` with ``w =
    cfg.frequency_weight`` (0.5; 0 = off).

    Args:
        cfg: the run's ``ges`` section.
        render: [V, H, W, 3] rendered colours; target: the same shape.
        l1: the photometric loss' L1 (scalar).
        progress: fraction of training done.

    Returns:
        ``{"frequency": term}``, or ``{}`` when off.
    """
    if cfg.frequency_weight <= 0:
        return {}
    mask = frequency_mask(render.detach(), progress)  # [V, H, W, 1]
    masked = (mask * (render - target)).abs().mean()
    return {"frequency": cfg.frequency_weight * (masked - l1)}


FAMILY = Family(
    SPEC, raster.GES, GesConfig, init_from_points, centers, ("default", "mcmc"), gaussian.regularisers,
    frequency_loss_terms,
)  # fmt: skip
