"""The one in-memory scene every loader returns."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch
from torch import Tensor

from recon.cameras import Cameras
from recon.errors import DataError


def check_cameras(cameras: Cameras, names: Sequence[str], path: str | Path) -> None:
    """Rejects cameras that cannot be rendered: NaN/inf intrinsics, pose or distortion, or a
    focal length that is not positive.

    Args:
        cameras: N cameras.
        names: N view names (frame file names), the first bad one is named.
        path: the file the cameras were read from.

    Raises:
        DataError: naming ``path``, the first bad view, what is wrong and how many views are bad.
    """
    Ks, viewmats = cameras.Ks, cameras.viewmats  # [N, 3, 3], [N, 4, 4]
    bad_K = ~torch.isfinite(Ks).flatten(1).all(1)
    bad_pose = ~torch.isfinite(viewmats).flatten(1).all(1)
    bad_dist = torch.zeros_like(bad_K) if cameras.dist is None else ~torch.isfinite(cameras.dist).all(1)
    bad_focal = ~bad_K & ((Ks[:, 0, 0] <= 0) | (Ks[:, 1, 1] <= 0))
    bad = bad_K | bad_pose | bad_dist | bad_focal  # [N]
    if not bool(bad.any()):
        return
    i = int(bad.nonzero()[0])
    fx, fy, cx, cy = (float(v) for v in (Ks[i, 0, 0], Ks[i, 1, 1], Ks[i, 0, 2], Ks[i, 1, 2]))
    what = []
    if bool(bad_K[i]) or bool(bad_focal[i]):
        reason = "not finite" if bool(bad_K[i]) else "focal length not positive"
        what.append(f"intrinsics {reason} (fx={fx:g} fy={fy:g} cx={cx:g} cy={cy:g})")
    if bool(bad_pose[i]):
        what.append("pose not finite (NaN/inf)")
    if bool(bad_dist[i]):
        what.append("distortion not finite")
    more = int(bad.sum()) - 1
    raise DataError(
        f"camera of view {names[i]} has {' and '.join(what)}"
        + (f"; {more} more views are bad" if more else ""),
        path=path,
        hint="fix or remove these frames",
    )


@dataclass
class SceneData:
    """A multi-view scene: images, cameras, optional masks, depths and sparse points.

    All views of the scene are here (train and test alike); a protocol in
    :mod:`recon.data.splits` chooses which indices train and which evaluate.

    Attributes:
        images: one [H, W, 3] float32 tensor in [0, 1] per view (sizes may differ).
        cameras: N cameras, undistorted pinholes matching ``images``. ``None`` only for a plain
            photo folder whose poses are still unknown (``has_poses`` is False).
        names: N image names (file names relative to the image folder).
        format: the format that was read (``"colmap"``, ``"blender"``, ...).
        root: the folder the scene was read from.
        masks: optional one [H, W] float32 tensor in [0, 1] per view (1 = object).
        user_masks: optional one [H, W] float32 0/1 tensor per view: 0 on transients the user
            masked out (a ``masks/`` folder beside photos, :mod:`recon.wild.masks`), ignored by the
            training loss and stereo; unlike ``masks`` they say nothing about the object.
        depths: optional one [H, W] float32 tensor per view (camera z, 0 = unknown).
        points: optional [P, 3] float32 sparse points (world).
        point_colors: optional [P, 3] float32 colours in [0, 1].
        split: protocol-defined train/test indices when the format fixes them (Blender's
            train/test files), else None.
        scene_scale: radius of the cameras around their centre (used for learning rates).
        meta: format-specific extras (near/far bounds, scale matrices, ...).
    """

    images: list[Tensor]
    cameras: Cameras | None
    names: list[str]
    format: str
    root: Path
    masks: list[Tensor] | None = None
    depths: list[Tensor] | None = None
    user_masks: list[Tensor] | None = None
    points: Tensor | None = None
    point_colors: Tensor | None = None
    split: dict[str, list[int]] | None = None
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        n = len(self.images)
        if len(self.names) != n:
            raise ValueError(f"{len(self.names)} names for {n} images")
        if self.cameras is not None and len(self.cameras) != n:
            raise ValueError(f"{len(self.cameras)} cameras for {n} images")
        for name, lst in (("masks", self.masks), ("depths", self.depths), ("user_masks", self.user_masks)):
            if lst is not None and len(lst) != n:
                raise ValueError(f"{len(lst)} {name} for {n} images")
        if self.cameras is not None:
            check_cameras(self.cameras, self.names, self.root)

    def __len__(self) -> int:
        return len(self.images)

    @property
    def has_poses(self) -> bool:
        return self.cameras is not None

    @property
    def num_points(self) -> int:
        return 0 if self.points is None else int(self.points.shape[0])

    @property
    def scene_scale(self) -> float:
        """1.1 x the largest camera distance from the mean camera centre (3DGS convention)."""
        if self.cameras is None or len(self.cameras) == 0:
            return 1.0
        c = self.cameras.centers.double()
        return float(1.1 * (c - c.mean(0)).norm(dim=-1).max().clamp_min(1e-6))

    def subset(self, indices: list[int]) -> "SceneData":
        """The views at ``indices`` (points are kept: filter them yourself if they leak test views)."""
        pick = lambda lst: None if lst is None else [lst[i] for i in indices]  # noqa: E731
        return replace(
            self,
            images=pick(self.images),
            names=pick(self.names),
            cameras=None if self.cameras is None else self.cameras[list(indices)],
            masks=pick(self.masks),
            depths=pick(self.depths),
            user_masks=pick(self.user_masks),
            split=None,
        )

    def image_batch(self, indices: list[int] | None = None) -> Tensor:
        """[V, H, W, 3] stacked images (views must share a size)."""
        idx = range(len(self)) if indices is None else indices
        return torch.stack([self.images[i] for i in idx])
