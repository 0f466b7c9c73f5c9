"""A benchmark matrix: scenes x primitives x settings x seeds, read strictly from YAML.

A matrix file (``configs/bench/*.yaml``)::

    name: smoke                    # readable name; default BENCH_DIR is runs/bench/<name>
    preset: demo                   # training preset every cell starts from (configs/train or a file)
    train:                         # dotted overrides of the training config, for every cell
      iterations: 200
    scenes:
      - name: synthetic            # readable name (default: the folder name)
        path: synthetic            # scene folder, as `recon train --data` takes it
        format: auto               # optional: format, protocol, views (as `recon train`)
        protocol: generic
    primitives: [gaussian, triangle]
    settings:                      # named overrides on top of `train`; `preset` swaps the base
      default: {}
      no-sparse: {sparse.enabled: false}
    seeds: [0, 1]
    datasets: datasets/dtu.md      # where to get the scenes (named when one is missing)

Every cell's config is built and validated by :mod:`recon.config` (strict: an unknown key or a
wrongly typed value is a :class:`~recon.errors.ConfigError` naming the key) and by the checks of
``recon train``. A cell's id is a readable prefix plus a short hash of its resolved config, so the
same config always lands in the same run folder and any change (an override, a seed, a preset
value) lands in a new one.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from recon.config import PRIMITIVES, TrainConfig, load_preset, override
from recon.errors import ConfigError
from recon.resources import shipped_dir
from recon.run import SYNTHETIC

MATRIX_DIR = shipped_dir("configs") / "bench"

TOP_KEYS = ("name", "preset", "train", "scenes", "primitives", "settings", "seeds", "datasets")
SCENE_KEYS = ("name", "path", "format", "protocol", "views")
DATASETS_GUIDE = "datasets/README.md"  # how to obtain a missing scene, unless the matrix names a page


@dataclass(frozen=True)
class SceneSpec:
    """One scene of the matrix (the ``--data/--format/--protocol/--views`` of ``recon train``);
    ``None`` keeps the preset's value."""

    name: str
    path: str
    format: str | None = None
    protocol: str | None = None
    views: int | None = None

    def available(self) -> bool:
        """Whether the scene can be read on this machine (the synthetic scene always can)."""
        return self.path == SYNTHETIC or Path(self.path).expanduser().exists()


@dataclass(frozen=True)
class BenchSpec:
    """A parsed matrix file (module docstring)."""

    name: str
    preset: str
    train: dict[str, Any]
    scenes: tuple[SceneSpec, ...]
    primitives: tuple[str, ...]
    settings: dict[str, dict[str, Any]]
    seeds: tuple[int, ...]
    source: Path | None = None
    datasets: str = DATASETS_GUIDE


@dataclass(frozen=True)
class Cell:
    """One run of the matrix: a scene, a primitive, a setting and a seed, with its resolved config."""

    id: str
    scene: SceneSpec
    primitive: str
    setting: str
    seed: int
    config: TrainConfig = field(repr=False)

    @property
    def available(self) -> bool:
        return self.scene.available()


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.+-]+", "_", text).strip("_") or "x"


def config_hash(config: TrainConfig) -> str:
    """Short stable hash of a resolved config (sorted JSON of every field)."""
    text = json.dumps(config.to_dict(), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:10]


def _mapping(value: Any, key: str, source: Path | None) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ConfigError(f"{key}: expected a mapping, got {type(value).__name__}", path=source)
    return value


def _list(value: Any, key: str, source: Path | None) -> list[Any]:
    if not isinstance(value, list) or not value:
        raise ConfigError(f"{key}: expected a non-empty list", path=source, hint=f"e.g. {key}: [...]")
    return value


def _unknown(data: dict[str, Any], allowed: tuple[str, ...], where: str, source: Path | None) -> None:
    unknown = sorted(set(data) - set(allowed))
    if unknown:
        raise ConfigError(
            f"unknown key{'s' if len(unknown) > 1 else ''} {', '.join(map(str, unknown))} in {where}",
            path=source,
            hint=f"valid keys: {', '.join(allowed)}",
        )


def _scene(item: Any, i: int, source: Path | None) -> SceneSpec:
    if isinstance(item, str):
        item = {"path": item}
    where = f"scenes[{i}]"
    item = _mapping(item, where, source)
    _unknown(item, SCENE_KEYS, where, source)
    if not isinstance(item.get("path"), str) or not item["path"]:
        raise ConfigError(f"{where}.path: missing or not a string", path=source, hint="path: FOLDER (or synthetic)")
    name = item.get("name") or Path(item["path"]).name
    return SceneSpec(
        name=str(name),
        path=item["path"],
        format=item.get("format"),
        protocol=item.get("protocol"),
        views=item.get("views"),
    )


