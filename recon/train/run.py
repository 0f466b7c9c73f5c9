"""A run directory and how to read it back.

Layout (other parts of recon add their own folders)::

    RUN/.recon-run                        marker: recon created this folder (``--overwrite`` deletes
                                          only folders holding it)
    RUN/config.json                       TrainConfig, plain JSON with schema_version
    RUN/cameras.json                      all scene cameras (Ks, viewmats, sizes), names, split,
                                          a hash of every image as trained on, the SfM folder
    RUN/sfm/sfm-<hash>/                   photo folders only: the SfM model and undistorted images
    RUN/checkpoints/step_NNNNNN.safetensors  parameters, Adam moments, strategy tensors, RNG
    RUN/checkpoints/step_NNNNNN.json      step, Adam steps/LRs, strategy scalars (no pickle)
    RUN/checkpoints/latest.json           the newest complete checkpoint
    RUN/log.jsonl                         one JSON object per logged step (loss, psnr, count, it/s)
    RUN/eval/metrics.json                 `recon eval` results; eval/<name>.png side by side
    RUN/priors/                           geometry priors (recon.priors)
    RUN/renders/                          videos
    RUN/export/                           PLY, meshes

A run carries its cameras: every later command (eval, view, render, export) reads them from
``cameras.json``, never from a new structure-from-motion, whose frame (and registered set)
would differ. A photo folder's SfM output stays in the run (``RUN/sfm``, outside ``priors/``
which training rewrites); ``recon eval`` reads its undistorted images from there
(:func:`recon.train.setup.load_run_scene`) and checks each image against the hash recorded at
training time, so a changed dataset or photo is an error, not a silently different score.

The marker and ``config.json`` are written once the scene has loaded, so a start that fails on
its input leaves no run behind. ``recon train --overwrite`` deletes a folder only when it holds
the marker (folders written before the marker existed are refused: delete them by hand).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor

from recon.cameras import Cameras
from recon.config import TrainConfig, load_config
from recon.data.splits import Split
from recon.errors import ConfigError
from recon.train.checkpoint import find_checkpoint

RUN_MARKER = ".recon-run"


def mark_run(run_dir: Path) -> None:
    """Writes the marker that makes ``run_dir`` a folder recon may delete with ``--overwrite``."""
    (run_dir / RUN_MARKER).write_text(json.dumps({"recon_run": 1}) + "\n")


def is_marked_run(path: Path) -> bool:
    """Whether ``path`` is a run folder recon created (it holds the marker)."""
    return (path / RUN_MARKER).is_file()


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
        image_hashes: name -> :func:`image_digest` of each image as trained on (empty for runs
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


def image_digest(image: Tensor) -> str:
    """SHA-1 of an [H, W, C] image in [0, 1] quantised to 8 bits, with its shape."""
    q = (image.detach().float().cpu().clamp(0, 1) * 255).round().to(torch.uint8)
    return hashlib.sha1(str(tuple(q.shape)).encode() + q.numpy().tobytes()).hexdigest()


def write_cameras(run_dir: Path, cameras: Cameras, names: list[str], split: Split, scene_root: str,
                  images: list[Tensor] | None = None, sfm_dir: Path | None = None) -> None:
    """Stores the scene's cameras and split in ``RUN/cameras.json``.

    Args:
        images: the images as trained on ([H, W, 3] each, in ``names`` order): their
            :func:`image_digest` is recorded so that evaluation can check it reads the same ones.
        sfm_dir: the SfM output the cameras come from, inside ``run_dir`` (photo folders).
    """
    data = {
        "names": names,
        "Ks": cameras.Ks.tolist(),
        "viewmats": cameras.viewmats.tolist(),
        "widths": cameras.widths.tolist(),
        "heights": cameras.heights.tolist(),
        "split": split.to_dict(),
        "scene_root": scene_root,
    }
    if images is not None:
        data["image_sha1"] = {n: image_digest(im) for n, im in zip(names, images)}
    if sfm_dir is not None:
        data["sfm_dir"] = Path(sfm_dir).resolve().relative_to(Path(run_dir).resolve()).as_posix()
    (run_dir / "cameras.json").write_text(json.dumps(data))


def read_cameras(run_dir: Path) -> tuple[Cameras, list[str], Split, str]:
    """Cameras, names, split and scene root of ``RUN/cameras.json``."""
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
    record = json.loads((run_dir / "cameras.json").read_text())
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
