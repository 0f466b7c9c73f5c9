"""Training configuration: frozen dataclasses, named presets, strict load and save.

A :class:`TrainConfig` is composed of small frozen sections (data, init, optimisation, losses,
sparse-view regularisers, strategy, checkpointing) and one section per primitive family, owned by
the family's module and saved under its name (``gaussian``, ``triangle``, ``convex``, ``ges``:
:mod:`recon.config_families`; dotted paths such as ``ges.shape_lr``; the schema-1 paths such as
``optim.shape_lr`` are still read). Field docstrings are the CLI help (tyro reads
them). Named presets live in ``configs/train/<name>.yaml``: each holds only the fields that differ
from the defaults, nested like the dataclasses. Configs are saved as plain JSON/YAML with a
``schema_version``; loading is strict: an unknown key or a wrong type is a
:class:`~recon.errors.ConfigError` naming the key.
"""

from __future__ import annotations

import dataclasses
import json
import os
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from recon.config_families import FamilySections, default_sections, move_schema1_keys
from recon.errors import ConfigError
from recon.resources import shipped_dir

SCHEMA_VERSION = 2  # 2: per-family sections (schema 1 flattened them into init / optim / loss)
PRESET_DIR = shipped_dir("configs") / "train"


def __getattr__(name: str) -> Any:
    """``PRIMITIVES`` (the registered family names) and ``Primitive`` (their ``Literal``, the CLI's
    choices), read from the family table when asked for, so that no family is listed here."""
    if name in ("PRIMITIVES", "Primitive"):
        from recon.primitives.family import FAMILIES

        names = tuple(FAMILIES)
        return names if name == "PRIMITIVES" else Literal[names]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@dataclass(frozen=True)
class DataConfig:
    """Which scene to read and which views train."""

    path: str = ""
    """Scene folder or file (COLMAP, transforms.json, Blender, LLFF, DTU, photos); "synthetic" = the demo scene."""
    format: str = "auto"
    """Scene format, or "auto" to detect it."""
    protocol: str = "auto"
    """Sparse-view protocol: llff, dtu, blender, generic or auto (from the format)."""
    views: int | None = None
    """Number of training views (protocol default when unset)."""
    test_every: int = 8
    """Every K-th view is a test view (llff, generic protocols)."""
    downscale: float = 1.0
    """Image downscale factor (reads images_<K> folders when present)."""
    synthetic_width: int = 96
    """Image width of the synthetic demo scene."""
    synthetic_height: int = 72
    """Image height of the synthetic demo scene."""
    synthetic_views: int = 24
    """Number of views of the synthetic demo scene."""
    skip_missing: bool = False
    """Drop frames whose image file is missing (transforms.json scenes) instead of failing."""


@dataclass(frozen=True)
class InitConfig:
    """How primitives are initialised."""

    method: str = "auto"
    """Point cloud prior: auto, scene (the scene's own points), sfm, mvs, hull, random."""
    max_points: int = 20000
    """Random subset of the prior points kept for initialisation (0 = all)."""
    random_points: int = 5000
    """Number of random points in the scene bounds when no prior point cloud exists."""


@dataclass(frozen=True)
class OptimConfig:
    """Options shared by every family: SH learning rates and degree (the others are the family's, e.g. ``gaussian.means_lr``)."""

    sh0_lr: float = 2.5e-3
    """SH DC LR."""
    shN_lr: float = 2.5e-3 / 20
    """Higher-order SH LR."""
    sh_degree: int = 3
    """Maximum SH degree."""
    sh_increase_every: int = 1000
    """Raise the active SH degree by one every N steps."""


@dataclass(frozen=True)
class LossConfig:
    """Photometric loss (per-primitive regularisers are the family's, e.g. ``triangle.opacity_reg``)."""

    ssim_lambda: float = 0.2
    """Weight of D-SSIM against L1."""
    background: Literal["auto", "white", "black", "random"] = "auto"
    """Background: auto (random on masked protocols such as DTU, where targets are composited with
    the object masks; else the scene's own colour, else black), white, black, random."""


