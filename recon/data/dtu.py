"""DTU scenes in the NeuS / IDR layout: ``cameras_sphere.npz`` + ``image[s][_N]/`` + ``mask[_N]/``.

``world_mat_i`` is the 4x4 projection ``K [R | t]`` of view ``i`` at the full resolution
(1600x1200 for DTU) and is decomposed with :func:`recon.cameras.decompose_projection`;
``scale_mat_i`` maps the unit sphere around the object to world coordinates and is kept in
``meta["scale_mats"]``. Intrinsics are divided by the factor of the folder actually read
(``images_4`` -> 4), so they match the loaded images.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from recon.cameras import Cameras, decompose_projection
from recon.data.images import image_size, list_images
from recon.data.llff import image_folder, match_masks
from recon.data.source import SceneSource
from recon.errors import DataError

CAMERA_FILE = "cameras_sphere.npz"


def parse_dtu(root: Path, prefer_factor: float = 1) -> SceneSource:
    """Parses a NeuS/IDR DTU scene folder (or its ``cameras_sphere.npz``)."""
    root = root.parent if root.is_file() else root
    npz_path = root / CAMERA_FILE
    try:
        cams_npz = dict(np.load(npz_path))
    except FileNotFoundError:
        raise DataError("file not found", path=npz_path) from None
    except (ValueError, OSError) as err:
        raise DataError(f"is not a readable .npz archive ({err})", path=npz_path) from None
    n = sum(1 for k in cams_npz if k.startswith("world_mat_") and not k.startswith("world_mat_inv"))
    if n == 0:
        raise DataError("has no world_mat_i arrays", path=npz_path)
    folder = image_folder(root, prefer_factor, prefixes=("image", "images"))
    if folder is None:
        raise DataError("no image/, images/ or images_N/ folder with images", path=root)
    img_dir, factor = folder
    paths = list_images(img_dir)
    if len(paths) != n:
        raise DataError(
            f"has {n} cameras but {img_dir.name}/ has {len(paths)} images",
            path=npz_path,
            hint="world_mat_i must match the sorted image names one to one",
        )
    Ks, views, scale_mats = [], [], []
    for i in range(n):
        try:
            P = cams_npz[f"world_mat_{i}"][:3, :4].astype(np.float64)
        except KeyError:
            raise DataError(f"has no world_mat_{i}", path=npz_path) from None
        K, view = decompose_projection(P)
        K[:2] /= factor  # the calibration is for the full-resolution images
        Ks.append(K), views.append(view)
        scale_mats.append(cams_npz.get(f"scale_mat_{i}", np.eye(4)).astype(np.float64))
    w, h = image_size(paths[0])
    cx, cy = Ks[0][0, 2], Ks[0][1, 2]
    if not (0 < cx < w and 0 < cy < h):
        raise DataError(
            f"principal point ({cx:.1f}, {cy:.1f}) lies outside the {w}x{h} images of "
            f"{img_dir.name}/ (assumed downscale factor {factor})",
            path=npz_path,
            hint="name the image folder images_<factor> after its downscale factor",
        )
    sizes = [image_size(p) for p in paths]
    cams = Cameras.create(
        np.stack(Ks), np.stack(views), [s[0] for s in sizes], [s[1] for s in sizes]
    )
    mask_folder = image_folder(root, factor, prefixes=("mask", "masks"))
    masks = None
    if mask_folder is not None and mask_folder[1] == factor:
        masks = match_masks(paths, mask_folder[0])
    return SceneSource(
        format="dtu",
        root=root,
        image_paths=paths,
        cameras=cams,
        mask_paths=masks,
        camera_file=npz_path,
        meta={
            "scale_mats": np.stack(scale_mats).tolist(),
            "image_dir": img_dir.name,
            "image_factor": factor,
        },
    )
