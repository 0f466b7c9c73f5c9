"""Smooth convexes (3D Convex Splatting): K points, smoothness delta, sharpness sigma, opacity, SH."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import Tensor

from recon.ops import family as raster
from recon.primitives.family import Family
from recon.primitives.knn import mean_sq_knn_dist
from recon.primitives.sh import sh_params
from recon.primitives.spec import PrimitiveSpec, fibonacci_sphere, opacity_term

SPEC = PrimitiveSpec(
    name="convex",
    activations={
        "points": "identity",  # [N, K, 3]
        "delta": "exp",  # [N] smoothness
        "sigma": "exp",  # [N] sharpness
        "opacities": "sigmoid",  # [N]
        "sh0": "identity",  # [N, 1, 3]
        "shN": "identity",  # [N, K' - 1, 3]
    },
)


def init_from_points(
    points: Tensor,
    colors: Tensor,
    *,
    sh_degree: int = 3,
    num_points: int = 6,
    opacity: float = 0.1,
    sigma: float = 9.5e-4,
    size: float = 1.2,
) -> dict[str, Tensor]:
    """One convex per point: K Fibonacci-sphere points of radius ``size * d`` (METHODS.md 2.1).

    ``d = sqrt(mean squared 3-NN distance)``; ``delta = 0.1 / d`` (scale aware).

    Args:
        points: [P, 3] centres.
        colors: [P, 3] colours in [0, 1].
        sh_degree: highest SH degree stored.
        num_points: K points per convex.
        opacity: initial opacity.
        sigma: initial sharpness.
        size: radius multiplier.
    """
    n = points.shape[0]
    d = mean_sq_knn_dist(points.float()).sqrt()  # [N]
    u = fibonacci_sphere(num_points)  # [K, 3]
    sh0, shN = sh_params(colors.float(), sh_degree)
    return {
        "points": points.float()[:, None, :] + u[None] * (size * d)[:, None, None],
        "delta": (0.1 / d).log(),
        "sigma": torch.full((n,), float(torch.log(torch.tensor(sigma)))),
        "opacities": torch.full((n,), float(torch.logit(torch.tensor(opacity)))),
        "sh0": sh0,
        "shN": shN,
    }


def centers(params: Mapping[str, Tensor]) -> Tensor:
    """[N, 3] centroids of the K points."""
    return params["points"].mean(1)


@dataclass(frozen=True)
class ConvexConfig:
    """Convex options (config section ``convex``): initialisation, learning rates, regulariser."""

    init_num_points: int = 6
    """Points per convex (K)."""
    init_opacity: float = 0.1
    """Initial opacity."""
    init_size: float = 1.2
    """Radius as a multiple of the 3-NN RMS distance."""
    init_sigma: float = 9.5e-4
    """Initial sharpness sigma."""
    points_lr: float = 5e-4
    """Point LR (times scene scale), decayed to /100."""
    delta_lr: float = 5e-3
    """Log-delta (smoothness) LR."""
    sigma_lr: float = 4.5e-3
    """Log-sigma (sharpness) LR."""
    opacities_lr: float = 0.01
    """Opacity logit LR."""
    mask_reg: float = 0.0
    """Weight of mean opacity (3DCS mask term, simplified)."""


FAMILY = Family(
    SPEC, raster.CONVEX, ConvexConfig, init_from_points, centers, ("convex",),
    regularisers=lambda cfg, params: opacity_term(cfg.mask_reg, SPEC, params),
)  # fmt: skip
