"""Primitive families: Gaussians, triangles, convexes, GES (plain tensors + a frozen activation spec)."""

from __future__ import annotations

from recon.primitives.family import FAMILIES, Family
from recon.primitives.spec import PrimitiveSpec


def family(name: str) -> Family:
    """The record of a primitive family (``spec``, ``raster``, ``init_from_points``, ``centers``)."""
    if name not in FAMILIES:
        raise ValueError(f"unknown primitive {name!r}; expected one of {', '.join(FAMILIES)}")
    return FAMILIES[name]


def spec(name: str) -> PrimitiveSpec:
    """The activation spec of a primitive family."""
    return family(name).spec


def plural(name: str) -> str:
    """How a family's primitives are counted in messages: ``"gaussians"``, ``"convexes"``, ``"ges"``."""
    return family(name).raster.plural


__all__ = ["FAMILIES", "Family", "PrimitiveSpec", "family", "plural", "spec"]
