"""Repair inside a training run: ``recon train --repair auto|off|PATH`` (issue #11, point 5).

:func:`repair_source` builds the trainer's :class:`~recon.repair.rounds.RepairRounds` from
``config.repair``. The repair model is made when the first round starts, from the model trained
so far: leave-one-out pairs of the training views (saved under ``RUN/repair/pairs``), then
``auto`` fits the scene's own fixer on them and gates it, and a ``PATH`` model is gated on the
same held-out view (:mod:`recon.repair.workflow`). When the gate says no, training goes on
without repair and the reason is printed. Everything under ``RUN/repair`` is reused on resume.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from recon.cameras import Cameras
from recon.config import RepairConfig
from recon.errors import ConfigError
from recon.render import render
from recon.render.render import RenderOutput
from recon.repair.fixer import GateResult
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


def fit_cap_seconds(config: RepairConfig, training_cpu_s: float, step: int, iterations: int) -> float:
    """CPU seconds the fixer fit may take (0 = no cap): the smaller of ``fit_max_seconds`` and
    ``fit_time_fraction`` x the base run's estimated CPU time (the training steps' CPU time so far,
    ``training_cpu_s`` over ``step`` steps, extrapolated to ``iterations``), each when set."""
    caps = [config.fit_max_seconds] if config.fit_max_seconds > 0 else []
    if config.fit_time_fraction > 0 and step > 0:
        caps.append(config.fit_time_fraction * training_cpu_s * iterations / step)
    return min(caps, default=0.0)


@contextlib.contextmanager
def released(lock: threading.Lock) -> Iterator[None]:
    """Releases ``lock`` for the block when it is held (by the trainer's step that called in here),
    and takes it back after: a live viewer renders the unchanged parameters meanwhile."""
    held = lock.locked()
    if held:
        lock.release()
    try:
        yield
    finally:
        if held:
            lock.acquire()


def _model_fn(
    trainer: Trainer,
    run_dir: Path,
    say: Callable[[str], None],
    loaded: Any = None,
    live: Callable[[str], None] | None = None,
) -> Callable[[int], Any]:
    """``model_fn(step)`` of :class:`RepairRounds`: pairs from the live model, then fit/load and gate.

    It runs inside a training step, which holds ``trainer.state.lock``: the lock is released while
    the pairs and the fixer are made (they read a copy of the parameters, the trainer waits), so a
    live viewer keeps serving the scene, and ``live(text)`` reports how far they got."""
    from recon.repair.dataset import make_pairs, save_pairs
    from recon.repair.fixer import FixerConfig
    from recon.repair.pairs import PairConfig

    c = trainer.config.repair
    cpu0 = time.process_time()  # training starts now: the fit's cap extrapolates the steps' CPU time

    def model_fn(step: int) -> Any:
        cap = fit_cap_seconds(c, time.process_time() - cpu0, step, trainer.config.iterations)
        rng = torch.get_rng_state()  # the sub-runs and the fixer reseed torch: keep the run's stream
        params = {k: p.detach().clone() for k, p in trainer.params.items()}
        with released(trainer.state.lock):
            try:
                model, gate = make_model(step, cap, params)
            finally:
                torch.set_rng_state(rng)
                if live is not None:
                    live("")
        say(gate.reason)
        return model

    def make_model(step: int, cap: float, params: dict[str, torch.Tensor]) -> tuple[Any, GateResult]:
        if not (repair_dir(run_dir) / "pairs" / "manifest.json").is_file():
            runs = min(c.held_out, len(trainer.train_ids))
            say(f"repair: leave-one-out pairs from {runs} sub-runs on the training views (step {step})")
            levels = tuple((k + 1) / c.noise_levels for k in range(c.noise_levels))  # 0: () = the first calibration
            pair_config = PairConfig(held_out=c.held_out, fraction=c.pair_fraction, noise_levels=levels)
            pair_set = make_pairs(trainer.config, trainer.scene, trainer.split, params, trainer.sh_degree(step), step,
                                  trainer.background, pair_config, progress=say, live=live)  # fmt: skip
            save_pairs(pair_set, repair_dir(run_dir) / "pairs")
        if c.model != "auto":
            return repair_model_for_run(run_dir, c.model, loaded=loaded)
        if (repair_dir(run_dir) / "gate.json").is_file():
            return repair_model_for_run(run_dir)  # fitted before this resume
        w = c.fit_channels
        side = int(min(trainer.images[0].shape[:2]) / PairConfig.downscale)  # crops fit in the pairs
        config = FixerConfig(channels=(w, 2 * w, 2 * w), norm_groups=min(8, w), steps=c.fit_steps,
                             crop=min(FixerConfig.crop, side - side % 4), max_seconds=cap, blend=c.blend)  # fmt: skip
        say(
            f"repair: fitting the scene's fixer ({c.fit_steps} steps"
            + (f", at most {cap:.0f} CPU s)" if cap > 0 else ")")
        )

        def on_step(k: int, n: int) -> None:
            if live is not None and (k % 10 == 0 or k == 1):
                live(f"repair: fitting the fixer, step {k}/{n}")

        fixer, gate = fit_for_run(run_dir, config, progress=True, on_step=on_step)  # nested under the training bar
        if fixer.meta.get("blend", 1.0) != 1.0 or c.blend < 0:
            say(
                f"repair: blend {fixer.meta['blend']:.2f} of the fixer's change"
                + (
                    " (calibrated on the held-out view's " + ("noise pairs)" if c.blend > -2 else "earlier renders)")
                    if c.blend < 0
                    else ""
                )
            )
        if fixer.meta.get("stopped_early"):
            say(
                f"repair: the fixer fit reached its {cap:.0f} CPU s cap after {fixer.meta['fit_steps']} of "
                f"{c.fit_steps} steps; keeping the weights so far (their running average)"
            )
        return (fixer if gate.enabled else None), gate

    return model_fn


def repair_source(
    trainer: Trainer,
    run_dir: Path | None,
    say: Callable[[str], None] = print,
    live: Callable[[str], None] | None = None,
) -> RepairRounds | None:
    """The pseudo-view source ``config.repair`` asks for, or None (off, or auto on a dense capture).

    A ``PATH`` model is loaded here once, so a folder that is not a repair model fails before
    training starts. ``live(text)`` hears how far the pairs and the fit got ("" when done);
    default: ``trainer.state.activity``, which a live viewer shows.

    Raises:
        ConfigError: a bad model folder, or repair without a run folder.
    """
    from recon.repair.pretrained import load_repair_model, pipeline_options
    from recon.train.setup import masked_protocol

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
    if live is None:
        live = lambda text: setattr(trainer.state, "activity", text)
    masked = masked_protocol(trainer.split.protocol, trainer.scene)
    return RepairRounds(
        c,
        trainer.config.iterations,
        trainer.config.seed,
        _model_fn(trainer, run_dir, say, loaded, live),
        _render_fn(trainer),
        trainer.cameras,
        trainer.images,
        repair_dir(run_dir),
        say,
        object_capture=masked or None,
        masks=trainer.masks if masked else None,
    )
