"""3D Gaussians (3DGS): centres, rotations, log-scales, opacity logits and SH colours."""

from __future__ import annotations

import torch
from torch import Tensor

from recon.primitives.knn import mean_sq_knn_dist
from recon.primitives.sh import sh_params
from recon.primitives.spec import PrimitiveSpec

SPEC = PrimitiveSpec(
    name="gaussian",
    activations={
        "means": "identity",  # [N, 3]
        "quats": "normalize",  # [N, 4] wxyz
        "scales": "exp",  # [N, 3] log standard deviations
        "opacities": "sigmoid",  # [N] logits
        "sh0": "identity",  # [N, 1, 3]
        "shN": "identity",  # [N, K - 1, 3]
    },
)


def init_from_points(
    points: Tensor,
    colors: Tensor,
    *,
    sh_degree: int = 3,
    opacity: float = 0.1,
    scale_mult: float = 1.0,
) -> dict[str, Tensor]:
    """One isotropic Gaussian per point, sized by the 3-NN distance (3DGS).

    Args:
        points: [P, 3] centres.
        colors: [P, 3] colours in [0, 1].
        sh_degree: highest SH degree stored.
        opacity: initial opacity in (0, 1).
        scale_mult: multiplier on ``sqrt(mean squared 3-NN distance)``.

    Returns:
        Raw parameters (see :data:`SPEC`).
    """
    n = points.shape[0]
    dist = mean_sq_knn_dist(points.float()).sqrt() * scale_mult  # [N]
    sh0, shN = sh_params(colors.float(), sh_degree)
    quats = torch.zeros(n, 4)
    quats[:, 0] = 1.0
    return {
        "means": points.float().clone(),
        "quats": quats,
        "scales": dist.log()[:, None].repeat(1, 3),
        "opacities": torch.full((n,), float(torch.logit(torch.tensor(opacity)))),
        "sh0": sh0,
        "shN": shN,
    }


def centers(params: dict[str, Tensor]) -> Tensor:
    """[N, 3] world centres (for SH view directions and pruning)."""
    return params["means"]
