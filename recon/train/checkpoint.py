"""Checkpoints: tensors in safetensors + training state in JSON, written atomically, never pickled.

``RUN/checkpoints/step_NNNNNN.safetensors`` holds ``param/<name>``, ``adam/<name>/<moment>``,
``strategy/<key>`` and ``rng/torch``; ``step_NNNNNN.json`` holds the step, the per-parameter Adam
step counts and learning rates, the strategy's scalar state and free-form ``extra`` fields;
``latest.json`` names the newest complete pair. Each file is written to a temporary name and
renamed, and ``latest.json`` is replaced last, so a crash at any moment leaves the previous
checkpoint intact.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import Tensor

from recon.errors import ConfigError

CHECKPOINT_SCHEMA = 1


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


def save_checkpoint(
    ckpt_dir: str | Path,
    step: int,
    params: dict[str, Tensor],
    optimizers: dict[str, torch.optim.Optimizer],
    strategy_state: dict[str, Any],
    extra: dict[str, Any] | None = None,
    keep: int = 2,
) -> Path:
    """Writes one checkpoint atomically and keeps the newest ``keep``; returns the JSON path."""
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


def latest_checkpoint(ckpt_dir: str | Path) -> Path | None:
    """JSON path of the newest complete checkpoint, or None."""
    ckpt_dir = Path(ckpt_dir)
    latest = ckpt_dir / "latest.json"
    if not latest.is_file():
        return None
    return ckpt_dir / json.loads(latest.read_text())["checkpoint"]


def load_checkpoint(json_path: str | Path) -> Checkpoint:
    """Reads a checkpoint written by :func:`save_checkpoint` (safetensors + JSON, no pickle)."""
    json_path = Path(json_path)
    try:
        state = json.loads(json_path.read_text())
        tensors = load_file(str(json_path.parent / state["tensors"]))
    except (OSError, ValueError, KeyError) as err:
        raise ConfigError(f"cannot read checkpoint: {err}", path=json_path) from None
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
