"""The small live state the viewer reads during training (never the trainer itself)."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field


@dataclass
class TrainingState:
    """Progress of a running training, shared with a live viewer.

    Attributes:
        step: last finished step.
        iterations: total steps.
        losses: latest loss terms by name.
        psnr: latest training-view PSNR.
        num_primitives: current primitive count.
        primitive: the family being trained.
        paused: set by the viewer to pause training (the trainer waits while True).
        activity: what a long stage inside a step is doing (e.g. repair fitting its model), "" = training.
        lock: guards parameter access between the trainer and a viewer render.
    """

    step: int = 0
    iterations: int = 0
    losses: dict[str, float] = field(default_factory=dict)
    psnr: float = 0.0
    num_primitives: int = 0
    primitive: str = "gaussian"
    paused: bool = False
    activity: str = ""
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