@dataclass(frozen=True)
class SparseConfig:
    """Sparse-view regularisers (FSGS, SparseNeRF, pseudo views, floater pruning)."""

    enabled: bool | None = None
    """Turn all of them on/off; unset = on when training on 9 views or fewer."""
    depth_source: Literal["auto", "scene", "priors", "none"] = "auto"
    """Depth prior: scene (the scene's own depth maps), priors (geometry priors), auto = priors then scene."""
    pearson_weight: float = 0.05
    """Weight of 1 - Pearson(rendered depth, prior depth) on training views (FSGS)."""
    depth_weight: float = 0.0
    """Weight of the relative L1 ``|d - D| / D`` to a metric depth prior (stereo depth is metric)."""
    ranking_weight: float = 0.1
    """Weight of the local depth ranking loss (SparseNeRF)."""
    ranking_pairs: int = 512
    """Pixel pairs sampled per step for the ranking loss."""
    ranking_box: int = 16
    """Half size of the box the second pixel of a pair is drawn in."""
    pseudo_weight: float = 0.05
    """Weight of the depth smoothness loss on pseudo views near training cameras."""
    pseudo_every: int = 4
    """Render a pseudo view every N steps."""
    pseudo_start: int = 200
    """First step with pseudo views."""
    pseudo_shift: float = 0.1
    """Pseudo camera displacement as a fraction of the scene scale."""
    warp_weight: float = 0.0
    """Weight of the multi-view photometric consistency of the rendered depth: another training
    view's image warped through it must reproduce the rendered view's image."""
    warp_start: int = 0
    """First step with the warp consistency loss."""
    floater_every: int = 0
    """Prune floaters (primitives in front of the depth prior) every N steps; 0 = never."""
    floater_margin: float = 0.2
    """A primitive is a floater when its depth < (1 - margin) x prior depth in a training view."""


@dataclass(frozen=True)
class StrategyConfig:
    """Densification and pruning (the strategy is chosen per primitive)."""

    name: Literal["auto", "default", "mcmc", "triangle", "convex", "none"] = "auto"
    """auto = default for Gaussians, triangle for triangles, convex for convexes."""
    refine_start: int = 500
    """First refinement step."""
    refine_stop: int = 15000
    """No refinement after this step."""
    refine_every: int = 100
    """Refine every N steps."""
    reset_every: int = 3000
    """Opacity reset period (default strategy)."""
    grow_grad2d: float = 2e-4
    """Gradient threshold for growth (default strategy)."""
    absgrad: bool = False
    """Use the absolute 2D gradient (AbsGS) for growth."""
    grow_scale3d: float = 0.01
    """Clone below / split above this scale (fraction of the scene scale)."""
    prune_opacity: float | None = None
    """Prune (triangles: count as dead) below this opacity; unset = the strategy's own (default and
    mcmc 0.005, triangle 0.014, convex 0.03)."""
    prune_scale3d: float = 0.1
    """Prune Gaussians larger than this fraction of the scene scale."""
    cap_max: int = 100000
    """Primitive budget (MCMC, triangles)."""
    noise_lr: float = 5e5
    """MCMC position noise scale."""
    dead_blend: float = 0.022
    """Triangles: dead when max blending weight is below this."""
    split_size: float = 24.0
    """Triangles: projected radius (px) above which a sampled triangle is subdivided."""
    growth: float = 1.3
    """Triangles: budget growth factor per refinement."""
    convex_grad: float = 2.5e-5
    """Convexes: split threshold on the mean sigma gradient."""
    convex_shrink: float = 0.63
    """Convexes: child scale relative to the parent."""


