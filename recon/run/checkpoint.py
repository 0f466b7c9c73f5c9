"""Checkpoints: tensors in safetensors + training state in JSON, written atomically, never pickled.

``RUN/checkpoints/step_NNNNNN.safetensors`` holds ``param/<name>``, ``adam/<name>/<moment>``,
``strategy/<key>`` and ``rng/torch``; ``step_NNNNNN.json`` holds the step, the per-parameter Adam
step counts and learning rates, the strategy's scalar state and free-form ``extra`` fields;
``latest.json`` names the newest complete pair. Each file is written to a temporary name and
renamed, and ``latest.json`` is replaced last, so a crash at any moment leaves the previous
checkpoint intact. Tensors with NaN or infinite values are never written, and readers
(:func:`find_checkpoint`) fall back to the newest readable checkpoint when a file is damaged.
"""

from __future__ import annotations

import json
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import Tensor

from recon.errors import ConfigError

CHECKPOINT_SCHEMA = 1
log = logging.getLogger(__name__)
_STEP_FILE = re.compile(r"step_(\d+)\.json")


@dataclass
class Checkpoint:
    """A loaded checkpoint.

    Attributes:
        step: number of finished steps.
        params: raw parameters by name.
        adam: per parameter ``{"exp_avg", "exp_avg_sq"}`` tensors (may be empty).
        adam_meta: per parameter ``{"step": float, "lr": float}``.
        strategy: strategy state (tensors and scalars).
        rng: torch CPU RNG state (uint8) or None.
        extra: free-form JSON fields.
    """

    step: int
    params: dict[str, Tensor]
    adam: dict[str, dict[str, Tensor]]
    adam_meta: dict[str, dict[str, float]]
    strategy: dict[str, Any]
    rng: Tensor | None
    extra: dict[str, Any]


def _atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def non_finite(tensors: dict[str, Tensor]) -> list[str]:
    """Names of the tensors holding NaN or infinite values (one host sync for all of them)."""
    names = [k for k, t in tensors.items() if t.is_floating_point() and t.numel() > 0]
    if not names:
        return []
    finite = torch.stack([torch.isfinite(tensors[k]).all() for k in names]).cpu()  # [len(names)]
    return [k for k, ok in zip(names, finite.tolist(), strict=True) if not ok]


def save_checkpoint(
    ckpt_dir: str | Path,
    step: int,
    params: dict[str, Tensor],
    optimizers: dict[str, torch.optim.Optimizer],
    strategy_state: dict[str, Any],
    extra: dict[str, Any] | None = None,
    keep: int = 2,
) -> Path:
    """Writes one checkpoint atomically and keeps the newest ``keep``; returns the JSON path.

    Raises:
        ValueError: a parameter, Adam moment or strategy tensor is not finite (nothing is written).
    """
    ckpt_dir = Path(ckpt_dir)
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    tensors: dict[str, Tensor] = {}
    adam_meta: dict[str, dict[str, float]] = {}
    for name, p in params.items():
        tensors[f"param/{name}"] = p.detach().cpu().contiguous()
        opt = optimizers.get(name)
        if opt is None:
            continue
        st = opt.state.get(p, {})
        meta = {"lr": float(opt.param_groups[0]["lr"])}
        if "step" in st:
            meta["step"] = float(st["step"])
        for key in ("exp_avg", "exp_avg_sq"):
            if key in st:
                tensors[f"adam/{name}/{key}"] = st[key].detach().cpu().contiguous()
        adam_meta[name] = meta
    scalars: dict[str, Any] = {}
    for key, value in strategy_state.items():
        if isinstance(value, Tensor):
            tensors[f"strategy/{key}"] = value.detach().cpu().contiguous()
        else:
            scalars[key] = value
    bad = non_finite(tensors)
    if bad:
        raise ValueError(f"refusing to save a checkpoint with non-finite tensors: {', '.join(bad)}")
    tensors["rng/torch"] = torch.get_rng_state()
    stem = f"step_{step:06d}"
    tmp = ckpt_dir / f".{stem}.safetensors.tmp"
    save_file(tensors, str(tmp))
    os.replace(tmp, ckpt_dir / f"{stem}.safetensors")
    state = {
        "schema_version": CHECKPOINT_SCHEMA,
        "step": step,
        "tensors": f"{stem}.safetensors",
        "adam": adam_meta,
        "strategy": scalars,
        "extra": extra or {},
    }
    json_path = ckpt_dir / f"{stem}.json"
    _atomic_write_text(json_path, json.dumps(state, indent=1))
    _atomic_write_text(ckpt_dir / "latest.json", json.dumps({"step": step, "checkpoint": f"{stem}.json"}))
    for old in sorted(ckpt_dir.glob("step_*.json"))[:-keep] if keep > 0 else []:
        old.unlink(missing_ok=True)
        old.with_suffix(".safetensors").unlink(missing_ok=True)
    return json_path


