"""Triangles (Triangle Splatting): 3 free vertices, window smoothness sigma, opacity, SH."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import Tensor

from recon.geometry import random_rotations
from recon.ops import family as raster
from recon.primitives.family import Family
from recon.primitives.knn import mean_sq_knn_dist
from recon.primitives.sh import sh_params
from recon.primitives.spec import PrimitiveSpec, fibonacci_sphere, opacity_term

SPEC = PrimitiveSpec(
    name="triangle",
    activations={
        "vertices": "identity",  # [N, 3, 3]
        "sigma": "exp_plus_0.01",  # [N] sigma = 0.01 + exp(raw)
        "opacities": "sigmoid",  # [N]
        "sh0": "identity",  # [N, 1, 3]
        "shN": "identity",  # [N, K - 1, 3]
    },
)


def init_from_points(
    points: Tensor,
    colors: Tensor,
    *,
    sh_degree: int = 3,
    opacity: float = 0.28,
    sigma: float = 1.16,
    size: float = 2.23,
    generator: torch.Generator | None = None,
) -> dict[str, Tensor]:
    """One triangle per point: vertices = centre + r R u_i (METHODS.md 1.1).

    ``u_i`` are 3 Fibonacci-sphere directions, ``R`` a random rotation per triangle and
    ``r = size * sqrt(mean squared 3-NN distance)``.

    Args:
        points: [P, 3] centres.
        colors: [P, 3] colours in [0, 1].
        sh_degree: highest SH degree stored.
        opacity: initial opacity.
        sigma: initial window smoothness (> 0.01).
        size: radius multiplier on the 3-NN RMS distance.
        generator: random source for the rotations.
    """
    n = points.shape[0]
    r = mean_sq_knn_dist(points.float()).sqrt() * size  # [N]
    u = fibonacci_sphere(3)  # [3, 3]
    R = random_rotations(n, generator)  # [N, 3, 3]
    offsets = torch.einsum("nij,kj->nki", R, u) * r[:, None, None]  # [N, 3, 3]
    sh0, shN = sh_params(colors.float(), sh_degree)
    return {
        "vertices": points.float()[:, None, :] + offsets,
        "sigma": SPEC.inverse("sigma", torch.full((n,), sigma)),
        "opacities": torch.full((n,), float(torch.logit(torch.tensor(opacity)))),
        "sh0": sh0,
        "shN": shN,
    }


def centers(params: Mapping[str, Tensor]) -> Tensor:
    """[N, 3] centroids."""
    return params["vertices"].mean(1)


@dataclass(frozen=True)
class TriangleConfig:
    """Triangle options (config section ``triangle``): initialisation, learning rates, regulariser."""

    init_opacity: float = 0.28
    """Initial opacity."""
    init_sigma: float = 1.16
    """Initial window smoothness sigma."""
    init_size: float = 2.23
    """Radius as a multiple of the 3-NN RMS distance."""
    vertices_lr: float = 1.8e-3
    """Vertex LR (times scene scale), decayed to /100."""
    sigma_lr: float = 8e-4
    """Smoothness LR."""
    opacities_lr: float = 0.014
    """Opacity logit LR."""
    opacity_reg: float = 0.0055
    """Weight of mean opacity."""


FAMILY = Family(
    SPEC, raster.TRIANGLE, TriangleConfig, init_from_points, centers, ("triangle",),
    regularisers=lambda cfg, params: opacity_term(cfg.opacity_reg, SPEC, params),
)  # fmt: skip
