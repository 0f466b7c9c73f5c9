"""Small synthetic scenes and trainers for the recon.wild tests."""

from __future__ import annotations

from recon.config import TrainConfig, override
from recon.train.setup import initial_cloud, load_training_scene, make_split
from recon.train.trainer import Trainer


def wild_config(path: str = "synthetic", iterations: int = 8, **kw) -> TrainConfig:
    """A tiny, fast config on the demo scene (32x24, 6 views, 200 points)."""
    base = {
        "data.path": path, "data.synthetic_width": 32, "data.synthetic_height": 24, "data.synthetic_views": 6,
        "data.test_every": 3, "iterations": iterations, "init.max_points": 200, "optim.sh_degree": 1,
        "strategy.refine_start": 3, "strategy.refine_every": 4, "checkpoint_every": 0, "sparse.enabled": False,
    }  # fmt: skip
    base.update(kw)
    return override(TrainConfig(), **base)


def make_trainer(config: TrainConfig, scene=None, run_dir=None) -> Trainer:
    """A trainer initialised from the scene's own points (``scene`` read from the config when None)."""
    scene = scene if scene is not None else load_training_scene(config.data)
    split = make_split(scene, config.data)
    trainer = Trainer(config, scene, split, run_dir)
    trainer.init_from_cloud(initial_cloud(scene, split.train, config.init, config.seed))
    return trainer
