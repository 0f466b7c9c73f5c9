"""Densification strategies sharing one hook signature (see :mod:`recon.strategy.base`)."""

from __future__ import annotations

from recon.strategy.base import NoStrategy, Strategy
from recon.strategy.convex import ConvexStrategy
from recon.strategy.default import DefaultStrategy
from recon.strategy.mcmc import MCMCStrategy
from recon.strategy.triangle import TriangleStrategy

__all__ = ["ConvexStrategy", "DefaultStrategy", "MCMCStrategy", "NoStrategy", "Strategy", "TriangleStrategy"]
