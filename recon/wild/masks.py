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


def write_colmap_masks(mask_dir: Path, image_dir: Path, names: list[str], out_dir: Path) -> Path:
    """Checks the user masks of photos ``names`` in ``image_dir`` and writes them as COLMAP wants
    them for feature extraction (``out_dir/<name>.png``, 0 = no features); returns ``out_dir``."""
    from recon.data.images import image_size

    sizes = [image_size(Path(image_dir) / n)[::-1] for n in names]  # (h, w)
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, mask in zip(names, read_user_masks(mask_dir, names, sizes), strict=True):
        save_mask_png(mask, out_dir / f"{name}.png")
    return out_dir


def undistort_masks(model_dir: Path, colmap_masks: Path, names: list[str], out_dir: Path) -> None:
    """Undistorts COLMAP masks (``colmap_masks/<name>.png``) like the photos of the model in
    ``model_dir`` and writes them, binary again, as ``out_dir/<name>.png``."""
    import shutil
    import tempfile

    import pycolmap

    work = Path(tempfile.mkdtemp(dir=out_dir.parent, prefix=".masks-"))
    try:
        as_photos = work / "in"
        as_photos.mkdir()
        for name in names:  # named like the photos, so the model finds them; PNG bytes whatever the suffix
            Image.open(colmap_masks / f"{name}.png").convert("RGB").save(as_photos / name, format="PNG")
        pycolmap.undistort_images(work / "out", model_dir, as_photos, image_names=names, output_type="COLMAP")
        for name in names:
            with Image.open(work / "out" / "images" / name) as im:  # may be re-encoded lossy: threshold
                mask = torch.from_numpy((np.asarray(im.convert("L")) > 127).astype(np.float32))
            save_mask_png(mask, out_dir / f"{name}.png")
    finally:
        shutil.rmtree(work, ignore_errors=True)
