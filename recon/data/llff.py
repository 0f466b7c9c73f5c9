"""LLFF scenes: ``poses_bounds.npy`` beside ``images[_N]/`` (and optionally ``masks[_N]/``).

``poses_bounds.npy`` is [N, 17]: a 3x5 matrix per view, ``[R | t | hwf]`` with the rotation
columns in LLFF's (down, right, back) order and ``hwf`` the height, width and focal length of
the full-resolution images, then the near and far depth bounds. Rows follow the sorted image
names. Intrinsics are scaled to the size of the images actually found (``images_8`` ...).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from recon.cameras import Cameras
from recon.data.images import list_images
from recon.data.source import SceneSource
from recon.errors import DataError


def image_folder(
    root: Path, prefer_factor: float = 1, prefixes: tuple[str, ...] = ("images",)
) -> tuple[Path, int] | None:
    """An image folder of ``root`` and its downscale factor (``images_4`` -> 4).

    ``<prefix>_<prefer_factor>`` wins when it exists, then the full-size folder, then the
    smallest factor available.
    """
    found: dict[int, Path] = {}
    for d in sorted(root.iterdir()) if root.is_dir() else []:
        if not d.is_dir():
            continue
        for prefix in prefixes:
            m = re.fullmatch(rf"{prefix}(?:_(\d+))?", d.name)
            if m and list_images(d):
                found.setdefault(int(m.group(1) or 1), d)
    if not found:
        return None
    f = (
        int(prefer_factor)
        if float(prefer_factor).is_integer() and int(prefer_factor) in found
        else min(found)
    )
    return found[f], f


def match_masks(images: list[Path], mask_dir: Path | None) -> list[Path] | None:
    """Mask files for ``images``: same stem (any image suffix), else the same sorted position."""
    if mask_dir is None:
        return None
    masks = list_images(mask_dir)
    by_stem = {m.stem: m for m in masks}
    if all(p.stem in by_stem for p in images):
        return [by_stem[p.stem] for p in images]
    if len(masks) == len(images):
        return masks
    raise DataError(
        f"has {len(masks)} masks for {len(images)} images and their names do not match",
        path=mask_dir,
        hint="name each mask after its image or remove the folder",
    )


def parse_llff(root: Path, prefer_factor: float = 1) -> SceneSource:
    """Parses an LLFF scene folder (or its ``poses_bounds.npy``)."""
    root = root.parent if root.is_file() else root
    pb_path = root / "poses_bounds.npy"
    layout = "expected a float N x 17 array: per view a 3x5 pose [R | t | hwf], then near and far"
    try:
        pb = np.load(pb_path, allow_pickle=False)
    except FileNotFoundError:
        raise DataError("file not found", path=pb_path) from None
    except (ValueError, OSError, EOFError):
        raise DataError(f"is not a numeric .npy array ({layout})", path=pb_path,
                        hint="regenerate it with LLFF's imgs2poses.py or COLMAP") from None
    if pb.ndim != 2 or pb.shape[1] != 17 or not np.issubdtype(pb.dtype, np.number):
        raise DataError(f"has shape {pb.shape} and dtype {pb.dtype}; {layout}", path=pb_path)
    pb = pb.astype(np.float64)
    folder = image_folder(root, prefer_factor)
    if folder is None:
        raise DataError(
            "no images/ or images_N/ folder with images beside poses_bounds.npy", path=root
        )
    img_dir, factor = folder
    paths = list_images(img_dir)
    if len(paths) != len(pb):
        raise DataError(
            f"has {len(pb)} poses but {img_dir.name}/ has {len(paths)} images",
            path=pb_path,
            hint="the rows must match the sorted image names one to one; regenerate the file",
        )
    poses = pb[:, :15].reshape(-1, 3, 5)
    h, w, f = poses[:, 0, 4], poses[:, 1, 4], poses[:, 2, 4]
    Ks = np.zeros((len(pb), 3, 3))
    Ks[:, 0, 0], Ks[:, 1, 1], Ks[:, 0, 2], Ks[:, 1, 2], Ks[:, 2, 2] = f, f, w / 2, h / 2, 1.0
    cams = Cameras.from_llff(poses[:, :, :4], Ks, np.round(w).astype(int), np.round(h).astype(int))
    mask_folder = image_folder(root, factor, prefixes=("masks", "mask"))
    masks = None
    if mask_folder is not None and mask_folder[1] == factor:
        masks = match_masks(paths, mask_folder[0])
    return SceneSource(
        format="llff",
        root=root,
        image_paths=paths,
        cameras=cams,
        mask_paths=masks,
        camera_file=pb_path,
        meta={
            "near": pb[:, 15].tolist(),
            "far": pb[:, 16].tolist(),
            "image_dir": img_dir.name,
            "image_factor": factor,
        },
    )