@dataclass(frozen=True)
class RepairConfig:
    """Diffusion repair of novel views (issue #11; METHODS.md section 6): pseudo views between the
    training cameras, repaired and fed back as down-weighted pseudo ground truth."""

    model: str = "off"
    """off; auto = fit the scene's own fixer at the first round when training on <= 9 views, gated
    on a held-out leave-one-out view; or a local diffusers folder (gated too)."""
    rounds: int = 4
    """Repair rounds; each replaces the previous pseudo views, farther from the training cameras."""
    first: float = 0.3
    """First round, as a fraction of the schedule."""
    last: float = 0.8
    """Last round, as a fraction of the schedule (rounds evenly spaced from first to last)."""
    stop: float = 1.0
    """No pseudo-view loss after this fraction of the schedule. 1 = pseudo views to the end: the
    real-view-only steps after an earlier stop undid part of what they taught (BENCHMARKS.md:
    4 rounds to 0.8, stop 1 and the automatic tilt measured +0.17 dB on DTU scan24 over three
    seeds, against +0.04 for 3 rounds to 0.6, stop 0.9, no tilt; gold_cape +0.83 against +0.44,
    partly test views gone flat)."""
    ramp: float = 0.1
    """The pseudo-view weight rises from 0 over this fraction after the first round and falls to 0
    over the same fraction before stop."""
    weight: float = 0.3
    """Largest weight of the pseudo-view loss (Difix3D: 0.3; a real view's photometric loss has 1)."""
    probability: float = 0.3
    """Chance that a step adds a pseudo view (Difix3D: 0.3)."""
    ssim_lambda: float = 0.0
    """Weight of D-SSIM in the pseudo-view loss (0 = weighted L1 alone; real views use loss.ssim_lambda)."""
    farthest: float = 0.5
    """Interpolation fraction of the last round between neighbouring training cameras (0.5 = the
    midpoint); round k of K uses farthest x (k + 1) / K from either end."""
    orbit: int = -1
    """-1 = auto: on object captures (masked, or cameras looking at a common centre) the pseudo
    cameras move on the orbit through the training cameras (around the centre, looking at it)
    instead of the straight line between them; N > 0 = N extra cameras on the whole orbit; 0 = none."""
    orbit_beyond: float = 0.0
    """Object captures: two more pseudo cameras on the orbit past the ends of the capture's arc, the
    last round this many neighbour gaps beyond the outermost training cameras (0 = none; 1 = as far
    as a leave-one-out view is from the cameras its sub-run saw)."""
    orbit_tilt: float = -1.0
    """Object captures: each training camera also moved up and down on the sphere around the object,
    by this many degrees of elevation in the last round (0 = none; -1 = the mean angle between
    neighbouring training cameras seen from the object, the capture's own spacing, at most 45: 36
    on DTU's 3-view ring, whose test views span about -20 to +37 degrees; 45 for gold_cape's three
    views of a 360-degree capture, 108 degrees apart)."""
    distance_gain: float = 2.0
    """Gain of the distance weight min(1, gain d / (1.2 D)) (GaussianObject 2, LM-Gaussian 16)."""
    color_match: bool = True
    """Match each repaired view's per-channel mean/std to the warped nearest photo within the mask."""
    alpha_threshold: float = 0.5
    """Pseudo-view pixels whose rendered opacity is below this get no loss (0 = every pixel: holes
    and empty background are taught by the repaired view too; measured -0.2 dB against 0.5 on DTU
    scan24, two seeds)."""
    hull: bool = True
    """Masked object captures: pseudo-view pixels inside the training masks' visual hull also get loss
    where the render is empty (the holes in the object the repaired view fills), besides those the
    render covers (alpha_threshold). With a fixer fitted on random backgrounds, which fills holes:
    +0.65 / 0.00 / +0.36 dB against hull off on DTU scan24 (three seeds; distillation then adds
    +0.64 +- 0.20 dB over no repair); with the black-only fixer before it -0.17 / -0.07."""
    held_out: int = 6
    """auto: leave-one-out sub-runs generating the fixer's training pairs."""
    pair_fraction: float = 0.1
    """auto: length of a leave-one-out sub-run as a fraction of the schedule."""
    fit_steps: int = 1000
    """auto: optimisation steps of the fixer."""
    fit_channels: int = 32
    """auto: width of the fixer's first UNet level (then x2, x2)."""
    noise_levels: int = 0
    """auto: attribute-noise renders at this many error levels, evenly spaced from the trained
    model's own error at the training views to the leave-one-out renders' (against the pairs'
    masked targets); 0 = the first calibration (recon.repair.pairs.PairConfig.noise_levels)."""
    blend: float = 1.0
    """auto: repair = render + blend x (fixer - render); calibrated by least squares when negative:
    -1 on the gate view's attribute-noise pairs (milder than its leave-one-out renders, as novel
    views are), -2 on its leave-one-out renders before the sub-run's last step (left to the gate)."""
    fit_max_seconds: float = 0.0
    """auto: stop fitting the fixer after this many CPU seconds (0 = no cap); it keeps the weights so far."""
    fit_time_fraction: float = 1.0
    """auto: also stop fitting after this fraction of the base run's estimated CPU time (0 = no cap;
    1 = the issue's budget, at most the base training's time; 0.5 cut the fit at 462 of 1000 steps
    on DTU scan24 at 1500 steps / downscale 2, and the gate then turned repair off)."""
    pipe_steps: int = 2
    """PATH pipelines (img2img): denoising steps (sd-turbo: 2 with strength 0.5 = one step)."""
    pipe_strength: float = 0.5
    """PATH pipelines (img2img): how far the render is noised before denoising (0..1)."""
    pipe_guidance: float = 0.0
    """PATH pipelines (img2img): classifier-free guidance scale (0 = off, as sd-turbo wants)."""
    pipe_prompt: str = ""
    """PATH pipelines: text prompt."""


