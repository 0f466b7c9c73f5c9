"""Densification strategies sharing one hook signature (see :mod:`recon.strategy.base`)."""

from __future__ import annotations

from recon.strategy.base import NoStrategy, Strategy, from_config
from recon.strategy.convex import ConvexStrategy
from recon.strategy.default import DefaultStrategy
from recon.strategy.mcmc import MCMCStrategy
from recon.strategy.triangle import TriangleStrategy

STRATEGIES: dict[str, type] = {
    "default": DefaultStrategy,
    "mcmc": MCMCStrategy,
    "triangle": TriangleStrategy,
    "convex": ConvexStrategy,
    "none": NoStrategy,
}
"""``strategy.name`` -> strategy class (hyper-parameters filled by :func:`from_config`)."""

__all__ = [
    "STRATEGIES",
    "ConvexStrategy",
    "DefaultStrategy",
    "MCMCStrategy",
    "NoStrategy",
    "Strategy",
    "TriangleStrategy",
    "from_config",
]
