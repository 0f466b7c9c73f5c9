"""User masks of transient objects: a ``masks/`` folder of 0/1 images beside the photos.

A mask is 1 (or 255) where the photo shows the static scene and 0 on what training must ignore
(a passer-by, a raindrop on the lens): COLMAP's convention, so the same files serve SfM feature
extraction. Masks are named like their photo, with ``.png`` replacing or appended to its suffix
(``IMG_1.jpg`` -> ``IMG_1.png`` or ``IMG_1.jpg.png``), and must be lossless: every value 0, 1 or 255.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from recon.errors import DataError

MASK_FOLDER = "masks"


def find_mask_folder(image_dir: Path) -> Path | None:
    """``masks/`` inside or beside the folder holding the photos, or None."""
    for d in (Path(image_dir) / MASK_FOLDER, Path(image_dir).parent / MASK_FOLDER):
        if d.is_dir():
            return d
    return None


def mask_file(folder: Path, name: str) -> Path | None:
    """The mask of photo ``name`` in ``folder`` (``stem.png``, ``name.png`` or ``name``), or None."""
    for candidate in (Path(name).with_suffix(".png"), Path(f"{name}.png"), Path(name)):
        if (folder / candidate).is_file():
            return folder / candidate
    return None


def read_binary_mask(path: Path) -> Tensor:
    """[H, W] float mask in {0, 1} of a 0/1 or 0/255 image.

    Raises:
        DataError: unreadable, or holding other values (a JPEG or an anti-aliased mask).
    """
    try:
        with Image.open(path) as im:
            arr = np.asarray(im.convert("L"))  # [H, W] uint8
    except (OSError, ValueError) as err:
        raise DataError(f"cannot read the mask: {err}", path=path, hint="masks are 0/1 PNG images") from None
    other = np.setdiff1d(np.unique(arr), [0, 1, 255])
    if other.size:
        raise DataError(
            f"mask is not binary (it holds values such as {int(other[0])}, not only 0/1 or 0/255)",
            path=path,
            hint="save masks losslessly (PNG) with 0 = ignore, 1 or 255 = keep",
        )
    return torch.from_numpy((arr > 0).astype(np.float32))


def read_user_masks(folder: Path, names: list[str], sizes: list[tuple[int, int]]) -> list[Tensor]:
    """One [H, W] 0/1 mask per photo, checked against the photo's size.

    Args:
        folder: the masks folder.
        names: photo names (file names relative to their folder).
        sizes: (height, width) of each photo as trained on.

    Raises:
        DataError: naming the folder and photo whose mask is missing, or the mask file that has
            the wrong size or is not binary.
    """
    masks = []
    for name, (h, w) in zip(names, sizes, strict=True):
        path = mask_file(folder, name)
        if path is None:
            stem = Path(name).with_suffix(".png").name
            raise DataError(
                f"no mask for photo {name} (looked for {stem} and {name}.png)",
                path=folder,
                hint="give every photo a mask, or remove the masks folder / pass --masks none",
            )
        mask = read_binary_mask(path)
        if tuple(mask.shape) != (h, w):
            raise DataError(
                f"mask is {mask.shape[1]}x{mask.shape[0]} but photo {name} is {w}x{h}",
                path=path,
                hint="masks must have the size of their photo",
            )
        masks.append(mask)
    return masks


def save_mask_png(mask: Tensor, path: Path) -> None:
    """Writes an [H, W] mask in [0, 1] as an 8-bit PNG (255 = kept)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray((mask.detach().float().cpu().clamp(0, 1) * 255).round().byte().numpy()).save(path)
