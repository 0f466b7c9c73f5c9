"""Primitive families: Gaussians, triangles, convexes, GES (plain tensors + a frozen activation spec).

Each family is one module ending in ``FAMILY = Family(...)`` (:mod:`recon.primitives.family`); the
table below registers them. A family defined elsewhere registers itself the same way.
"""

from __future__ import annotations

from recon.primitives import convex, gaussian, ges, triangle
from recon.primitives.family import FAMILIES, Family, register_family
from recon.primitives.spec import PrimitiveSpec

for _module in (gaussian, triangle, convex, ges):  # the family table
    register_family(_module.FAMILY)


def family(name: str) -> Family:
    """The record of a primitive family (``spec``, ``raster``, ``config``, ``init``, ``centers``...)."""
    if name not in FAMILIES:
        raise ValueError(f"unknown primitive {name!r}; expected one of {', '.join(FAMILIES)}")
    return FAMILIES[name]


def spec(name: str) -> PrimitiveSpec:
    """The activation spec of a primitive family."""
    return family(name).spec


def plural(name: str) -> str:
    """How a family's primitives are counted in messages: ``"gaussians"``, ``"convexes"``, ``"ges"``."""
    return family(name).raster.plural


__all__ = ["FAMILIES", "Family", "PrimitiveSpec", "family", "plural", "register_family", "spec"]