@dataclass(frozen=True)
class WildConfig:
    """Photos in the wild (issue #15): per-image appearance and transient masks (recon.wild)."""

    mode: Literal["auto", "on", "off"] = "auto"
    """on: per-image appearance and the robust loss; auto = on for photo folders (posed by our SfM),
    off for benchmark formats."""
    appearance: Literal["affine", "bilateral", "none"] = "affine"
    """Per-image colour model when on: affine (3x3 + bias per training image, L2 toward identity), bilateral
    (a low-resolution grid of affine transforms per training image, by position and luminance) or none."""
    appearance_fit: Literal["closed", "adam"] = "closed"
    """How affine transforms are learnt: closed = refitted by least squares to the render at every step of
    their image (no learning rate), adam = gradient steps at appearance_lr. Bilateral grids always use Adam."""
    appearance_lr: float = 5e-3
    """Adam learning rate of the colour transforms (adam fit, bilateral grids)."""
    appearance_reg: float = 1e-3
    """Weight of the squared distance of a view's transform from the identity (per cell for bilateral; the
    ridge of the closed fit, per unit of pixel weight)."""
    bilateral_cells: int = 16
    """Bilateral grid: cells across the image (in x and in y)."""
    bilateral_bins: int = 8
    """Bilateral grid: luminance bins."""
    bilateral_tv: float = 10.0
    """Bilateral grid: weight of the total variation between neighbouring cells."""
    reference: str = "mean"
    """Appearance of renders and evaluation: mean (of the training images) or a training image name."""
    robust: bool = True
    """Down-weight pixels whose residual is an outlier for their image (whole cells, see recon.wild.robust)."""
    robust_start: float = 0.3
    """No robust masking before this fraction of the iterations."""
    robust_quantile: float = 0.5
    """Quantile of an image's residual that sets its error level."""
    robust_scale: float = 3.0
    """An outlier's residual exceeds this multiple of the error level ..."""
    robust_floor: float = 0.1
    """... and this absolute colour error."""
    robust_cell: int = 4
    """Side in pixels of the cells the mask is decided on (whole objects drop, not speckle)."""
    robust_fraction: float = 0.5
    """Share of outlier pixels that drops a cell."""
    streaks: bool = False
    """Weather: also mask thin outliers sharing one direction (rain, snow streaks), after the warm-up too."""
    weather: Literal["off", "median"] = "off"
    """Weather filter of the training photos before training: median = replace pixels far from the median of
    the other training views warped in through the poses and a depth (snow, rain; recon.wild.median)."""
    median_scale: float = 3.0
    """Median filter: an outlier differs from the median by this many robust deviations of its view ..."""
    median_floor: float = 0.08
    """... and by more than this mean absolute colour difference."""
    median_min_views: int = 3
    """Median filter: warped views that must agree with the median to replace a pixel (fewer: left out of the loss)."""
    median_brighter: bool = True
    """Median filter: only pixels brighter than the median are outliers (rain and snow add light)."""
    masks: str = "auto"
    """User masks (0 = ignore): auto = the masks/ folder of a photo folder when wild is on, none, or a folder."""


