"""Repair inside a training run: ``recon train --repair auto|off|PATH`` (issue #11, point 5).

:func:`repair_source` builds the trainer's :class:`~recon.repair.rounds.RepairRounds` from
``config.repair``. The repair model is made when the first round starts, from the model trained
so far: leave-one-out pairs of the training views (saved under ``RUN/repair/pairs``), then
``auto`` fits the scene's own fixer on them and gates it, and a ``PATH`` model is gated on the
same held-out view (:mod:`recon.repair.workflow`). When the gate says no, training goes on
without repair and the reason is printed. Everything under ``RUN/repair`` is reused on resume.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from recon.cameras import Cameras
from recon.errors import ConfigError
from recon.render import render
from recon.render.render import RenderOutput
from recon.repair.rounds import RepairRounds
from recon.repair.workflow import fit_for_run, repair_dir, repair_model_for_run

if TYPE_CHECKING:
    from recon.train.trainer import Trainer

SPARSE_VIEWS = 9
"""``auto`` fits a fixer only up to this many training views (sparse captures)."""


def check_repair_option(value: str) -> None:
    """Rejects a ``--repair`` value that is neither off, auto nor an existing folder (before anything runs)."""
    if value in ("off", "auto"):
        return
    path = Path(value).expanduser()
    if not path.is_dir():
        what = "is a file, not a diffusers folder" if path.exists() else "not found (hub ids are not downloaded)"
        raise ConfigError(
            f"repair.model (--repair) {value}: {what}",
            hint="use --repair off, --repair auto or a local diffusers folder (e.g. RUN/repair/model)",
        )


def _render_fn(trainer: Trainer) -> Callable[[Cameras], RenderOutput]:
    def render_fn(cam: Cameras) -> RenderOutput:
        return render(
            trainer.config.primitive,
            trainer.params,
            cam.to(trainer.device),
            sh_degree=trainer.sh_degree(trainer.step),
            backgrounds=trainer.pseudo_background().reshape(1, 3),
            backend=trainer.config.backend,
        )

    return render_fn


def _model_fn(trainer: Trainer, run_dir: Path, say: Callable[[str], None], loaded: Any = None) -> Callable[[int], Any]:
    """``model_fn(step)`` of :class:`RepairRounds`: pairs from the live model, then fit/load and gate."""
    from recon.repair.dataset import make_pairs, save_pairs
    from recon.repair.fixer import FixerConfig
    from recon.repair.pairs import PairConfig

    c = trainer.config.repair

    def model_fn(step: int) -> Any:
        rng = torch.get_rng_state()  # the sub-runs and the fixer reseed torch: keep the run's stream
        try:
            if not (repair_dir(run_dir) / "pairs" / "manifest.json").is_file():
                runs = min(c.held_out, len(trainer.train_ids))
                say(f"repair: leave-one-out pairs from {runs} sub-runs on the training views (step {step})")
                params = {k: p.detach().clone() for k, p in trainer.params.items()}
                pair_set = make_pairs(
                    trainer.config,
                    trainer.scene,
                    trainer.split,
                    params,
                    trainer.sh_degree(step),
                    step,
                    trainer.background,
                    PairConfig(held_out=c.held_out, fraction=c.pair_fraction),
                    progress=say,
                )
                save_pairs(pair_set, repair_dir(run_dir) / "pairs")
            if c.model != "auto":
                model, gate = repair_model_for_run(run_dir, c.model, loaded=loaded)
            elif (repair_dir(run_dir) / "gate.json").is_file():
                model, gate = repair_model_for_run(run_dir)  # fitted before this resume
            else:
                w, pairs = c.fit_channels, PairConfig()
                side = int(min(trainer.images[0].shape[:2]) / pairs.downscale)  # crops fit in the pairs
                config = FixerConfig(
                    channels=(w, 2 * w, 2 * w),
                    norm_groups=min(8, w),
                    steps=c.fit_steps,
                    crop=min(FixerConfig.crop, side - side % 4),
                )
                say(f"repair: fitting the scene's fixer ({c.fit_steps} steps)")
                fixer, gate = fit_for_run(run_dir, config, progress=True)  # nested under the training bar
                model = fixer if gate.enabled else None
        finally:
            torch.set_rng_state(rng)
        say(gate.reason)
        return model

    return model_fn


def repair_source(trainer: Trainer, run_dir: Path | None, say: Callable[[str], None] = print) -> RepairRounds | None:
    """The pseudo-view source ``config.repair`` asks for, or None (off, or auto on a dense capture).

    A ``PATH`` model is loaded here once, so a folder that is not a repair model fails before
    training starts.

    Raises:
        ConfigError: a bad model folder, or repair without a run folder.
    """
    from recon.repair.pretrained import load_repair_model, pipeline_options

    c = trainer.config.repair
    if c.model == "off":
        return None
    check_repair_option(c.model)
    n = len(trainer.train_ids)
    if c.model == "auto" and n > SPARSE_VIEWS:
        say(
            f"repair off: --repair auto fits a fixer for sparse captures (<= {SPARSE_VIEWS} training views) and this "
            f"run trains on {n}; pass --repair PATH to use a repair model anyway"
        )
        return None
    if run_dir is None:
        raise ConfigError("repair needs a run folder (its pairs, fixer and rounds live in RUN/repair)")
    loaded = None if c.model == "auto" else load_repair_model(c.model, **pipeline_options(c))
    return RepairRounds(
        c,
        trainer.config.iterations,
        trainer.config.seed,
        _model_fn(trainer, run_dir, say, loaded),
        _render_fn(trainer),
        trainer.cameras,
        trainer.images,
        repair_dir(run_dir),
        say,
    )
