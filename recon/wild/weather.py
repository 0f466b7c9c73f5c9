"""Rain and snow streaks: thin outliers sharing one direction, masked out of the loss (optional).

The robust mask (:mod:`recon.wild.robust`) removes thin lines on purpose: they are mostly edges
the render has not learnt yet. Streaks are thin too, but a shower's streaks all fall at one angle
while edges run every way. Per image, residual outliers are thinned (what a 3x3 opening removes)
and opened with a line of ``length`` pixels at each of ``angles`` orientations; the orientation
keeping the most pixels is the streak direction, and the outliers it keeps are masked.
The render is the model of the clean scene here: the scene trains on itself, no pretrained network.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from recon.wild.robust import opening


def line_kernel(length: int, angle: float) -> Tensor:
    """[K, K] 0/1 kernel of a centred digital line of ``length`` pixels at ``angle`` radians."""
    k = length if length % 2 else length + 1
    kernel = torch.zeros(k, k)
    c = k // 2
    for t in torch.linspace(-(length - 1) / 2, (length - 1) / 2, 2 * length):
        kernel[round(c + float(t) * math.sin(angle)), round(c + float(t) * math.cos(angle))] = 1
    return kernel


def _line_opening(x: Tensor, kernel: Tensor) -> Tensor:
    """Opening of an [H, W] 0/1 image by a line: the pixels covered by a copy of the line that fits
    (all its pixels but one set)."""
    k = kernel[None, None]
    pad = kernel.shape[0] // 2
    fits = F.conv2d(x[None, None], k, padding=pad) >= kernel.sum() - 1.5  # one pixel may miss (rasterisation)
    return (F.conv2d(fits.float(), k.flip(-1, -2), padding=pad) > 0)[0, 0]


def streak_mask(residual: Tensor, floor: float = 0.1, length: int = 4, angles: int = 12) -> Tensor:
    """[H, W] bool pixels of streaks in one image.

    Args:
        residual: [H, W] per-pixel residual against the render, detached.
        floor: residual above which a pixel is an outlier.
        length: shortest streak, in pixels.
        angles: orientations tried over 180 degrees.
    """
    outlier = (residual > floor).float()
    thin = outlier * (1 - opening(outlier))  # [H, W] outliers no 3x3 square fits in
    best, best_count = torch.zeros_like(thin, dtype=torch.bool), 0
    for i in range(angles):
        kept = _line_opening(thin, line_kernel(length, math.pi * i / angles).to(thin))
        count = int(kept.sum())
        if count > best_count:
            best, best_count = kept, count
    return best & (thin > 0)