def checkpoint_steps(ckpt_dir: str | Path) -> list[int]:
    """Steps of the checkpoints present in ``ckpt_dir`` (by file name, newest first)."""
    ckpt_dir = Path(ckpt_dir)
    if not ckpt_dir.is_dir():
        return []
    steps = [int(m.group(1)) for p in ckpt_dir.iterdir() if (m := _STEP_FILE.fullmatch(p.name))]
    return sorted(steps, reverse=True)


def latest_checkpoint(ckpt_dir: str | Path) -> Path | None:
    """JSON path named by ``latest.json``, or None (no checkpoint yet, or an unreadable pointer)."""
    ckpt_dir = Path(ckpt_dir)
    try:
        name = json.loads((ckpt_dir / "latest.json").read_text())["checkpoint"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return ckpt_dir / name if isinstance(name, str) and _STEP_FILE.fullmatch(name) else None


def find_checkpoint(ckpt_dir: str | Path, step: int | None = None) -> Checkpoint | None:
    """The checkpoint to resume or render from.

    With ``step``, exactly that one. Otherwise the one ``latest.json`` names, falling back to the
    newest readable one when that file or the checkpoint it names is damaged (truncated, empty,
    non-finite values); a fallback is logged as a warning.

    Returns:
        The checkpoint, or None when the folder holds none.

    Raises:
        ConfigError: ``step`` is missing or unreadable, or every checkpoint present is unreadable.
    """
    ckpt_dir = Path(ckpt_dir)
    steps = checkpoint_steps(ckpt_dir)
    if step is not None:
        if step not in steps:
            have = ", ".join(map(str, sorted(steps))) or "none"
            raise ConfigError(
                f"no checkpoint at step {step}", path=ckpt_dir, hint=f"--checkpoint must be one of: {have}"
            )
        return load_checkpoint(ckpt_dir / f"step_{step:06d}.json")
    pointer = latest_checkpoint(ckpt_dir)
    if pointer is None and (ckpt_dir / "latest.json").exists():
        log.warning("%s is unreadable; looking for the newest readable checkpoint", ckpt_dir / "latest.json")
    candidates = [pointer] if pointer is not None else []
    candidates += [ckpt_dir / f"step_{s:06d}.json" for s in steps if ckpt_dir / f"step_{s:06d}.json" != pointer]
    failures = []
    for path in candidates:
        try:
            ckpt = load_checkpoint(path)
        except ConfigError as err:
            failures.append(str(err))
            continue
        if failures:
            log.warning("skipped %d damaged checkpoint(s) (%s); using step %d", len(failures), failures[0], ckpt.step)
        return ckpt
    if failures:
        raise ConfigError(
            f"no readable checkpoint ({failures[0]})", path=ckpt_dir, hint="start the run again with --overwrite"
        )
    return None


def load_checkpoint(json_path: str | Path) -> Checkpoint:
    """Reads a checkpoint written by :func:`save_checkpoint` (safetensors + JSON, no pickle)."""
    json_path = Path(json_path)
    try:
        state = json.loads(json_path.read_text())
        tensors = load_file(str(json_path.parent / state["tensors"]))
    except (OSError, ValueError, KeyError, TypeError, SafetensorError) as err:
        raise ConfigError(f"cannot read the checkpoint: {err}", path=json_path) from None
    if not isinstance(state, dict):
        raise ConfigError("cannot read the checkpoint: not a JSON object", path=json_path)
    bad = non_finite({k: v for k, v in tensors.items() if k.startswith("param/")})
    if bad:
        raise ConfigError(f"checkpoint holds non-finite values ({', '.join(bad)})", path=json_path)
    if state.get("schema_version") != CHECKPOINT_SCHEMA:
        raise ConfigError(f"checkpoint schema {state.get('schema_version')} is not supported", path=json_path)
    params, adam, strategy = {}, {}, dict(state["strategy"])
    for key, value in tensors.items():
        kind, _, rest = key.partition("/")
        if kind == "param":
            params[rest] = value
        elif kind == "adam":
            name, _, moment = rest.rpartition("/")
            adam.setdefault(name, {})[moment] = value
        elif kind == "strategy":
            strategy[rest] = value
    return Checkpoint(
        step=int(state["step"]),
        params=params,
        adam=adam,
        adam_meta=state["adam"],
        strategy=strategy,
        rng=tensors.get("rng/torch"),
        extra=state.get("extra", {}),
    )
