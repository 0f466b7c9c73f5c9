"""COLMAP scenes: find the model folder, read it, and turn it into a :class:`SceneSource`.

The file formats themselves (text and binary, readers and writers) are in
:mod:`recon.data.colmap_io`, re-exported here. Cameras of the radial models (SIMPLE_RADIAL,
RADIAL, OPENCV) keep their distortion in the source; :meth:`SceneSource.load` undistorts the
images to pinholes with the same K.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from recon.cameras import Cameras
from recon.data.colmap_io import (
    CAMERA_MODELS,
    MODEL_FILES,
    SUPPORTED_MODELS,
    ColmapCamera,
    ColmapImage,
    ColmapModel,
    ColmapPoints,
    read_model_binary,
    read_model_text,
    write_model_binary,
    write_model_text,
)
from recon.data.images import list_images
from recon.data.source import SceneSource, check_missing
from recon.errors import DataError
from recon.geometry import rotmat_to_quat_np

__all__ = [
    "CAMERA_MODELS",
    "SUPPORTED_MODELS",
    "ColmapCamera",
    "ColmapImage",
    "ColmapModel",
    "ColmapPoints",
    "find_model_dir",
    "is_model_dir",
    "model_from_cameras",
    "parse_colmap",
    "read_model",
    "read_model_binary",
    "read_model_text",
    "write_model_binary",
    "write_model_text",
]


def is_model_dir(folder: Path) -> bool:
    """True when ``folder`` holds a text or binary model (cameras + images)."""
    return any(
        all((folder / f"{n}.{ext}").is_file() for n in MODEL_FILES[:2]) for ext in ("bin", "txt")
    )


def find_model_dir(root: Path, max_depth: int = 2) -> Path | None:
    """The first model folder at ``root`` or at most ``max_depth`` levels below (``sparse/0``)."""
    level = [root]
    for _ in range(max_depth + 1):
        for folder in level:
            if is_model_dir(folder):
                return folder
        level = sorted(
            d for f in level for d in f.iterdir() if d.is_dir() and not d.name.startswith(".")
        )
    return None


def read_model(folder: Path) -> ColmapModel:
    """Reads a binary model if present, else a text model."""
    if (folder / "cameras.bin").is_file() and (folder / "images.bin").is_file():
        return read_model_binary(folder)
    return read_model_text(folder)


def model_from_cameras(cams: Cameras, names: list[str], points=None, colors=None) -> ColmapModel:
    """A PINHOLE model (one camera per image) of :class:`Cameras`; ``colors`` in [0, 1]."""
    cameras, images = {}, {}
    for i in range(len(cams)):
        K = cams.Ks[i].double().numpy()
        cameras[i + 1] = ColmapCamera(
            i + 1,
            "PINHOLE",
            int(cams.widths[i]),
            int(cams.heights[i]),
            np.array([K[0, 0], K[1, 1], K[0, 2], K[1, 2]]),
        )
        V = cams.viewmats[i].double().numpy()
        images[i + 1] = ColmapImage(
            i + 1, rotmat_to_quat_np(V[:3, :3]), V[:3, 3].copy(), i + 1, names[i]
        )
    pts = ColmapPoints.empty()
    if points is not None:
        xyz = np.asarray(points, dtype=np.float64).reshape(-1, 3)
        rgb = np.zeros_like(xyz) if colors is None else np.asarray(colors, dtype=np.float64)
        pts = ColmapPoints(
            np.arange(1, len(xyz) + 1),
            xyz,
            np.round(rgb * 255).clip(0, 255).astype(np.uint8),
            np.zeros(len(xyz)),
            [np.zeros((0, 2), np.int64) for _ in xyz],
        )
    return ColmapModel(cameras, images, pts)


def parse_colmap(
    root: Path, model_dir: Path | None = None, images_dir: Path | None = None
) -> SceneSource:
    """Parses a COLMAP scene: a model folder and the images it names.

    Args:
        root: the scene folder (or the model folder itself).
        model_dir: the model folder; found under ``root`` when None.
        images_dir: the image folder; ``root/images`` (or the model's parents) when None.
    """
    model_dir = model_dir or find_model_dir(root)
    if model_dir is None:
        raise DataError(
            "no COLMAP model (cameras + images .bin/.txt) found up to two levels down", path=root
        )
    model = read_model(model_dir)
    images_dir = images_dir or _find_images_dir(root, model_dir, model)
    order = sorted(model.images.values(), key=lambda im: im.name)
    if not order:
        raise DataError("the COLMAP model has no registered images", path=model_dir)
    paths = [images_dir / im.name for im in order]
    listed = model_dir / ("images.bin" if (model_dir / "images.bin").is_file() else "images.txt")
    check_missing(
        paths,
        listed,
        hint=f"images are looked up in {images_dir}; "
        "put them there or pass the scene root that holds images/",
    )
    Ks, dists, views, widths, heights = [], [], [], [], []
    for im in order:
        if im.camera_id not in model.cameras:
            raise DataError(
                f"image {im.name} refers to missing camera {im.camera_id}", path=model_dir
            )
        cam = model.cameras[im.camera_id]
        try:
            K, dist = cam.intrinsics()
        except DataError as err:
            raise DataError(str(err), path=model_dir) from None
        Ks.append(K), dists.append(dist), views.append(im.viewmat())
        widths.append(cam.width), heights.append(cam.height)
    cams = Cameras.create(np.stack(Ks), np.stack(views), widths, heights, dist=np.stack(dists))
    pts = model.points
    return SceneSource(
        format="colmap",
        root=root,
        image_paths=paths,
        names=[im.name for im in order],
        cameras=cams,
        points=torch.as_tensor(pts.xyz, dtype=torch.float32) if len(pts.ids) else None,
        point_colors=torch.as_tensor(pts.rgb / 255.0, dtype=torch.float32)
        if len(pts.ids)
        else None,
        camera_file=model_dir,
        meta={
            "model_dir": str(model_dir),
            "camera_models": sorted({c.model for c in model.cameras.values()}),
        },
    )


def _find_images_dir(root: Path, model_dir: Path, model: ColmapModel) -> Path:
    first = next(iter(model.images.values())).name
    candidates = [root / "images"] + [
        p / "images" for p in model_dir.parents if root in (p, *p.parents)
    ]
    candidates += [root, model_dir.parent]
    for c in candidates:
        if (c / first).is_file():
            return c
    found = [p for p in candidates if p.is_dir() and list_images(p)]
    return found[0] if found else root / "images"
