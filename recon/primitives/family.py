"""The family record and the family table: a primitive family is one module plus one table line.

A family's module (``gaussian.py``, ``triangle.py``, ...) holds everything beside its raw tensors:
its :class:`~recon.primitives.spec.PrimitiveSpec` (parameters and activations), ``init_from_points``,
``centers``, its config section (a frozen dataclass, e.g. :class:`recon.primitives.ges.GesConfig`),
its loss terms and a pointer to its rasterization record (:class:`recon.ops.family.RasterFamily`:
projection, reference window, kernel id). It ends with ``FAMILY = Family(...)``; the package's
``__init__`` registers it with :func:`register_family` (the one table line), and every caller looks
the family up in :data:`FAMILIES` instead of branching on its name.

The config section is read by naming convention, so the trainer needs no per-family code:

* ``init_<option>`` fields are the ``<option>`` keywords of ``init_from_points``;
* ``<param>_lr`` fields are the Adam learning rates of raw parameter ``<param>`` (the SH
  coefficients ``sh0`` / ``shN`` take the shared ``optim.sh0_lr`` / ``optim.shN_lr``);
* ``<position>_lr_final``, when present, is where the position's LR decays to (times the scene
  scale); otherwise it decays to 1/100 of its initial value.

The section is saved in ``RUN/config.json`` under the family's name (``"ges": {"shape_lr": ...}``) and
overridden with the same path (``override(config, **{"ges.shape_lr": 2e-3})``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from torch import Tensor

from recon.ops.family import RasterFamily
from recon.primitives.spec import PrimitiveSpec

SHARED_LRS = ("sh0", "shN")  # raw parameters whose LR is a shared optim option (``optim.<name>_lr``)
INIT_PREFIX = "init_"

# (section, params) -> {term name: weighted scalar} added to the loss every step
Regularisers = Callable[[Any, Mapping[str, Tensor]], dict[str, Tensor]]
# (section, render [V, H, W, 3], target, l1, progress in [0, 1]) -> {term name: weighted scalar}
LossTerms = Callable[[Any, Tensor, Tensor, Tensor, float], dict[str, Tensor]]


@dataclass(frozen=True)
class Family:
    """One primitive family.

    Attributes:
        spec: raw parameter names and their activations; ``spec.name`` is the family's name.
        raster: the rasterization record; its inputs are activated parameters of the same names.
        config: the family's config section, a frozen dataclass with defaults for every field
            (``init_*``, ``*_lr``, loss weights: see the module docstring).
        init_from_points: ``(points [P, 3], colors [P, 3], *, sh_degree, **options) -> raw parameters``.
        centers: ``raw parameters -> [N, 3]`` primitive centres.
        strategies: densification strategies made for this family; the first is the default
            (``strategy.name: auto``); ``none`` fits every family.
        regularisers: per-step terms on the raw parameters, weighted by the section, or None.
        loss_terms: image terms added to the photometric loss (GES' frequency-modulated L1), or None.
    """

    spec: PrimitiveSpec
    raster: RasterFamily
    config: type
    init_from_points: Callable[..., dict[str, Tensor]]
    centers: Callable[[Mapping[str, Tensor]], Tensor]
    strategies: tuple[str, ...]
    regularisers: Regularisers | None = None
    loss_terms: LossTerms | None = None

    @property
    def name(self) -> str:
        """``"gaussian"``, ``"triangle"``, ``"convex"``, ``"ges"`` (keys of :data:`FAMILIES`)."""
        return self.spec.name

    @property
    def position(self) -> str:
        """The raw parameter that places the primitive in the world (its LR scales with the scene)."""
        return self.raster.position

    def raster_inputs(self, activated: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """The rasterization op's inputs picked from the activated parameters."""
        return {p.name: activated[p.name] for p in self.raster.inputs}

    def init(self, points: Tensor, colors: Tensor, section: Any, sh_degree: int) -> dict[str, Tensor]:
        """Raw parameters from a point cloud ([P, 3] points and colours), with the section's ``init_*`` options."""
        options = {
            k[len(INIT_PREFIX) :]: v for k, v in dataclasses.asdict(section).items() if k.startswith(INIT_PREFIX)
        }
        return self.init_from_points(points, colors, sh_degree=sh_degree, **options)

    def learning_rates(self, section: Any, shared: Mapping[str, float]) -> dict[str, float]:
        """Initial LR per raw parameter: the section's ``<param>_lr``, else ``shared[param]`` (SH)."""
        return {p: shared[p] if p in SHARED_LRS else getattr(section, f"{p}_lr") for p in self.spec.param_names}

    def final_position_lr(self, section: Any, initial: float, scene_scale: float) -> float:
        """Where the position's LR decays to: ``<position>_lr_final x scene scale``, else ``initial / 100``."""
        final = getattr(section, f"{self.position}_lr_final", None)
        return initial / 100.0 if final is None else final * scene_scale


FAMILIES: dict[str, Family] = {}
RESERVED = ("data", "primitive", "init", "optim", "loss", "sparse", "strategy", "repair", "wild", "families")


def register_family(family: Family) -> Family:
    """Adds ``family`` to :data:`FAMILIES` (the table line of a family module); returns it.

    Checks what the trainer will rely on: the spec and the rasterization record agree, the config
    section is a frozen dataclass with defaults, every raw parameter has a learning rate, and the
    name does not shadow a config section.

    Raises:
        ValueError: a check failed, or the name is taken by another family.
    """
    name = family.name
    if name in FAMILIES and FAMILIES[name] is not family:
        raise ValueError(f"primitive family {name!r} is already registered")
    if name in RESERVED or not name.isidentifier():
        raise ValueError(f"primitive family name {name!r} must be an identifier other than {', '.join(RESERVED)}")
    if family.raster.name != name:
        raise ValueError(f"family {name!r} points at the rasterization record {family.raster.name!r}")
    missing = {i.name for i in family.raster.inputs} - set(family.spec.param_names)
    if missing:
        raise ValueError(f"family {name!r}: the rasterizer takes {sorted(missing)}, which the spec lacks")
    params = dataclasses.fields(family.config) if dataclasses.is_dataclass(family.config) else None
    if params is None or not family.config.__dataclass_params__.frozen:
        raise ValueError(f"family {name!r}: config must be a frozen dataclass, got {family.config!r}")
    section = family.config()  # every field has a default (raises TypeError otherwise)
    no_lr = [p for p in family.spec.param_names if p not in SHARED_LRS and not hasattr(section, f"{p}_lr")]
    if no_lr:
        raise ValueError(f"family {name!r}: {family.config.__name__} has no learning rate for {no_lr} (<param>_lr)")
    FAMILIES[name] = family
    return family


def section_defaults() -> dict[str, Any]:
    """The default config section of every registered family, by name."""
    return {name: fam.config() for name, fam in FAMILIES.items()}


__all__ = ["FAMILIES", "Family", "register_family", "section_defaults"]
