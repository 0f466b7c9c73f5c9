"""Reading a run back: its config, cameras and newest readable checkpoint, ready to render."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor

from recon.cameras import Cameras
from recon.config import TrainConfig, load_config
from recon.data.splits import Split
from recon.errors import ConfigError
from recon.run.cameras import read_camera_record, read_cameras
from recon.run.checkpoint import find_checkpoint


@dataclass
class LoadedRun:
    """A trained (or training) run, ready to render.

    Attributes:
        config: the run's config.
        primitive: ``"gaussian"``, ``"triangle"`` or ``"convex"``.
        params: raw parameters (``render(primitive, params, cameras, sh_degree=sh_degree)``).
        cameras: every camera of the scene (train and test).
        names: image names in scene order.
        split: the protocol's train/test indices.
        scene_root: where the scene was read from.
        sh_degree: SH degree active at the checkpoint.
        step: training step of the checkpoint.
        background: [3] background colour used in training (None = random).
        run_dir: the run folder.
        image_hashes: name -> :func:`recon.run.cameras.image_digest` of each image as trained on (empty for runs
            written before hashes were recorded).
        sfm_dir: the run's own SfM output (photo folders), None for scenes with poses.
        extra: the checkpoint's free-form fields (``extra["wild"]``: per-image appearance, recon.wild).
    """

    config: TrainConfig
    primitive: str
    params: dict[str, Tensor]
    cameras: Cameras
    names: list[str]
    split: Split
    scene_root: str
    sh_degree: int
    step: int
    background: Tensor | None
    run_dir: Path
    image_hashes: dict[str, str] = field(default_factory=dict)
    sfm_dir: Path | None = None
    extra: dict = field(default_factory=dict)


def load_run(run_dir: str | Path, step: int | None = None) -> LoadedRun:
    """Reads a run's config, cameras and newest readable checkpoint (never unpickles).

    Args:
        run_dir: the run folder.
        step: load the checkpoint of this step instead (``--checkpoint STEP``).

    Raises:
        ConfigError: not a run directory, no checkpoint yet, or no readable one.
    """
    run_dir = Path(run_dir)
    if not (run_dir / "config.json").is_file():
        raise ConfigError(
            "not a run directory (no config.json)", path=run_dir, hint="pass the --out folder of `recon train`"
        )
    config = load_config(run_dir / "config.json")
    ckpt = find_checkpoint(run_dir / "checkpoints", step)
    if ckpt is None:
        raise ConfigError(
            "the run has no checkpoint yet", path=run_dir, hint="train it first (recon train ... --out RUN)"
        )
    record = read_camera_record(run_dir)
    cameras, names, split, root = read_cameras(run_dir, record)
    bg = ckpt.extra.get("background")
    return LoadedRun(
        config=config,
        primitive=config.primitive,
        params=ckpt.params,
        cameras=cameras,
        names=names,
        split=split,
        scene_root=root,
        sh_degree=int(ckpt.extra.get("sh_degree", config.optim.sh_degree)),
        step=ckpt.step,
        background=None if bg is None else torch.tensor(bg, dtype=torch.float32),
        run_dir=run_dir,
        image_hashes=record.get("image_sha1", {}),
        sfm_dir=run_dir / record["sfm_dir"] if record.get("sfm_dir") else None,
        extra=ckpt.extra,
    )