def parse_bench(data: Any, source: Path | None = None) -> BenchSpec:
    """Builds a :class:`BenchSpec` from a parsed YAML mapping (strict: unknown keys rejected).

    Raises:
        ConfigError: unknown key, missing section, duplicate names or wrongly typed entries,
            naming the key and ``source``.
    """
    data = _mapping(data, "matrix", source)
    _unknown(data, TOP_KEYS, "the matrix", source)
    scenes = tuple(_scene(item, i, source) for i, item in enumerate(_list(data.get("scenes"), "scenes", source)))
    names = [s.name for s in scenes]
    if len(set(names)) != len(names):
        raise ConfigError(f"scenes: duplicate scene names {names}", path=source, hint="give each scene a distinct name")
    primitives = tuple(_list(data.get("primitives", ["gaussian"]), "primitives", source))
    for p in primitives:
        if p not in PRIMITIVES:
            raise ConfigError(f"primitives: unknown primitive {p!r}", path=source, hint=f"use {', '.join(PRIMITIVES)}")
    seeds = tuple(_list(data.get("seeds", [0]), "seeds", source))
    if any(isinstance(s, bool) or not isinstance(s, int) for s in seeds):
        raise ConfigError(f"seeds: expected integers, got {list(seeds)}", path=source)
    settings = _mapping(data.get("settings"), "settings", source) or {"default": {}}
    settings = {str(k): _mapping(v, f"settings.{k}", source) for k, v in settings.items()}
    name = data.get("name") or (source.stem if source else "bench")
    return BenchSpec(
        name=str(name),
        preset=str(data.get("preset", "demo")),
        train=_mapping(data.get("train"), "train", source),
        scenes=scenes,
        primitives=primitives,
        settings=settings,
        seeds=seeds,
        source=source,
        datasets=str(data.get("datasets") or DATASETS_GUIDE),
    )


def find_matrix(name: str | Path) -> Path:
    """The matrix file ``name`` names: a path, or the name of a shipped matrix (``configs/bench``).

    Raises:
        ConfigError: neither a file nor a shipped name (the message lists the shipped ones).
    """
    path = Path(name).expanduser()
    if path.is_file() or path.suffix in (".yaml", ".yml") or len(path.parts) > 1:
        return path
    shipped = MATRIX_DIR / f"{name}.yaml"
    if shipped.is_file():
        return shipped
    names = ", ".join(sorted(p.stem for p in MATRIX_DIR.glob("*.yaml")))
    raise ConfigError(f"unknown benchmark matrix {str(name)!r}", hint=f"pass a YAML file or one of {names}")


def load_bench(path: str | Path) -> BenchSpec:
    """Reads a matrix file (YAML, or a shipped matrix's name) strictly; every error is a one-line
    :class:`ConfigError`."""
    path = find_matrix(path)
    try:
        text = path.read_text()
    except OSError as err:
        raise ConfigError(
            f"cannot read the benchmark matrix: {err.strerror}",
            path=path,
            hint="pass a YAML file such as configs/bench/smoke.yaml",
        ) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise ConfigError(f"not valid YAML: {' '.join(str(err).split())}", path=path) from None
    return parse_bench(data, path)


def scene_changes(scene: SceneSpec) -> dict[str, Any]:
    """The dotted config keys a scene sets (``data.*``)."""
    optional = {"data.format": scene.format, "data.protocol": scene.protocol, "data.views": scene.views}
    return {"data.path": scene.path, **{k: v for k, v in optional.items() if v is not None}}


def cell_config(spec: BenchSpec, scene: SceneSpec, primitive: str, setting: str, seed: int) -> TrainConfig:
    """The resolved training config of one cell: preset, then ``train``, then the setting, then the
    cell's scene, primitive and seed; validated like ``recon train`` validates its options."""
    from recon.train.cli import check_options

    changes = dict(spec.settings[setting])
    preset = changes.pop("preset", spec.preset)
    preset_key = f"settings.{setting}.preset" if "preset" in spec.settings[setting] else "preset"
    steps = [
        (preset_key, lambda c: load_preset(str(preset))),
        ("train", lambda c: override(c, **spec.train)),
        (f"settings.{setting}", lambda c: override(c, **changes)),
        (f"scenes ({scene.name})", lambda c: override(c, **scene_changes(scene), primitive=primitive, seed=seed)),
    ]
    config = None
    for where, step in steps:
        try:
            config = step(config)
        except ConfigError as err:
            raise ConfigError(f"{where}: {err}", path=spec.source) from None
    try:
        check_options(config)
    except ConfigError as err:
        raise ConfigError(f"cell {scene.name}/{primitive}/{setting}: {err}", path=spec.source) from None
    return config


def expand(spec: BenchSpec) -> list[Cell]:
    """Every cell of the matrix, scene-major, then primitive, setting and seed."""
    cells = []
    for scene in spec.scenes:
        for primitive in spec.primitives:
            for setting in spec.settings:
                for seed in spec.seeds:
                    config = cell_config(spec, scene, primitive, setting, seed)
                    prefix = _slug(f"{scene.name}-{primitive}-{setting}-s{seed}")
                    cells.append(Cell(f"{prefix}-{config_hash(config)}", scene, primitive, setting, seed, config))
    return cells
