"""Spherical-harmonics colour coefficients (3DGS conventions: colour = 0.5 + SH . basis)."""

from __future__ import annotations

import torch
from torch import Tensor

SH_C0 = 0.28209479177387814


def rgb_to_sh0(rgb: Tensor) -> Tensor:
    """[..., 3] colours in [0, 1] -> [..., 3] DC coefficients."""
    return (rgb - 0.5) / SH_C0


def sh0_to_rgb(sh0: Tensor) -> Tensor:
    """[..., 3] DC coefficients -> [..., 3] colours (before clamping)."""
    return sh0 * SH_C0 + 0.5


def num_sh_bases(degree: int) -> int:
    """Number of SH coefficients per channel up to ``degree``."""
    return (degree + 1) ** 2


def sh_params(colors: Tensor, degree: int) -> tuple[Tensor, Tensor]:
    """DC from ``colors`` [N, 3] and zero higher bands: (sh0 [N, 1, 3], shN [N, K - 1, 3])."""
    n = colors.shape[0]
    sh0 = rgb_to_sh0(colors.clamp(0.0, 1.0)).reshape(n, 1, 3)
    shN = torch.zeros(n, num_sh_bases(degree) - 1, 3, dtype=colors.dtype, device=colors.device)
    return sh0, shN
