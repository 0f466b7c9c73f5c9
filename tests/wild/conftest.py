"""Small synthetic scenes and trainers for the recon.wild tests."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from recon.config import TrainConfig, override
from recon.run import load_training_scene
from recon.train.setup import initial_cloud, make_split
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


def imperfect_render(image: torch.Tensor) -> torch.Tensor:
    """A stand-in for a trained render: 0.7 x the photo 3x3-blurred + 0.3 x the photo, plus noise
    (errors on every edge; 30 dB, the training PSNR of a 500-step demo run)."""
    x = image.permute(2, 0, 1)[None]
    blurred = F.avg_pool2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), 3, stride=1)[0].permute(1, 2, 0)
    noise = 0.01 * torch.randn(image.shape, generator=torch.Generator().manual_seed(0))
    return 0.7 * blurred + 0.3 * image + noise
