"""Blender synthetic scenes (NeRF's ``nerf_synthetic``): ``transforms_{train,val,test}.json``.

Each split file holds ``camera_angle_x`` and frames with OpenGL camera-to-world matrices and
extension-less RGBA PNG paths. The focal length follows the size of the images actually found
(``0.5 * W / tan(camera_angle_x / 2)``), so half-resolution copies load correctly. Images are
composited on the background chosen at load time; their alpha becomes the mask.
"""

from __future__ import annotations

from pathlib import Path

import torch

from recon.cameras import Cameras
from recon.data.nerfstudio import read_frames, read_json
from recon.data.source import SceneSource
from recon.errors import DataError

SPLITS = ("train", "val", "test")


def split_files(root: Path) -> dict[str, Path]:
    """The existing ``transforms_<split>.json`` files of ``root``, in train/val/test order."""
    return {
        s: root / f"transforms_{s}.json"
        for s in SPLITS
        if (root / f"transforms_{s}.json").is_file()
    }


def parse_blender(root: Path, skip_missing: bool = False) -> SceneSource:
    """Parses a Blender scene folder; views are ordered train, then val, then test."""
    files = split_files(root)
    if "train" not in files:
        raise DataError(
            "no transforms_train.json", path=root, hint="is this a Blender (nerf_synthetic) scene?"
        )
    paths: list[Path] = []
    cams: list[Cameras] = []
    split: dict[str, list[int]] = {}
    for name, json_path in files.items():
        fr = read_frames(json_path, read_json(json_path), skip_missing=skip_missing)
        split[name] = list(range(len(paths), len(paths) + len(fr.image_paths)))
        paths += fr.image_paths
        cams.append(fr.cameras)
    cameras = Cameras(
        Ks=torch.cat([c.Ks for c in cams]),
        viewmats=torch.cat([c.viewmats for c in cams]),
        widths=torch.cat([c.widths for c in cams]),
        heights=torch.cat([c.heights for c in cams]),
    )
    return SceneSource(
        format="blender",
        root=root,
        image_paths=paths,
        cameras=cameras,
        split=split,
        meta={"split_files": {k: str(v) for k, v in files.items()}},
    )
