"""``RUN/cameras.json``: the scene's cameras, names and split as trained on, with image hashes.

A run carries its cameras: every later command reads them from here, never from a new
structure-from-motion, whose frame (and registered set) would differ.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch
from torch import Tensor

from recon.cameras import Cameras
from recon.data.splits import Split


def image_digest(image: Tensor) -> str:
    """SHA-1 of an [H, W, C] image in [0, 1] quantised to 8 bits, with its shape."""
    q = (image.detach().float().cpu().clamp(0, 1) * 255).round().to(torch.uint8)
    return hashlib.sha1(str(tuple(q.shape)).encode() + q.numpy().tobytes()).hexdigest()


def write_cameras(
    run_dir: Path,
    cameras: Cameras,
    names: list[str],
    split: Split,
    scene_root: str,
    images: list[Tensor] | None = None,
    sfm_dir: Path | None = None,
) -> None:
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


def read_camera_record(run_dir: Path) -> dict:
    """``RUN/cameras.json`` as written by :func:`write_cameras` (plain JSON values)."""
    return json.loads((run_dir / "cameras.json").read_text())


def read_cameras(run_dir: Path, data: dict | None = None) -> tuple[Cameras, list[str], Split, str]:
    """Cameras, names, split and scene root of ``RUN/cameras.json`` (or of its already-read ``data``)."""
    data = read_camera_record(run_dir) if data is None else data
    cams = Cameras.create(data["Ks"], data["viewmats"], data["widths"], data["heights"])
    s = data["split"]
    return cams, data["names"], Split(s["train"], s["test"], s["protocol"]), data["scene_root"]
