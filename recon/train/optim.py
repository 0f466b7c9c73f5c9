"""Optimizers, learning-rate schedules and the strategy chosen by a config."""

from __future__ import annotations

import math

import torch

from recon.config import TrainConfig
from recon.primitives import FAMILIES, family
from recon.strategy import STRATEGIES, Strategy, from_config

# parameters whose LR is multiplied by the scene scale and decays exponentially (to the family's
# ``<position>_lr_final`` or to /100): every registered family's position
POSITION_PARAMS = frozenset(f.position for f in FAMILIES.values())


def base_lrs(config: TrainConfig, scene_scale: float) -> dict[str, float]:
    """Initial LR per raw parameter of ``config.primitive`` (its section's ``<param>_lr``, SH from
    ``optim``); the position's LR is multiplied by the scene scale."""
    fam = family(config.primitive)
    shared = {"sh0": config.optim.sh0_lr, "shN": config.optim.shN_lr}
    lrs = fam.learning_rates(config.section(), shared)
    return {k: lr * (scene_scale if k == fam.position else 1.0) for k, lr in lrs.items()}


def position_lr(config: TrainConfig, initial: float, scene_scale: float, step: int) -> float:
    """Log-linear decay over the run (3DGS ``get_expon_lr_func`` without delay)."""
    final = family(config.primitive).final_position_lr(config.section(), initial, scene_scale)
    t = min(max(step / max(config.iterations, 1), 0.0), 1.0)
    return math.exp((1 - t) * math.log(initial) + t * math.log(final))


def make_optimizers(params: dict[str, torch.nn.Parameter], lrs: dict[str, float]) -> dict[str, torch.optim.Adam]:
    """One Adam per parameter (eps 1e-15, as 3DGS), so strategies can edit rows per parameter."""
    return {k: torch.optim.Adam([p], lr=lrs[k], eps=1e-15) for k, p in params.items()}


def make_strategy(config: TrainConfig, scene_scale: float) -> Strategy:
    """The strategy for ``config.primitive`` (``strategy.name`` = auto picks the family's own), its
    hyper-parameters taken from ``config.strategy`` by name (:func:`recon.strategy.from_config`)."""
    s = config.strategy
    name = family(config.primitive).strategies[0] if s.name == "auto" else s.name
    return from_config(STRATEGIES[name], s, refine_stop=min(s.refine_stop, config.iterations), scene_scale=scene_scale)