@dataclass(frozen=True)
class TrainConfig:
    """Everything a training run needs; saved to RUN/config.json."""

    data: DataConfig = field(default_factory=DataConfig)
    primitive: str = "gaussian"
    """Primitive family (a name in recon.primitives.FAMILIES)."""
    init: InitConfig = field(default_factory=InitConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    sparse: SparseConfig = field(default_factory=SparseConfig)
    strategy: StrategyConfig = field(default_factory=StrategyConfig)
    repair: RepairConfig = field(default_factory=RepairConfig)
    wild: WildConfig = field(default_factory=WildConfig)
    iterations: int = 30000
    """Training steps (one view per step)."""
    seed: int = 0
    """Seed of every random choice (runs are reproducible on CPU)."""
    backend: str = "auto"
    """Rasterizer backend: auto, cpu, cuda, reference, gsplat."""
    device: str = "cpu"
    """Torch device: cpu or cuda."""
    checkpoint_every: int = 1000
    """Write a checkpoint every N steps (and at the end and on Ctrl-C)."""
    log_every: int = 10
    """Append to log.jsonl every N steps."""
    preset: str = ""
    """Name of the preset this config was built from (informational)."""
    families: FamilySections = field(default_factory=default_sections)
    """Per-family sections by family name (saved at the top level under each name)."""

    def section(self, name: str | None = None) -> Any:
        """The config section of family ``name`` (default: ``primitive``), e.g. a ``GesConfig``."""
        return self.families.section(name or self.primitive)

    def to_dict(self) -> dict[str, Any]:
        """Plain nested dict with ``schema_version``; each family's section under its name."""
        data: dict[str, Any] = {"schema_version": SCHEMA_VERSION}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name != "families":
                data[f.name] = dataclasses.asdict(value) if dataclasses.is_dataclass(value) else value
        return data | {name: dataclasses.asdict(section) for name, section in self.families.items()}


# --------------------------------------------------------------------------------- strict IO
def _check_value(value: Any, tp: Any, key: str) -> Any:
    origin = typing.get_origin(tp)
    if origin is Literal:
        if value not in typing.get_args(tp):
            raise ConfigError(f"{key}: {value!r} is not one of {', '.join(map(str, typing.get_args(tp)))}")
        return value
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _check_value(value, arg, key)
            except ConfigError as err:
                errors.append(str(err))
        raise ConfigError(errors[0] if errors else f"{key}: bad value {value!r}")
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key}: expected true/false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key}: expected an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{key}: expected a number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{key}: expected a string, got {value!r}")
        return value
    raise ConfigError(f"{key}: unsupported type {tp}")


