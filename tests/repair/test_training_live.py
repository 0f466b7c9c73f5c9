"""Repair inside a training step: the pairs and the fit release the trainer's lock and report to
the live hook (a live viewer keeps serving the scene meanwhile, issue #11 point 1d)."""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("diffusers")

from recon.config import TrainConfig, override
from recon.data.splits import Split
from recon.data.synthetic import make_synthetic_scene
from recon.repair.schedule import round_steps
from recon.repair.training import released, repair_source
from recon.train.setup import initial_cloud
from recon.train.trainer import Trainer


def _trainer() -> Trainer:
    config = override(TrainConfig(), **{
        "data.path": "synthetic", "iterations": 100, "init.max_points": 200, "optim.sh_degree": 0,
        "sparse.enabled": False, "strategy.refine_start": 20, "strategy.refine_every": 20, "checkpoint_every": 0,
        "repair.model": "auto", "repair.rounds": 1, "repair.first": 0.3, "repair.held_out": 2,
        "repair.pair_fraction": 0.2, "repair.fit_steps": 12, "repair.fit_channels": 8})  # fmt: skip
    scene = make_synthetic_scene(num_views=6, width=48, height=40, test_every=3)
    split = Split([0, 1, 3, 4], [2, 5], "generic")
    trainer = Trainer(config, scene, split, None)
    trainer.init_from_cloud(initial_cloud(scene, split.train, config.init, config.seed))
    return trainer


def test_pairs_and_fit_report_to_the_live_hook_with_the_lock_released(tmp_path):
    trainer = _trainer()
    lock, calls = trainer.state.lock, []

    def hook(text: str) -> None:  # a viewer render thread would take the lock here
        free = lock.acquire(blocking=False)
        if free:
            lock.release()
        calls.append((text, free))

    rounds = repair_source(trainer, tmp_path, say=lambda line: None, live=hook)
    step = round_steps(trainer.config.repair, trainer.config.iterations)[0]
    before = {k: p.detach().clone() for k, p in trainer.params.items()}
    with lock:  # as Trainer.train holds it around each step
        rounds.views(step)
        assert lock.locked()  # taken back before the step goes on
    texts = [t for t, _ in calls]
    assert any("leave-one-out sub-run" in t for t in texts) and any("fitting the fixer" in t for t in texts)
    assert all(free for _, free in calls)  # never reported while the trainer held the lock
    assert texts[-1] == ""  # done: the viewer goes back to the training status
    assert all(torch.equal(before[k], p.detach()) for k, p in trainer.params.items())  # the scene served is unchanged


def test_released_leaves_a_free_lock_free():
    import threading

    lock = threading.Lock()
    with released(lock):
        assert not lock.locked()
    assert not lock.locked()
    with lock, released(lock):
        assert lock.acquire(blocking=False)
        lock.release()
    assert not lock.locked()
