"""Per-family config sections of :class:`recon.config.TrainConfig`, and where schema 1 kept them.

Every registered primitive family owns a frozen dataclass (``recon.primitives.ges.GesConfig``...);
a config holds one section per family in :class:`FamilySections`, saved and overridden under the
family's name: ``{"ges": {"shape_lr": 0.001}}``, ``override(c, **{"ges.shape_lr": 2e-3})``.

Schema 1 (``RUN/config.json`` of runs before the family sections) flattened these options into the
shared ``init`` / ``optim`` / ``loss`` sections (``optim.shape_lr``, ``init.triangle_opacity``,
``loss.ges_frequency``...). :func:`move_schema1_keys` moves them to their sections, for old run
folders and for the old dotted paths in overrides and presets, which keep working.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

_GAUSSIAN_LIKE = ("gaussian", "ges")  # GES took the Gaussian options in schema 1


def _moves() -> dict[str, tuple[str, ...]]:
    gaussian = {
        "init.opacity": "init_opacity", "init.scale_mult": "init_scale_mult", "optim.means_lr": "means_lr",
        "optim.means_lr_final": "means_lr_final", "optim.scales_lr": "scales_lr", "optim.quats_lr": "quats_lr",
        "optim.opacities_lr": "opacities_lr", "loss.opacity_reg": "opacity_reg", "loss.scale_reg": "scale_reg",
        "loss.aniso_reg": "aniso_reg", "loss.aniso_max": "aniso_max",
    }  # fmt: skip
    moves = {old: tuple(f"{fam}.{new}" for fam in _GAUSSIAN_LIKE) for old, new in gaussian.items()}
    return moves | {
        "init.triangle_opacity": ("triangle.init_opacity",), "init.triangle_sigma": ("triangle.init_sigma",),
        "init.triangle_size": ("triangle.init_size",), "optim.vertices_lr": ("triangle.vertices_lr",),
        "optim.sigma_lr": ("triangle.sigma_lr",), "optim.triangle_opacity_lr": ("triangle.opacities_lr",),
        "loss.triangle_opacity_reg": ("triangle.opacity_reg",),
        "init.convex_points": ("convex.init_num_points",), "init.convex_opacity": ("convex.init_opacity",),
        "init.convex_size": ("convex.init_size",), "init.convex_sigma": ("convex.init_sigma",),
        "optim.points_lr": ("convex.points_lr",), "optim.delta_lr": ("convex.delta_lr",),
        "optim.convex_sigma_lr": ("convex.sigma_lr",), "optim.convex_opacity_lr": ("convex.opacities_lr",),
        "loss.convex_mask_reg": ("convex.mask_reg",),
        "optim.shape_lr": ("ges.shape_lr",), "loss.ges_frequency": ("ges.frequency_weight",),
    }  # fmt: skip


SCHEMA1_MOVES: dict[str, tuple[str, ...]] = _moves()
"""Schema-1 dotted key -> the family-section keys it became (the Gaussian options fill both
``gaussian`` and ``ges``, which shared them)."""


def move_schema1_keys(data: dict[str, Any], check: Callable[[Any, str, str], Any], version: int) -> dict[str, Any]:
    """``data`` (a nested config mapping) with schema-1 keys moved to the family sections.

    A key given both ways keeps the section's value. Schema-1 files (``version`` 1) also drop
    ``strategy.prune_opacity`` for triangles and convexes: schema 1 never passed it to their
    strategies, which keep their own thresholds (0.014, 0.03) that way.

    Args:
        data: nested mapping (not modified).
        check: ``(value, new key, old key) -> value`` validates a moved value, naming the old key.
        version: the file's ``schema_version``.
    """
    data = {k: dict(v) if isinstance(v, Mapping) else v for k, v in data.items()}
    for old, targets in SCHEMA1_MOVES.items():
        section, name = old.split(".")
        if not isinstance(data.get(section), dict) or name not in data[section]:
            continue
        value = data[section].pop(name)
        for target in targets:
            fam, field = target.split(".")
            data.setdefault(fam, {})
            if isinstance(data[fam], dict):
                data[fam].setdefault(field, check(value, target, old))
    strategy = data.get("strategy")
    if version == 1 and data.get("primitive") in ("triangle", "convex") and isinstance(strategy, dict):
        strategy.pop("prune_opacity", None)
    return data


class FamilySections(Mapping[str, Any]):
    """Immutable mapping: family name -> its config section (a frozen dataclass of the family's module).

    A family registered after the config was made reads its defaults (:meth:`section`).
    """

    def __init__(self, sections: Mapping[str, Any] | None = None):
        self._sections = dict(sections or {})

    def __getitem__(self, name: str) -> Any:
        return self._sections[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._sections)

    def __len__(self) -> int:
        return len(self._sections)

    def __hash__(self) -> int:
        return hash(tuple(sorted(self._sections.items(), key=lambda kv: kv[0])))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Mapping) and dict(self.items()) == dict(other.items())

    def __repr__(self) -> str:
        return f"FamilySections({self._sections!r})"

    def replace(self, **sections: Any) -> FamilySections:
        """A copy with the given sections replaced or added."""
        return FamilySections({**self._sections, **sections})

    def section(self, name: str) -> Any:
        """The section of family ``name``: the stored one, else the family's defaults."""
        if name in self._sections:
            return self._sections[name]
        from recon.primitives import family

        return family(name).config()


def default_sections() -> FamilySections:
    """The default section of every registered family."""
    from recon.primitives.family import section_defaults

    return FamilySections(section_defaults())


__all__ = ["SCHEMA1_MOVES", "FamilySections", "default_sections", "move_schema1_keys"]
