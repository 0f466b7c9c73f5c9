"""A parsed scene before its pixels are decoded: file lists, cameras and points.

Every format parser returns a :class:`SceneSource`; :meth:`SceneSource.load` decodes the images
(optionally a subset, downscaled, undistorted) into a :class:`SceneData`. ``recon data inspect``
stops at the source and reads image sizes from file headers only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch
from torch import Tensor

from recon.cameras import Cameras
from recon.data.images import (
    image_size,
    read_image,
    read_mask,
    undistort,
    undistorted_intrinsics,
    undistortion_grid,
)
from recon.data.scene import SceneData, check_cameras
from recon.errors import DataError

# Relative tolerance when a camera's size and an image's size differ by a uniform scale.
_ASPECT_TOL = 0.01


@dataclass
class SceneSource:
    """What a format parser found: paths, cameras (for the files as stored), points, split.

    Attributes:
        format: format name (``"colmap"``, ``"blender"``, ...).
        root: the folder the scene was read from.
        image_paths: N image files.
        names: N display names (defaults to paths relative to ``root``).
        cameras: N cameras or None (no poses yet). Their sizes may be nominal (e.g. the
            full-resolution calibration of a downscaled ``images_4`` folder): :meth:`fit_cameras`
            scales intrinsics to the sizes of the files. ``dist`` marks distorted images.
        mask_paths: N mask files or None.
        points: [P, 3] sparse points or None.
        point_colors: [P, 3] colours in [0, 1] or None.
        split: named index lists fixed by the format (Blender's train/test files) or None.
        meta: format-specific extras.
        camera_file: the file the cameras were read from, named in errors (default ``root``).

    Cameras with NaN/inf values or non-positive focal lengths are rejected here, for every
    format (:func:`recon.data.scene.check_cameras`).

    RGBA images are composited on the background when loaded (recorded in the scene's
    ``meta["background"]``, which training and evaluation then render on); when the format has
    no mask files and every image has an alpha channel, the alphas become the masks.
    """

    format: str
    root: Path
    image_paths: list[Path]
    cameras: Cameras | None
    names: list[str] | None = None
    mask_paths: list[Path] | None = None
    points: Tensor | None = None
    point_colors: Tensor | None = None
    split: dict[str, list[int]] | None = None
    meta: dict = field(default_factory=dict)
    camera_file: Path | None = None

    def __post_init__(self) -> None:
        n = len(self.image_paths)
        if self.names is None:
            self.names = [_relative_name(p, self.root) for p in self.image_paths]
        if self.cameras is not None and len(self.cameras) != n:
            raise ValueError(f"{len(self.cameras)} cameras for {n} images")
        if self.mask_paths is not None and len(self.mask_paths) != n:
            raise ValueError(f"{len(self.mask_paths)} masks for {n} images")
        if self.cameras is not None:
            check_cameras(self.cameras, self.names, self.camera_file or self.root)

    def __len__(self) -> int:
        return len(self.image_paths)

    def image_sizes(self, indices: Sequence[int] | None = None) -> list[tuple[int, int]]:
        """(width, height) of the image files from their headers (EXIF orientation applied)."""
        idx = range(len(self)) if indices is None else indices
        return [image_size(self.image_paths[i]) for i in idx]

    def fit_cameras(self, indices: Sequence[int] | None = None) -> Cameras | None:
        """The cameras at ``indices`` with intrinsics scaled to the sizes of the image files.

        Raises:
            DataError: when an image's size is not a uniform scaling of its camera's size.
        """
        if self.cameras is None:
            return None
        idx = list(range(len(self)) if indices is None else indices)
        cams = self.cameras[idx]
        sizes = self.image_sizes(idx)
        widths = torch.tensor([s[0] for s in sizes], dtype=torch.int64)
        heights = torch.tensor([s[1] for s in sizes], dtype=torch.int64)
        if bool((widths == cams.widths).all() and (heights == cams.heights).all()):
            return cams
        sx = widths.double() / cams.widths.double()
        sy = heights.double() / cams.heights.double()
        bad = ((sx - sy).abs() > _ASPECT_TOL * torch.maximum(sx, sy)).nonzero().flatten().tolist()
        if bad:
            j = bad[0]
            raise DataError(
                f"is {int(widths[j])}x{int(heights[j])} but its camera expects "
                f"{int(cams.widths[j])}x{int(cams.heights[j])} (not a uniform rescale)",
                path=self.image_paths[idx[j]],
                hint="check that the images belong to this calibration or pass --format explicitly",
            )
        return cams.with_sizes(widths, heights)

    def load(
        self,
        downscale: float = 1,
        background: tuple[float, float, float] = (1.0, 1.0, 1.0),
        indices: Sequence[int] | None = None,
        verbose: bool = True,
    ) -> SceneData:
        """Decodes the images (and masks) into a :class:`SceneData`.

        Args:
            downscale: box-downscale factor applied to every image; cameras follow exactly.
            background: RGB in [0, 1] for compositing RGBA images.
            indices: load only these views (in this order); the split is remapped to them.
            verbose: show a progress bar on stderr.

        Returns:
            The scene with undistorted pinhole cameras matching the decoded image sizes.
        """
        if downscale <= 0:
            raise DataError(f"downscale must be positive, got {downscale}")
        idx = list(range(len(self)) if indices is None else indices)
        for i in idx:
            if not 0 <= i < len(self):
                raise DataError(
                    f"view index {i} is out of range: the scene has {len(self)} views",
                    path=self.root,
                )
        cams = self.fit_cameras(idx)
        if cams is not None and downscale != 1:
            cams = cams.rescale(downscale)
        images: list[Tensor] = []
        masks: list[Tensor] = []
        alphas: list[Tensor] = []
        composited = False  # some image had an alpha channel and was composited on background
        # (new K, undistortion grid) per distinct distorted camera
        grids: dict[tuple, tuple[Tensor, Tensor]] = {}
        new_Ks = None if cams is None else cams.Ks.clone()  # [N, 3, 3] after undistortion
        for k, i in enumerate(progress(idx, f"reading {len(idx)} images", verbose)):
            rgb, alpha = read_image(self.image_paths[i], downscale=downscale, background=background)
            composited = composited or alpha is not None
            h, w = rgb.shape[:2]
            if cams is not None and (int(cams.widths[k]), int(cams.heights[k])) != (w, h):
                raise DataError(
                    f"decoded to {w}x{h}, which its header did not say", path=self.image_paths[i]
                )
            mask = alpha
            if self.mask_paths is not None:
                mask = read_mask(self.mask_paths[i], downscale=downscale)
                if mask.shape != (h, w):
                    raise DataError(
                        f"mask is {mask.shape[1]}x{mask.shape[0]} but its image is {w}x{h}",
                        path=self.mask_paths[i],
                    )
            if cams is not None and cams.dist is not None and bool(cams.dist[k].abs().gt(0).any()):
                key = (*cams.Ks[k].flatten().tolist(), *cams.dist[k].tolist(), w, h)
                if key not in grids:
                    K_new = undistorted_intrinsics(cams.Ks[k], cams.dist[k], w, h)
                    grids[key] = (K_new, undistortion_grid(cams.Ks[k], cams.dist[k], w, h, K_new))
                K_new, grid = grids[key]
                rgb = undistort(rgb, cams.Ks[k], cams.dist[k], grid=grid)
                if mask is not None:
                    mask = undistort(mask, cams.Ks[k], cams.dist[k], grid=grid)
                new_Ks[k] = K_new
            images.append(rgb)
            if mask is not None:
                (masks if self.mask_paths is not None else alphas).append(mask)
        if self.mask_paths is None and len(alphas) == len(images):
            masks = alphas  # every image had an alpha channel: it is the object mask
        if cams is not None and cams.dist is not None:
            cams = replace(cams, Ks=new_Ks, dist=None)
        meta = dict(self.meta)
        if composited:  # training and evaluation render on the colour the targets were composited on
            meta["background"] = [float(c) for c in background]
        if downscale != 1:
            meta["downscale"] = downscale
        return SceneData(
            images=images,
            cameras=cams,
            names=[self.names[i] for i in idx],
            format=self.format,
            root=self.root,
            masks=masks or None,
            points=self.points,
            point_colors=self.point_colors,
            split=_remap_split(self.split, idx),
            meta=meta,
        )


def _remap_split(split: dict[str, list[int]] | None, idx: list[int]) -> dict[str, list[int]] | None:
    if split is None:
        return None
    where = {old: new for new, old in enumerate(idx)}
    return {name: [where[i] for i in ids if i in where] for name, ids in split.items()}


def _relative_name(path: Path, root: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return path.name


def progress(items: list[int], description: str, verbose: bool):
    """``items`` wrapped in a transient rich progress bar on stderr when ``verbose`` and long."""
    if not verbose or len(items) < 8:
        return items
    from rich.console import Console
    from rich.progress import track

    return track(items, description=description, console=Console(stderr=True), transient=True)


def check_missing(paths: list[Path], listed_in: Path, hint: str) -> None:
    """Raises one :class:`DataError` naming the first missing files of ``paths``."""
    missing = [p for p in paths if not p.is_file()]
    if not missing:
        return
    shown = ", ".join(_relative_name(p, listed_in.parent) for p in missing[:3])
    more = f" and {len(missing) - 3} more" if len(missing) > 3 else ""
    raise DataError(
        f"{len(missing)} of {len(paths)} listed images do not exist: {shown}{more}",
        path=listed_in,
        hint=hint,
    )
