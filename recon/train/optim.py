"""Optimizers, learning-rate schedules and the strategy chosen by a config."""

from __future__ import annotations

import math

import torch

from recon.config import TrainConfig
from recon.primitives import family
from recon.strategy import ConvexStrategy, DefaultStrategy, MCMCStrategy, NoStrategy, TriangleStrategy

# parameters whose LR is multiplied by the scene scale and decays exponentially to /100 (or to
# means_lr_final for Gaussians)
POSITION_PARAMS = {"means", "vertices", "points"}


def base_lrs(config: TrainConfig, scene_scale: float) -> dict[str, float]:
    """Initial LR per raw parameter name of ``config.primitive`` (the family's ``lrs`` table); the
    position's LR is multiplied by the scene scale."""
    fam = family(config.primitive)
    return {k: getattr(config.optim, f) * (scene_scale if k == fam.position else 1.0) for k, f in fam.lrs.items()}


def position_lr(config: TrainConfig, initial: float, scene_scale: float, step: int) -> float:
    """Log-linear decay over the run (3DGS ``get_expon_lr_func`` without delay)."""
    gaussian = family(config.primitive).config_family == "gaussian"
    final = config.optim.means_lr_final * scene_scale if gaussian else initial / 100.0
    t = min(max(step / max(config.iterations, 1), 0.0), 1.0)
    return math.exp((1 - t) * math.log(initial) + t * math.log(final))


def make_optimizers(params: dict[str, torch.nn.Parameter], lrs: dict[str, float]) -> dict[str, torch.optim.Adam]:
    """One Adam per parameter (eps 1e-15, as 3DGS), so strategies can edit rows per parameter."""
    return {k: torch.optim.Adam([p], lr=lrs[k], eps=1e-15) for k, p in params.items()}


def make_strategy(config: TrainConfig, scene_scale: float):
    """The strategy for ``config.primitive`` (``strategy.name`` = auto picks the family's own)."""
    s = config.strategy
    name = s.name
    if name == "auto":
        name = family(config.primitive).strategies[0]
    stop = min(s.refine_stop, config.iterations)
    if name == "none":
        return NoStrategy()
    if name == "default":
        return DefaultStrategy(prune_opa=s.prune_opacity, grow_grad2d=s.grow_grad2d, grow_scale3d=s.grow_scale3d,
                               prune_scale3d=s.prune_scale3d, refine_start=s.refine_start, refine_stop=stop,
                               refine_every=s.refine_every, reset_every=s.reset_every, absgrad=s.absgrad,
                               scene_scale=scene_scale)
    if name == "mcmc":
        return MCMCStrategy(cap_max=s.cap_max, noise_lr=s.noise_lr, refine_start=s.refine_start, refine_stop=stop,
                            refine_every=s.refine_every, min_opacity=s.prune_opacity)
    if name == "triangle":
        return TriangleStrategy(dead_blend=s.dead_blend, cap_max=s.cap_max, growth=s.growth, split_size=s.split_size,
                                refine_start=s.refine_start, refine_stop=stop, refine_every=s.refine_every)
    return ConvexStrategy(grad_threshold=s.convex_grad, shrink=s.convex_shrink, cap_max=s.cap_max,
                          refine_start=s.refine_start, refine_stop=stop, refine_every=s.refine_every,
                          scene_scale=scene_scale)
