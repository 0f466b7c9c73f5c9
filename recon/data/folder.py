"""A plain folder of photos: images only, no poses (``recon data sfm`` recovers them)."""

from __future__ import annotations

from pathlib import Path

from recon.data.images import list_images
from recon.data.source import SceneSource
from recon.errors import DataError


def photo_folder(root: Path) -> Path | None:
    """``root`` or ``root/images`` when it directly holds images, else None."""
    for d in (root, root / "images"):
        if d.is_dir() and list_images(d):
            return d
    return None


def parse_folder(root: Path) -> SceneSource:
    """Parses a photo folder; the scene has ``cameras=None`` and ``meta["needs_sfm"] = True``.

    ``meta["image_dir"]`` is the folder holding the photos (``root`` or ``root/images``) and the
    names are relative to it, as SfM names them.
    """
    folder = photo_folder(root)
    if folder is None:
        raise DataError("holds no images", path=root, hint="point to a folder of .jpg/.png photos")
    paths = list_images(folder)
    return SceneSource(
        format="folder",
        root=root,
        image_paths=paths,
        names=[p.name for p in paths],
        cameras=None,
        meta={"needs_sfm": True, "image_dir": str(folder)},
    )
