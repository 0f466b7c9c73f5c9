"""A scene's repair pairs: generation from a run, PNG files a person can look at, random crops.

Layout of ``RUN/repair/pairs/``::

    manifest.json              schema_version, train/test views of the split, pair records
    NNNN_<kind>_vVVV_render.png   degraded render (RGB)
    NNNN_<kind>_vVVV_alpha.png    its alpha (grey)
    NNNN_<kind>_vVVV_depth.png    its depth, 16 bit, scaled by the record's depth_max
    NNNN_<kind>_vVVV_warped.png   nearest training photo warped into the view; alpha = validity
    NNNN_<kind>_vVVV_target.png   the photo (on the record's background outside the mask); alpha = the
                                  mask, when the photo counts only there (masked protocols)
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from recon.config import TrainConfig
from recon.data.scene import SceneData
from recon.data.splits import Split
from recon.errors import DataError
from recon.priors.pointcloud import PointCloud
from recon.render import solid_background
from recon.repair.pairs import (
    PairConfig,
    RepairPair,
    calibrate_strength,
    calibration_views,
    leave_one_out_pairs,
    noise_error,
    noise_pairs,
    training_scene,
)

SCHEMA_VERSION = 1
CONDITION_CHANNELS = 8
"""Fixer input per pixel: render RGB, alpha, warped neighbour RGB, warp validity."""


@dataclass
class PairSet:
    """The pairs of one scene and where they came from.

    Attributes:
        pairs: the pairs.
        train_views: scene indices of the split's training views (the only views read).
        test_views: scene indices of its test views (never read; kept for audits).
        meta: generation settings and measurements (noise strength, leave-one-out error).
    """

    pairs: list[RepairPair]
    train_views: list[int]
    test_views: list[int]
    meta: dict[str, Any] = field(default_factory=dict)


def make_pairs(config: TrainConfig, scene: SceneData, split: Split, params: dict[str, Tensor] | None = None,
               sh_degree: int = 0, step: int = 0, background: Tensor | None = None,
               pair_config: PairConfig | None = None, cloud: PointCloud | None = None,
               progress: Callable[[str], None] | None = None, live: Callable[[str], None] | None = None) -> PairSet:
    """Leave-one-out pairs, plus attribute-noise pairs when the trained ``params`` are given.

    Args:
        config: the main run's config.
        scene: the full scene (only ``split.train`` is read).
        split: the main run's split.
        params: raw parameters of the trained model (None = no noise pairs).
        sh_degree: the SH degree active in ``params``.
        step: the training step of ``params``.
        background: [3] background the model was trained on (None = black).
        pair_config: what to generate (defaults when None).
        cloud: initial points of the leave-one-out sub-runs.
        progress: called with one line of text per finished stage.
        live: called with a short status every few sub-run steps (a live viewer's).
    """
    pc = pair_config or PairConfig()
    pairs = leave_one_out_pairs(config, scene, split, pc, cloud=cloud, progress=progress, live=live)
    loo_l1 = float(np.mean([float((p.render - p.target).abs().mean()) for p in pairs]))
    meta: dict[str, Any] = {"pair_config": asdict(pc), "loo_l1": loo_l1}
    if params is not None:
        strengths: tuple[float, ...] = (pc.noise_strength,) if pc.noise_strength is not None else ()
        if not strengths:
            from recon.train.setup import masked_protocol

            sub, masked = training_scene(scene, split, pc.downscale), masked_protocol(split.protocol, scene)
            bg = solid_background(background)
            own_l1 = noise_error(config.primitive, params, sh_degree, sub, calibration_views(sub), 0.0, bg, masked=masked)
            targets = [own_l1 + level * (loo_l1 - own_l1) for level in pc.noise_levels] or [loo_l1]
            masked = masked and bool(pc.noise_levels)  # the default: against the photos as they are
            strengths = tuple(calibrate_strength(config.primitive, params, sh_degree, sub, t, background, pc.seed,
                                                 masked=masked) for t in targets)  # fmt: skip
            meta["own_l1"] = own_l1
        pairs += noise_pairs(config.primitive, params, sh_degree, scene, split, pc, strengths, step, background)
        meta["noise_strength"], meta["noise_strengths"] = strengths[-1], list(strengths)
        if progress is not None:
            progress(f"attribute noise: strength {', '.join(f'{x:.3f}' for x in strengths)} for L1 levels "
                     f"{', '.join(f'{x:g}' for x in pc.noise_levels or (1,))} of the way to the leave-one-out L1 "
                     f"{loo_l1:.4f}")
    return PairSet(pairs, list(split.train), list(split.test), meta)


# ----------------------------------------------------------------------------------- files
def _u8(x: Tensor) -> np.ndarray:
    return (x.detach().clamp(0, 1) * 255).round().to(torch.uint8).cpu().numpy()


def _read(path: Path, mode: str) -> Tensor:
    """[H, W(, C)] in [0, 1]; ``mode`` "RGB(A)" = RGBA when the file has an alpha channel, else RGB."""
    try:
        with Image.open(path) as im:
            if mode == "RGB(A)":
                mode = "RGBA" if im.mode in ("RGBA", "LA") else "RGB"
            arr = np.asarray(im.convert(mode) if mode != "I;16" else im)
    except (OSError, ValueError) as err:
        raise DataError(f"cannot read a repair pair image ({err})", path=path,
                        hint="regenerate the pairs (recon repair pairs RUN)") from None
    return torch.from_numpy(arr.astype(np.float32) / (65535.0 if mode == "I;16" else 255.0))


def save_pairs(pair_set: PairSet, folder: str | Path) -> Path:
    """Writes the pairs as PNGs plus ``manifest.json`` (see the module docstring); returns the manifest."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    records = []
    for n, p in enumerate(pair_set.pairs):
        stem = f"{n:04d}_{p.kind}_v{p.view:03d}"
        depth_max = max(float(p.depth.max()), 1e-6)
        Image.fromarray(_u8(p.render)).save(folder / f"{stem}_render.png")
        Image.fromarray(_u8(p.alpha)).save(folder / f"{stem}_alpha.png")
        depth16 = (p.depth.clamp_min(0) / depth_max * 65535).round().to(torch.int32).numpy().astype(np.uint16)
        Image.fromarray(depth16).save(folder / f"{stem}_depth.png")
        Image.fromarray(_u8(torch.cat([p.warped, p.valid[..., None]], -1))).save(folder / f"{stem}_warped.png")
        target = p.target if p.mask is None else torch.cat([p.target, p.mask[..., None]], -1)
        Image.fromarray(_u8(target)).save(folder / f"{stem}_target.png")
        records.append({"stem": stem, "kind": p.kind, "view": p.view, "source": p.source, "step": p.step,
                        "depth_max": depth_max,
                        "background": None if p.background is None else [float(x) for x in p.background]})
    manifest = {"schema_version": SCHEMA_VERSION, "train_views": pair_set.train_views,
                "test_views": pair_set.test_views, "meta": pair_set.meta, "pairs": records}
    path = folder / "manifest.json"
    path.write_text(json.dumps(manifest, indent=1))
    return path


def load_pairs(folder: str | Path) -> PairSet:
    """Reads what :func:`save_pairs` wrote.

    Raises:
        DataError: no manifest, a different schema, or an unreadable image.
    """
    folder = Path(folder)
    path = folder / "manifest.json"
    if not path.is_file():
        raise DataError("no repair pairs here (manifest.json missing)", path=folder,
                        hint="generate them first (recon repair pairs RUN)")
    try:
        manifest = json.loads(path.read_text())
        version, records = manifest["schema_version"], manifest["pairs"]
    except (ValueError, KeyError) as err:
        raise DataError(f"not a repair pair manifest ({err})", path=path, hint="regenerate the pairs") from None
    if version != SCHEMA_VERSION:
        raise DataError(f"pair manifest schema_version {version} (this recon reads {SCHEMA_VERSION})", path=path,
                        hint="regenerate the pairs")
    pairs = []
    for r in records:
        stem = folder / r["stem"]
        warped = _read(Path(f"{stem}_warped.png"), "RGBA")
        target = _read(Path(f"{stem}_target.png"), "RGB(A)")  # alpha = the mask, when there is one
        background = r.get("background")  # absent in pairs saved before it was recorded
        pairs.append(RepairPair(
            render=_read(Path(f"{stem}_render.png"), "RGB"), alpha=_read(Path(f"{stem}_alpha.png"), "L"),
            depth=_read(Path(f"{stem}_depth.png"), "I;16") * r["depth_max"], warped=warped[..., :3],
            valid=(warped[..., 3] > 0.5).float(), target=target[..., :3],
            view=int(r["view"]), source=int(r["source"]), kind=r["kind"], step=int(r["step"]),
            mask=target[..., 3] if target.shape[-1] == 4 else None,
            background=None if background is None else torch.tensor(background, dtype=torch.float32)))  # fmt: skip
    return PairSet(pairs, list(manifest["train_views"]), list(manifest["test_views"]), manifest.get("meta", {}))


# ----------------------------------------------------------------------------------- tensors
def stack_condition(render: Tensor, alpha: Tensor, warped: Tensor, valid: Tensor) -> Tensor:
    """[8, H, W] fixer input from render [H, W, 3], alpha [H, W], warped view [H, W, 3], validity [H, W]."""
    return torch.cat([render, alpha[..., None], warped, valid[..., None]], -1).permute(2, 0, 1)


def condition(pair: RepairPair) -> Tensor:
    """[8, H, W] fixer input of a pair (:func:`stack_condition`)."""
    return stack_condition(pair.render, pair.alpha, pair.warped, pair.valid)


def on_background(pair: RepairPair, color: Tensor) -> RepairPair:
    """``pair`` with ``color`` [3] behind the model instead of ``pair.background``: in the render
    where it is transparent (``render + (1 - alpha) (color - background)``, exact for the
    rasterizer's compositing) and in the target outside its mask. Unchanged when the pair's
    background is not recorded."""
    if pair.background is None:
        return pair
    shift = color.to(pair.render) - pair.background.to(pair.render)  # [3]
    keep = torch.ones_like(pair.alpha) if pair.mask is None else pair.mask
    return replace(pair, render=(pair.render + (1 - pair.alpha[..., None]) * shift).clamp(0, 1),
                   target=(pair.target + (1 - keep[..., None]) * shift).clamp(0, 1), background=color)


def random_crops(pairs: list[RepairPair], batch: int, size: int, generator: torch.Generator,
                 random_background: bool = False) -> tuple[Tensor, Tensor]:
    """A batch of random ``size`` x ``size`` crops, each flipped left-right with probability 1/2.

    ``random_background``: each crop's pair is first put on a uniformly random colour
    (:func:`on_background`), so a fixer learns to tell holes in the model (alpha low, the photo
    shows the object: fill them) from the background (keep whatever colour it has) and repairs
    renders on any background.

    Returns:
        inputs [B, 8, size, size] (see :func:`condition`) and targets [B, 3, size, size].
    """
    xs, ys = [], []
    for _ in range(batch):
        p = pairs[int(torch.randint(len(pairs), (1,), generator=generator))]
        if random_background:
            p = on_background(p, torch.rand(3, generator=generator))
        full = torch.cat([condition(p), p.target.permute(2, 0, 1)], 0)  # [11, H, W]
        h, w = full.shape[1:]
        if h < size or w < size:
            raise DataError(f"repair pairs of {w}x{h} pixels are smaller than the {size}-pixel crops",
                            hint="lower the fixer's crop size or the pairs' downscale")
        top = int(torch.randint(h - size + 1, (1,), generator=generator))
        left = int(torch.randint(w - size + 1, (1,), generator=generator))
        crop = full[:, top : top + size, left : left + size]
        if bool(torch.rand(1, generator=generator) < 0.5):
            crop = crop.flip(-1)
        xs.append(crop[:CONDITION_CHANNELS])
        ys.append(crop[CONDITION_CHANNELS:])
    return torch.stack(xs), torch.stack(ys)
