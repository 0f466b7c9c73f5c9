"""Repair on a run folder: the steps ``recon repair pairs|fit|apply`` will run.

Layout (beside the run's own files, see :mod:`recon.run`)::

    RUN/repair/pairs/       training pairs as PNGs + manifest.json (recon.repair.dataset)
    RUN/repair/model/       the fitted fixer, diffusers layout (recon.repair.fixer)
    RUN/repair/gate.json    fixer vs identity on the held-out leave-one-out view, and the decision
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from recon.repair.dataset import PairSet, load_pairs, make_pairs, save_pairs
from recon.repair.fixer import Fixer, FixerConfig, GateResult, evaluate_gate, fit_and_gate, split_held_out
from recon.repair.pairs import PairConfig


def repair_dir(run_dir: str | Path) -> Path:
    """``RUN/repair``."""
    return Path(run_dir) / "repair"


def pairs_for_run(run_dir: str | Path, pair_config: PairConfig | None = None,
                  progress: Callable[[str], None] | None = None) -> PairSet:
    """Generates the run's pairs from its newest checkpoint and its own training images, and
    saves them under ``RUN/repair/pairs``.

    Raises:
        ConfigError / DataError: not a run, no checkpoint, images changed since training, fewer
            than 2 training views.
    """
    from recon.run import load_run, load_run_scene

    run = load_run(run_dir)
    scene = load_run_scene(run)
    pair_set = make_pairs(run.config, scene, run.split, run.params, run.sh_degree, run.step, run.background,
                          pair_config, progress=progress)
    save_pairs(pair_set, repair_dir(run_dir) / "pairs")
    return pair_set


def _write_gate(run_dir: str | Path, gate: GateResult, model: str) -> None:
    (repair_dir(run_dir) / "gate.json").write_text(json.dumps({**asdict(gate), "model": model}, indent=1))


def fit_for_run(run_dir: str | Path, fixer_config: FixerConfig | None = None, held_out_views: int = 1,
                progress: bool = True, on_step: Callable[[int, int], None] | None = None) -> tuple[Fixer, GateResult]:
    """Fits a fixer on ``RUN/repair/pairs`` (less the gate's held-out view), gates it, saves both;
    ``on_step(done, total)`` after each fitting step."""
    pair_set = load_pairs(repair_dir(run_dir) / "pairs")
    fixer, gate = fit_and_gate(pair_set.pairs, fixer_config, held_out_views, progress, on_step)
    fixer.save_pretrained(repair_dir(run_dir) / "model")
    _write_gate(run_dir, gate, str(repair_dir(run_dir) / "model"))
    return fixer, gate


def repair_model_for_run(run_dir: str | Path, model_path: str | Path | None = None, held_out_views: int = 1,
                         loaded: Any = None, **options: Any) -> tuple[Any | None, GateResult]:
    """The repair model training should use on this run, or None, with the gate's verdict.

    With ``model_path`` (``--repair PATH``), that model is loaded and gated on the run's
    held-out leave-one-out pairs like a fitted fixer (when the run has pairs; otherwise it is used
    as given and the verdict says so). Without it, the fixer in ``RUN/repair/model`` is used with
    the verdict saved when it was fitted. ``loaded`` = the model of ``model_path`` already loaded
    (``recon train --repair PATH`` loads it at startup to fail early, and gates it later).

    Raises:
        ConfigError / DataError: a bad model path, or no fitted fixer and no ``model_path``.
    """
    from recon.errors import ConfigError
    from recon.repair.pretrained import load_repair_model

    if model_path is None:
        gate_file = repair_dir(run_dir) / "gate.json"
        if not gate_file.is_file():
            raise ConfigError("the run has no fitted repair model", path=repair_dir(run_dir),
                              hint="run `recon repair pairs RUN` and `recon repair fit RUN`, or pass --repair PATH")
        data = json.loads(gate_file.read_text())
        gate = GateResult(data["psnr_identity"], data["psnr_fixed"], data["enabled"], data["reason"], data["views"])
        return (load_repair_model(repair_dir(run_dir) / "model") if gate.enabled else None), gate
    model = loaded if loaded is not None else load_repair_model(model_path, **options)
    if not (repair_dir(run_dir) / "pairs" / "manifest.json").is_file():
        gate = GateResult(float("nan"), float("nan"), True,
                          f"repair on without a check: {model_path} is used as given (no leave-one-out pairs to gate it on)")
        return model, gate
    _, held = split_held_out(load_pairs(repair_dir(run_dir) / "pairs").pairs, held_out_views)
    gate = evaluate_gate(model, held)
    _write_gate(run_dir, gate, str(model_path))
    return (model if gate.enabled else None), gate
