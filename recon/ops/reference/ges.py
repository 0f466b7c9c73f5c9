"""GES (Generalized Exponential Splatting) in pure PyTorch: stages 1 and 3 of ENGINE.md.

The true generalized-exponential window (METHODS.md section 3), not the official code's
covariance rescaling: with the Gaussian's dilated 2D conic and ``p = q / 2 = (a dx^2 + c dy^2)/2
+ b dx dy``, the window is ``exp(-p^(beta / 2))``; ``beta = 2`` is exactly the Gaussian window,
``beta = 1`` a Laplacian, large ``beta`` a box. The projection is the Gaussian one; only the
footprint changes: the box is the ellipse where ``opacity * window >= 1/255``, i.e.
``p <= ln(255 opacity)^(2 / beta)``, which grows as ``beta`` shrinks.
"""

from __future__ import annotations

import torch
from torch import Tensor

from recon.ops.reference.composite import ALPHA_MIN
from recon.ops.reference.project import project_gaussians
from recon.ops.reference.rasterize import composite_window, conic_power

# p is clamped to [P_MIN, P_MAX] inside the power: d(p^k)/dp is finite at the centre for k < 1, and
# p^k stays finite for k = 4 (P_MAX^k only has to be far beyond ln(255), where the pixel is skipped).
P_MIN = 1e-12
P_MAX = 1e8


def ges_extent(shape: Tensor, opacities: Tensor) -> Tensor:
    """[N] footprint half size in standard deviations: ``sqrt(2 ln(255 o)^(2 / beta))``.

    A pixel at ``p = q / 2`` from the centre has ``o exp(-p^(beta/2)) >= 1/255`` iff
    ``p <= ln(255 o)^(2/beta)``; the ellipse ``q <= 2 ln(255 o)^(2/beta)`` has the half extent
    ``sqrt(q_max Sigma_xx)`` along x. 0 (culled) when ``o <= 1/255``: it never reaches the
    alpha threshold. ``beta = 2``, ``o = 1`` gives ``sqrt(2 ln 255) = 3.329`` (the Gaussian's 3.33).

    Args:
        shape: [N] ``beta > 0``.
        opacities: [N] in [0, 1].
    """
    with torch.no_grad():
        level = torch.log((opacities.double() / ALPHA_MIN).clamp_min(1.0))  # [N] ln(255 o) >= 0
        extent = torch.sqrt(2.0 * level.pow(2.0 / shape.double()))
        return (extent * (1.0 + 1e-6)).to(shape.dtype)  # margin for float32 rounding at the edge


def project_ges(
    means: Tensor, quats: Tensor, scales: Tensor, shape: Tensor, opacities: Tensor, viewmats: Tensor, Ks: Tensor,
    width: int, height: int, near_plane: float = 0.01, far_plane: float = 1e10, eps2d: float = 0.3,
) -> tuple[Tensor, Tensor, Tensor, Tensor]:  # fmt: skip
    """Projects GES primitives: the Gaussian projection with the GES footprint (:func:`ges_extent`).

    Args:
        means, quats, scales: [N, 3], [N, 4], [N, 3] as :func:`~recon.ops.reference.project.project_gaussians`.
        shape: [N] ``beta`` (only sizes the footprint here: no gradient).
        opacities: [N] (only sizes the footprint: no gradient).
        viewmats, Ks, width, height, near_plane, far_plane, eps2d: cameras [V, 4, 4], [V, 3, 3] and
            options as ``project_gaussians``.

    Returns:
        means2d [V, N, 2], depths [V, N], conics [V, N, 3], radii [V, N, 2] int32.
    """
    return project_gaussians(
        means, quats, scales, viewmats, Ks, width, height, near_plane, far_plane, eps2d,
        extent=ges_extent(shape, opacities),
    )  # fmt: skip


def ges_window(ids: Tensor, pixels: Tensor, means2d: Tensor, conics: Tensor, shape: Tensor) -> Tensor:
    """``exp(-p^(beta/2))`` with ``p = (a dx^2 + c dy^2)/2 + b dx dy``; 0 where ``p < 0``.

    ``ids`` [B, K] flat ``view * N + n``, ``pixels`` [B, P, 2], ``means2d`` [V*N, 2], ``conics``
    [V*N, 3], ``shape`` [N]; returns [B, K, P].
    """
    N = shape.shape[0]
    power = conic_power(ids, pixels, means2d, conics)  # [B, K, P]
    half_beta = 0.5 * shape[ids % N][..., None]  # [B, K, 1]
    value = torch.exp(-power.clamp(P_MIN, P_MAX).pow(half_beta))
    return torch.where(power >= 0, value, torch.zeros_like(value))


def rasterize_ges_to_pixels(
    means2d: Tensor, conics: Tensor, shape: Tensor, *args, **kwargs
) -> tuple[Tensor, Tensor, Tensor]:
    """GES stage 3: means2d [V, N, 2], conics [V, N, 3], shape [N]; colors, alphas, max_weights."""
    return composite_window(ges_window, (means2d, conics, shape), *args, cost=2, **kwargs)


__all__ = ["ges_extent", "ges_window", "project_ges", "rasterize_ges_to_pixels"]
