"""A tiny trained run folder (synthetic scene, 20 steps) for the repair, render and viewer tests."""

from __future__ import annotations

from pathlib import Path

from recon.config import TrainConfig, override


def train_tiny_run(out: Path, width: int = 48, height: int = 40, **overrides) -> Path:
    """Trains 20 steps on a 6-view synthetic scene (every 3rd view a test view) into ``out``;
    ``overrides`` are more config keys (``primitive="triangle"``)."""
    from recon.train.cli import run_training

    config = override(TrainConfig(), **{
        "data.path": "synthetic", "data.synthetic_width": width, "data.synthetic_height": height,
        "data.synthetic_views": 6, "data.test_every": 3, "iterations": 20, "init.max_points": 150,
        "optim.sh_degree": 0, "checkpoint_every": 0, **overrides})  # fmt: skip
    run_training(config, out, quiet=True)
    return out
