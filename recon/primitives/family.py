"""The family table: one record per primitive family, everything beside its raw tensors.

A family is one module (``gaussian.py``, ...: its :class:`~recon.primitives.spec.PrimitiveSpec`,
``init_from_points`` and ``centers``) plus its rasterization record
(:class:`recon.ops.family.RasterFamily`: projection, window, kernel id). :data:`FAMILIES` ties
them together so that callers look a family up instead of branching on its name.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import ModuleType

from torch import Tensor

from recon.ops import family as raster
from recon.primitives import convex, gaussian, triangle
from recon.primitives.spec import PrimitiveSpec


@dataclass(frozen=True)
class Family:
    """One primitive family.

    Attributes:
        name: ``"gaussian"``, ``"triangle"`` or ``"convex"`` (keys of :data:`FAMILIES`).
        spec: raw parameter names and their activations (owned by the family's module).
        raster: the rasterization record; its inputs are activated parameters of the same names.
        init_from_points: ``(points [P, 3], colors [P, 3], **options) -> raw parameters``.
        centers: ``raw parameters -> [N, 3]`` primitive centres.
        strategies: densification strategies made for this family; the first is the default
            (``strategy.name: auto``); ``none`` fits every family.
    """

    name: str
    spec: PrimitiveSpec
    raster: raster.RasterFamily
    init_from_points: Callable[..., dict[str, Tensor]]
    centers: Callable[[Mapping[str, Tensor]], Tensor]
    strategies: tuple[str, ...]

    @property
    def position(self) -> str:
        """The raw parameter that places the primitive in the world (its LR scales with the scene)."""
        return self.raster.position

    def raster_inputs(self, activated: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """The rasterization op's inputs picked from the activated parameters."""
        return {p.name: activated[p.name] for p in self.raster.inputs}


def _family(module: ModuleType, raster_family: raster.RasterFamily, strategies: tuple[str, ...]) -> Family:
    return Family(module.SPEC.name, module.SPEC, raster_family, module.init_from_points, module.centers, strategies)


FAMILIES: dict[str, Family] = {
    "gaussian": _family(gaussian, raster.GAUSSIAN, ("default", "mcmc")),
    "triangle": _family(triangle, raster.TRIANGLE, ("triangle",)),
    "convex": _family(convex, raster.CONVEX, ("convex",)),
}

__all__ = ["FAMILIES", "Family"]
