"""Primitive families: Gaussians, triangles, convexes (plain tensors + a frozen activation spec)."""

from __future__ import annotations

from types import ModuleType

from recon.primitives import convex, gaussian, triangle
from recon.primitives.spec import PrimitiveSpec

FAMILIES: dict[str, ModuleType] = {"gaussian": gaussian, "triangle": triangle, "convex": convex}


def family(name: str) -> ModuleType:
    """The module of a primitive family (``SPEC``, ``init_from_points``, ``centers``)."""
    if name not in FAMILIES:
        raise ValueError(f"unknown primitive {name!r}; expected one of {', '.join(FAMILIES)}")
    return FAMILIES[name]


def spec(name: str) -> PrimitiveSpec:
    """The activation spec of a primitive family."""
    return family(name).SPEC


__all__ = ["FAMILIES", "PrimitiveSpec", "family", "spec"]
