"""Is the run healthy, and how long will it take? Collapse detection, suspicious learning
rates and the ETA line printed before a long run.

A run *diverges* when a loss or a parameter becomes NaN/inf (the trainer checks both every step)
and *collapses* when it stays finite but its fit is destroyed: a learning rate far too high
(``gaussian.means_lr: 3.0``) flings the primitives out of every view within a step and the training
PSNR falls to that of an empty image, far below where the run started. Healthy training never
sits far below its own best for long, so the test is relative to the run itself:
:class:`CollapseMonitor` compares the mean training PSNR of the last ``window`` steps with the best
level seen so far (the first step's PSNR, i.e. the initialisation, or an earlier window mean).
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections import deque
from collections.abc import Callable

from recon.config import TrainConfig


def suspicious_lrs(config: TrainConfig, factor: float = 10.0) -> list[str]:
    """Learning rates that are not finite or exceed ``factor`` x the default, as ``section.x=v (default d)``:
    the shared ``optim`` ones and those of the run's family section (``gaussian.means_lr``...)."""
    found = []
    for prefix, section in (("optim", config.optim), (config.primitive, config.section())):
        defaults = type(section)()
        for f in dataclasses.fields(section):
            if "_lr" not in f.name:
                continue
            value, default = getattr(section, f.name), getattr(defaults, f.name)
            if not math.isfinite(value) or abs(value) > factor * abs(default):
                found.append(f"{prefix}.{f.name}={value:g} (default {default:g})")
    return found


def lr_hint(config: TrainConfig) -> str:
    """What to tell the user after a divergence or collapse."""
    bad = suspicious_lrs(config)
    if bad:
        return f"likely cause: learning rates far above the defaults: {', '.join(bad)}; lower them in RUN/config.json"
    return f"lower the learning rates ({config.primitive}.*_lr, optim.*_lr in RUN/config.json) and resume with --resume"


class CollapseMonitor:
    """Watches the per-step training PSNR for a sustained fall far below the run's best.

    Args:
        window: steps averaged; a collapse must last this long (per-view PSNRs differ by a few dB).
        drop_db: how far below the best level the window mean must be.
        min_steps: readings needed before :attr:`suspect` can be raised.
    """

    def __init__(self, window: int = 200, drop_db: float = 5.0, min_steps: int = 5):
        self.window, self.drop_db, self.min_steps = window, drop_db, min_steps
        self.recent: deque[float] = deque(maxlen=window)
        self.best = -math.inf

    def update(self, psnr: float) -> None:
        """Adds the PSNR of one training step."""
        if not math.isfinite(psnr):
            return
        if not self.recent:
            self.best = psnr  # the initialisation's fit: training should only improve on it
        self.recent.append(psnr)
        if len(self.recent) == self.window:
            self.best = max(self.best, self.mean)

    @property
    def mean(self) -> float:
        return sum(self.recent) / max(len(self.recent), 1)

    @property
    def suspect(self) -> bool:
        """The recent steps sit far below the best: do not replace the last good checkpoint."""
        return len(self.recent) >= self.min_steps and self.mean < self.best - self.drop_db

    @property
    def collapsed(self) -> bool:
        """A whole window far below the best: stop the run."""
        return len(self.recent) == self.window and self.suspect

    def describe(self) -> str:
        return (f"the training PSNR fell from {self.best:.1f} dB to a mean of {self.mean:.1f} dB "
                f"over the last {len(self.recent)} steps")


def format_duration(seconds: float) -> str:
    """``"2 h 05 min"``, ``"12 min"``, ``"40 s"``."""
    if seconds >= 3600:
        h, rest = divmod(round(seconds / 60), 60)
        return f"{h} h {rest:02d} min"
    if seconds >= 60:
        return f"{round(seconds / 60)} min"
    return f"{seconds:.0f} s"


class EtaEstimate:
    """Times the first steps of a run and produces one line estimating the whole run.

    Steps get slower as densification adds primitives, so the estimate is a lower bound and says
    so. On a CPU a run estimated above ``warn_seconds`` also gets a hint to shorten it.

    Args:
        total: the run's last step.
        start: the step training starts from (after a resume, the checkpoint's).
        device: ``config.device``.
        skip: first steps left out of the timing (warm-up: first calls, caches).
        steps: steps timed.
        warn_seconds: estimate above which a CPU run gets the hint.
        clock: seconds, monotonic (tests pass a fake one).
    """

    def __init__(self, total: int, start: int = 0, device: str = "cpu", skip: int = 2, steps: int = 20,
                 warn_seconds: float = 3600.0, clock: Callable[[], float] | None = None):
        self.total, self.device, self.warn_seconds = total, device, warn_seconds
        self.clock = clock or time.perf_counter
        self.first = start + skip  # timing starts once this step has finished
        self.last = self.first + steps
        self.t_first: float | None = None
        self.done = total - self.last <= 0  # too short to be worth an estimate

    def update(self, step: int) -> str | None:
        """Call after each finished ``step``; returns the ETA line once, when the timing is done."""
        if self.done:
            return None
        if step >= self.first and self.t_first is None:
            self.t_first, self.first = self.clock(), step
            return None
        if self.t_first is None or step < self.last:
            return None
        self.done = True
        per_step = (self.clock() - self.t_first) / max(step - self.first, 1)
        remaining = per_step * (self.total - step)
        line = (f"estimated time: at least {format_duration(remaining)} for the remaining {self.total - step} steps "
                f"({per_step:.2f} s/step so far; densification makes later steps slower)")
        if self.device == "cpu" and remaining > self.warn_seconds:
            budget = max(round(self.warn_seconds / 2 / per_step / 100) * 100, 100)
            line += (f"\nwarning: that is long on a CPU; shorten it with --iterations N "
                     f"(about {budget} steps take {format_duration(budget * per_step)})")
        return line
