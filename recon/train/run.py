"""A run directory and how to read it back.

Layout (other parts of recon add their own folders)::

    RUN/config.json                       TrainConfig, plain JSON with schema_version
    RUN/cameras.json                      all scene cameras (Ks, viewmats, sizes), names, split
    RUN/checkpoints/step_NNNNNN.safetensors  parameters, Adam moments, strategy tensors, RNG
    RUN/checkpoints/step_NNNNNN.json      step, Adam steps/LRs, strategy scalars (no pickle)
    RUN/checkpoints/latest.json           the newest complete checkpoint
    RUN/log.jsonl                         one JSON object per logged step (loss, psnr, count, it/s)
    RUN/eval/metrics.json                 `recon eval` results; eval/<name>.png side by side
    RUN/priors/                           geometry priors (recon.priors)
    RUN/renders/                          videos
    RUN/export/                           PLY, meshes
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from recon.cameras import Cameras
from recon.config import TrainConfig, load_config
from recon.data.splits import Split
from recon.errors import ConfigError
from recon.train.checkpoint import find_checkpoint


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


def write_cameras(run_dir: Path, cameras: Cameras, names: list[str], split: Split, scene_root: str) -> None:
    """Stores the scene's cameras and split in ``RUN/cameras.json``."""
    data = {
        "names": names,
        "Ks": cameras.Ks.tolist(),
        "viewmats": cameras.viewmats.tolist(),
        "widths": cameras.widths.tolist(),
        "heights": cameras.heights.tolist(),
        "split": split.to_dict(),
        "scene_root": scene_root,
    }
    (run_dir / "cameras.json").write_text(json.dumps(data))


def read_cameras(run_dir: Path) -> tuple[Cameras, list[str], Split, str]:
    data = json.loads((run_dir / "cameras.json").read_text())
    cams = Cameras.create(data["Ks"], data["viewmats"], data["widths"], data["heights"])
    s = data["split"]
    return cams, data["names"], Split(s["train"], s["test"], s["protocol"]), data["scene_root"]


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
        raise ConfigError("not a run directory (no config.json)", path=run_dir, hint="pass the --out folder of `recon train`")
    config = load_config(run_dir / "config.json")
    ckpt = find_checkpoint(run_dir / "checkpoints", step)
    if ckpt is None:
        raise ConfigError("the run has no checkpoint yet", path=run_dir, hint="train it first (recon train ... --out RUN)")
    cameras, names, split, root = read_cameras(run_dir)
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
    )
