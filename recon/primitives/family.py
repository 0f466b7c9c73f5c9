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
from typing import Any

from torch import Tensor

from recon.ops import family as raster
from recon.primitives import convex, gaussian, ges, triangle
from recon.primitives.spec import PrimitiveSpec


@dataclass(frozen=True)
class Family:
    """One primitive family.

    Attributes:
        name: ``"gaussian"``, ``"triangle"``, ``"convex"`` or ``"ges"`` (keys of :data:`FAMILIES`).
        spec: raw parameter names and their activations (owned by the family's module).
        raster: the rasterization record; its inputs are activated parameters of the same names.
        init_from_points: ``(points [P, 3], colors [P, 3], **options) -> raw parameters``.
        centers: ``raw parameters -> [N, 3]`` primitive centres.
        strategies: densification strategies made for this family; the first is the default
            (``strategy.name: auto``); ``none`` fits every family.
        lrs: raw parameter -> the ``OptimConfig`` field holding its learning rate.
        extends: the family this one extends (GES: ``"gaussian"``), whose init options,
            regularisers and position schedule it takes; None for the base families.
        loss_terms: ``(loss config, render [V,H,W,3], target, l1, progress) -> {name: term}``
            added to the photometric loss while training this family, or None.
    """

    name: str
    spec: PrimitiveSpec
    raster: raster.RasterFamily
    init_from_points: Callable[..., dict[str, Tensor]]
    centers: Callable[[Mapping[str, Tensor]], Tensor]
    strategies: tuple[str, ...]
    lrs: Mapping[str, str]
    extends: str | None = None
    loss_terms: Callable[..., dict[str, Tensor]] | None = None

    @property
    def config_family(self) -> str:
        """The family whose config options (``init``, ``loss``, ``optim``) this one reads."""
        return self.extends or self.name

    @property
    def position(self) -> str:
        """The raw parameter that places the primitive in the world (its LR scales with the scene)."""
        return self.raster.position

    def raster_inputs(self, activated: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """The rasterization op's inputs picked from the activated parameters."""
        return {p.name: activated[p.name] for p in self.raster.inputs}


def _family(
    module: ModuleType, raster_family: raster.RasterFamily, strategies: tuple[str, ...], lrs: Mapping[str, str],
    **extra: Any,
) -> Family:  # fmt: skip
    spec = module.SPEC
    return Family(spec.name, spec, raster_family, module.init_from_points, module.centers, strategies, lrs, **extra)


# raw parameter -> OptimConfig field of its learning rate
_SH_LRS = {"sh0": "sh0_lr", "shN": "shN_lr"}
_GAUSSIAN_LRS = {"means": "means_lr", "quats": "quats_lr", "scales": "scales_lr", "opacities": "opacities_lr"}
_TRIANGLE_LRS = {"vertices": "vertices_lr", "sigma": "sigma_lr", "opacities": "triangle_opacity_lr"}
_CONVEX_LRS = {"points": "points_lr", "delta": "delta_lr", "sigma": "convex_sigma_lr", "opacities": "convex_opacity_lr"}

FAMILIES: dict[str, Family] = {
    "gaussian": _family(gaussian, raster.GAUSSIAN, ("default", "mcmc"), {**_GAUSSIAN_LRS, **_SH_LRS}),
    "triangle": _family(triangle, raster.TRIANGLE, ("triangle",), {**_TRIANGLE_LRS, **_SH_LRS}),
    "convex": _family(convex, raster.CONVEX, ("convex",), {**_CONVEX_LRS, **_SH_LRS}),
    "ges": _family(
        ges,
        raster.GES,
        ("default", "mcmc"),
        {**_GAUSSIAN_LRS, **_SH_LRS, "shape": "shape_lr"},
        extends="gaussian",
        loss_terms=ges.frequency_loss_terms,
    ),
}

__all__ = ["FAMILIES", "Family"]