def _build(cls: type, data: dict[str, Any], prefix: str, base: Any = None, more: tuple[str, ...] = ()) -> Any:
    """``base`` (default ``cls()``) with ``data`` checked and replaced; ``more`` = other valid keys (for the hint)."""
    if not isinstance(data, dict):
        raise ConfigError(f"{prefix or 'config'}: expected a mapping, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.name != "families"}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        where = f" in {prefix}" if prefix else ""
        raise ConfigError(
            f"unknown config key{'s' if len(unknown) > 1 else ''} {', '.join(unknown)}{where}",
            hint=f"valid keys: {', '.join([*fields, *more])}",
        )
    base = base if base is not None else cls()
    values = {}
    for name, value in data.items():
        key = f"{prefix}.{name}" if prefix else name
        tp = hints[name]
        if dataclasses.is_dataclass(tp):
            values[name] = _build(tp, value, key, getattr(base, name))
        else:
            values[name] = _check_value(value, tp, key)
    return dataclasses.replace(base, **values)


def config_from_dict(data: dict[str, Any], base: TrainConfig | None = None) -> TrainConfig:
    """Builds a config from a nested dict, strictly (unknown keys and wrong types rejected).

    Args:
        data: nested mapping; ``schema_version`` is checked and removed when present.
        base: config the values override (defaults when None).
    """
    from recon.primitives.family import FAMILIES

    data = dict(data)
    version = data.pop("schema_version", SCHEMA_VERSION)
    if version not in (1, SCHEMA_VERSION):
        raise ConfigError(f"config schema_version {version} is not supported (this recon reads 1 and {SCHEMA_VERSION})")
    data = move_schema1_keys(data, lambda value, new, old: _check_value(value, _field_type(new), old), version)
    sections = {name: data.pop(name) for name in list(data) if name in FAMILIES}
    config = _build(TrainConfig, data, "", base, more=tuple(FAMILIES))
    if config.primitive not in FAMILIES:
        raise ConfigError(f"primitive: {config.primitive!r} is not one of {', '.join(FAMILIES)}")
    built = {name: _build(FAMILIES[name].config, value, name, config.section(name)) for name, value in sections.items()}
    return dataclasses.replace(config, families=config.families.replace(**built)) if built else config


def _field_type(key: str) -> Any:
    """The type of the family-section field ``family.field``."""
    from recon.primitives.family import FAMILIES

    name, field_name = key.split(".")
    return typing.get_type_hints(FAMILIES[name].config)[field_name]


def save_config(config: TrainConfig, path: str | Path) -> None:
    """Writes ``config`` as JSON (``.json``) or YAML (``.yaml``/``.yml``)."""
    path = Path(path)
    data = config.to_dict()
    text = yaml.safe_dump(data, sort_keys=False) if path.suffix in (".yaml", ".yml") else json.dumps(data, indent=2)
    path.write_text(text)


def load_config(path: str | Path) -> TrainConfig:
    """Reads a config written by :func:`save_config`, or a preset file (strict).

    The file may hold any subset of the fields, nested like the dataclasses; the others keep their
    defaults. YAML for ``.yaml``/``.yml``, JSON otherwise.

    Raises:
        ConfigError: unreadable file, bad syntax, unknown key or wrong type (naming the file).
    """
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as err:
        raise ConfigError(f"cannot read config: {err.strerror}", path=path) from None
    try:
        data = yaml.safe_load(text) if path.suffix in (".yaml", ".yml") else json.loads(text)
    except (yaml.YAMLError, json.JSONDecodeError) as err:
        msg = " ".join(str(err).split())  # YAML errors span several lines
        raise ConfigError(f"not valid {'YAML' if path.suffix != '.json' else 'JSON'}: {msg}", path=path) from None
    if data is not None and not isinstance(data, dict):
        raise ConfigError(f"expected a mapping of config keys, got {type(data).__name__}", path=path)
    try:
        return config_from_dict(data or {})
    except ConfigError as err:
        raise ConfigError(str(err), path=path) from None


def preset_names() -> list[str]:
    """Names of the presets in ``configs/train``."""
    return sorted(p.stem for p in PRESET_DIR.glob("*.yaml"))


def load_preset(name: str) -> TrainConfig:
    """The defaults overridden by a preset: a name in ``configs/train`` or a path to a YAML file.

    ``name`` is read as a path when it ends in ``.yaml``/``.yml``/``.json`` or holds a ``/``; the
    file is loaded as strictly as the named presets (:func:`load_config`).

    Raises:
        ConfigError: unknown preset (the message lists the known ones), or a missing or invalid file.
    """
    if Path(name).suffix in (".yaml", ".yml", ".json") or "/" in name or os.sep in name:
        path = Path(name).expanduser()
    else:
        path = PRESET_DIR / f"{name}.yaml"
        if not path.is_file():
            raise ConfigError(
                f"unknown preset {name!r}",
                hint=f"--preset must be one of {', '.join(preset_names())} or a path to a YAML file",
            )
    return dataclasses.replace(load_config(path), preset=name)


def scale_schedule(config: TrainConfig, iterations: int) -> TrainConfig:
    """``config`` run over ``iterations`` steps with every step-count option scaled alike (refinement
    window and period, opacity reset, SH growth, sparse-view starts and periods), so a shorter run
    keeps the shape of the schedule; learning-rate decay already follows ``iterations``."""
    f = iterations / max(config.iterations, 1)
    s, p, o = config.strategy, config.sparse, config.optim
    scale = lambda n: max(1, round(n * f))
    return override(config, **{
        "iterations": iterations,
        "strategy.refine_start": scale(s.refine_start), "strategy.refine_stop": scale(s.refine_stop),
        "strategy.refine_every": scale(s.refine_every), "strategy.reset_every": scale(s.reset_every),
        "sparse.warp_start": round(p.warp_start * f), "sparse.pseudo_start": round(p.pseudo_start * f),
        "sparse.floater_every": round(p.floater_every * f), "optim.sh_increase_every": scale(o.sh_increase_every),
    })  # fmt: skip


def override(config: TrainConfig, **changes: Any) -> TrainConfig:
    """Returns ``config`` with dotted keys replaced, e.g. ``override(c, **{"data.views": 3})``."""
    nested: dict[str, Any] = {}
    for key, value in changes.items():
        node = nested
        parts = key.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    return config_from_dict(nested, base=config)
