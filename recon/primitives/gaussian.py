"""3D Gaussians (3DGS): centres, rotations, log-scales, opacity logits and SH colours."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import Tensor

from recon.ops import family as raster
from recon.primitives.family import Family
from recon.primitives.knn import mean_sq_knn_dist
from recon.primitives.sh import sh_params
from recon.primitives.spec import PrimitiveSpec, opacity_term

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


def centers(params: Mapping[str, Tensor]) -> Tensor:
    """[N, 3] world centres (for SH view directions and pruning)."""
    return params["means"]


@dataclass(frozen=True)
class GaussianConfig:
    """Gaussian options (config section ``gaussian``): initialisation, learning rates, regularisers."""

    init_opacity: float = 0.1
    """Initial opacity."""
    init_scale_mult: float = 1.0
    """Multiplier on the k-NN based initial sizes."""
    means_lr: float = 1.6e-4
    """Centre LR, multiplied by the scene scale; decays exponentially to means_lr_final."""
    means_lr_final: float = 1.6e-6
    """Final centre LR (times scene scale)."""
    scales_lr: float = 5e-3
    """Log-scale LR."""
    quats_lr: float = 1e-3
    """Rotation LR."""
    opacities_lr: float = 5e-2
    """Opacity logit LR."""
    opacity_reg: float = 0.0
    """Weight of mean opacity."""
    scale_reg: float = 0.0
    """Weight of mean activated scale (MCMC uses 0.01)."""
    aniso_reg: float = 0.0
    """Weight of mean max(ratio - aniso_max, 0), ratio = largest / smallest scale (PhysGaussian's
    anisotropy penalty: few views let needles along the rays explain every view)."""
    aniso_max: float = 10.0
    """Largest scale ratio the anisotropy penalty tolerates."""


def regularisers(cfg: GaussianConfig, params: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Opacity, scale and anisotropy penalties on the raw parameters, weighted by ``cfg`` (0 = off)."""
    terms = opacity_term(cfg.opacity_reg, SPEC, params)
    if cfg.scale_reg > 0:
        terms["scale_reg"] = cfg.scale_reg * SPEC.activate_one("scales", params["scales"]).mean()
    if cfg.aniso_reg > 0:
        log_ratio = params["scales"].max(dim=-1).values - params["scales"].min(dim=-1).values  # [N]
        terms["aniso_reg"] = cfg.aniso_reg * (torch.exp(log_ratio) - cfg.aniso_max).clamp_min(0).mean()
    return terms


FAMILY = Family(SPEC, raster.GAUSSIAN, GaussianConfig, init_from_points, centers, ("default", "mcmc"), regularisers)
