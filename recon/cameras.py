"""Pinhole cameras in the OpenCV convention, and conversions from the other common conventions.

Conventions (the same as gsplat and COLMAP):

* ``viewmats`` [N, 4, 4] map world to camera coordinates; the camera looks down +z, x points
  right and y points down in the image.
* ``Ks`` [N, 3, 3] are pinhole intrinsics in pixels. Pixel ``(i, j)`` covers ``[i, i+1) x [j, j+1)``,
  so its centre is at ``(i + 0.5, j + 0.5)``; a camera whose principal point is the image centre has
  ``cx = width / 2``.
* ``dist`` [N, 5] optional OpenCV radial-tangential distortion ``(k1, k2, p1, p2, k3)``. Renderers
  assume undistorted images; loaders undistort (see :func:`recon.data.images.undistort`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import torch
from torch import Tensor

# Column permutations (as right-multiplied diagonal/permutation matrices) mapping camera axes of
# other conventions to OpenCV's (x right, y down, z forward).
_GL_TO_CV = torch.diag(torch.tensor([1.0, -1.0, -1.0, 1.0], dtype=torch.float64))


@dataclass(frozen=True)
class Cameras:
    """A batch of pinhole cameras.

    Attributes:
        Ks: [N, 3, 3] intrinsics in pixels.
        viewmats: [N, 4, 4] world-to-camera transforms (OpenCV axes).
        widths: [N] image widths in pixels (int64).
        heights: [N] image heights in pixels (int64).
        dist: [N, 5] OpenCV distortion ``(k1, k2, p1, p2, k3)`` or None for ideal pinholes.
    """

    Ks: Tensor
    viewmats: Tensor
    widths: Tensor
    heights: Tensor
    dist: Tensor | None = None

    def __post_init__(self) -> None:
        n = self.Ks.shape[0]
        if self.Ks.shape != (n, 3, 3):
            raise ValueError(f"Ks must be [N, 3, 3], got {tuple(self.Ks.shape)}")
        if self.viewmats.shape != (n, 4, 4):
            raise ValueError(f"viewmats must be [{n}, 4, 4], got {tuple(self.viewmats.shape)}")
        if self.widths.shape != (n,) or self.heights.shape != (n,):
            raise ValueError("widths and heights must be [N]")
        if self.dist is not None and self.dist.shape != (n, 5):
            raise ValueError(f"dist must be [{n}, 5], got {tuple(self.dist.shape)}")

    # ------------------------------------------------------------------ construction
    @classmethod
    def create(
        cls,
        Ks: Tensor | np.ndarray,
        viewmats: Tensor | np.ndarray,
        width: int | Tensor | np.ndarray | list[int],
        height: int | Tensor | np.ndarray | list[int],
        dist: Tensor | np.ndarray | None = None,
    ) -> "Cameras":
        """Builds cameras from arrays; scalar ``width``/``height`` apply to every camera."""
        Ks = torch.as_tensor(np.asarray(Ks), dtype=torch.float32).reshape(-1, 3, 3)
        viewmats = torch.as_tensor(np.asarray(viewmats), dtype=torch.float32).reshape(-1, 4, 4)
        n = Ks.shape[0]
        widths = torch.as_tensor(np.broadcast_to(np.asarray(width), (n,)).copy(), dtype=torch.int64)
        heights = torch.as_tensor(np.broadcast_to(np.asarray(height), (n,)).copy(), dtype=torch.int64)
        if dist is not None:
            d = torch.as_tensor(np.asarray(dist), dtype=torch.float32).reshape(n, -1)
            dist = torch.nn.functional.pad(d, (0, 5 - d.shape[1])) if d.shape[1] < 5 else d[:, :5]
            if not bool(dist.abs().gt(0).any()):
                dist = None
        return cls(Ks=Ks, viewmats=viewmats, widths=widths, heights=heights, dist=dist)

    @classmethod
    def from_opencv_c2w(cls, c2w, Ks, width, height, dist=None) -> "Cameras":
        """Camera-to-world matrices with OpenCV axes (x right, y down, z forward)."""
        c2w = _as_4x4(c2w)
        return cls.create(Ks, torch.linalg.inv(c2w), width, height, dist)

    @classmethod
    def from_opengl_c2w(cls, c2w, Ks, width, height, dist=None) -> "Cameras":
        """Camera-to-world matrices with OpenGL/Blender/nerfstudio axes (x right, y up, z back)."""
        c2w = _as_4x4(c2w) @ _GL_TO_CV
        return cls.create(Ks, torch.linalg.inv(c2w), width, height, dist)

    @classmethod
    def from_llff(cls, poses, Ks, width, height) -> "Cameras":
        """LLFF camera-to-world [N, 3, 4] whose rotation columns are (down, right, back)."""
        p = torch.as_tensor(np.asarray(poses), dtype=torch.float64)[..., :3, :4]
        down, right, back, t = p[..., 0], p[..., 1], p[..., 2], p[..., 3]
        c2w_cv = torch.stack([right, down, -back, t], dim=-1)
        return cls.from_opencv_c2w(c2w_cv, Ks, width, height)

    @classmethod
    def from_projection(cls, P, width, height) -> "Cameras":
        """Projection matrices P = K [R | t] ([N, 3, 4], any overall scale or sign)."""
        P = np.asarray(P, dtype=np.float64).reshape(-1, 3, 4)
        Ks, viewmats = zip(*(decompose_projection(p) for p in P))
        return cls.create(np.stack(Ks), np.stack(viewmats), width, height)

    # ------------------------------------------------------------------ accessors
    def __len__(self) -> int:
        return self.Ks.shape[0]

    def __getitem__(self, idx) -> "Cameras":
        if isinstance(idx, int):
            idx = [idx]
        # host-side index: it selects rows of the CPU sizes and of Ks / viewmats on any device
        idx = torch.as_tensor(idx, dtype=torch.long, device="cpu") if not isinstance(idx, slice) else idx
        return Cameras(
            Ks=self.Ks[idx],
            viewmats=self.viewmats[idx],
            widths=self.widths[idx],
            heights=self.heights[idx],
            dist=None if self.dist is None else self.dist[idx],
        )

    def to(self, device: torch.device | str) -> "Cameras":
        return Cameras(
            Ks=self.Ks.to(device),
            viewmats=self.viewmats.to(device),
            widths=self.widths,
            heights=self.heights,
            dist=None if self.dist is None else self.dist.to(device),
        )

    @property
    def device(self) -> torch.device:
        return self.Ks.device

    @property
    def width(self) -> int:
        """The common image width; raises if the cameras have different sizes."""
        return _uniform(self.widths, "width")

    @property
    def height(self) -> int:
        """The common image height; raises if the cameras have different sizes."""
        return _uniform(self.heights, "height")

    @property
    def camtoworlds(self) -> Tensor:
        """[N, 4, 4] camera-to-world transforms (OpenCV axes)."""
        return torch.linalg.inv(self.viewmats.double()).to(self.viewmats.dtype)

    @property
    def centers(self) -> Tensor:
        """[N, 3] camera centres in world coordinates."""
        return self.camtoworlds[:, :3, 3]

    def opengl_c2w(self) -> Tensor:
        """[N, 4, 4] camera-to-world transforms in the OpenGL/Blender convention."""
        return (self.camtoworlds.double() @ _GL_TO_CV).to(self.viewmats.dtype)

    # ------------------------------------------------------------------ geometry
    def project(self, points: Tensor) -> tuple[Tensor, Tensor]:
        """Projects world points [P, 3] into every camera (ideal pinhole, no distortion).

        Returns:
            pixels [N, P, 2] (pixel-centre convention above) and depths [N, P] (camera z).
        """
        pts = points.to(self.viewmats.dtype)
        cam = pts @ self.viewmats[:, :3, :3].transpose(1, 2) + self.viewmats[:, None, :3, 3]
        z = cam[..., 2]
        uv = cam @ self.Ks.transpose(1, 2)
        return uv[..., :2] / uv[..., 2:3], z

    def rescale(self, factor: float) -> "Cameras":
        """Cameras for images downscaled by ``factor`` (e.g. 4 for ``images_4``)."""
        Ks = self.Ks.clone()
        Ks[:, :2, :] /= factor
        widths = torch.div(self.widths, factor, rounding_mode="floor").to(torch.int64)
        heights = torch.div(self.heights, factor, rounding_mode="floor").to(torch.int64)
        return replace(self, Ks=Ks, widths=widths, heights=heights)

    def with_sizes(self, widths, heights) -> "Cameras":
        """Same cameras with image sizes replaced and intrinsics scaled to match."""
        widths = torch.as_tensor(widths, dtype=torch.int64).expand(len(self)).clone()
        heights = torch.as_tensor(heights, dtype=torch.int64).expand(len(self)).clone()
        Ks = self.Ks.clone()
        Ks[:, 0, :] *= (widths / self.widths).to(Ks.dtype)[:, None]
        Ks[:, 1, :] *= (heights / self.heights).to(Ks.dtype)[:, None]
        return replace(self, Ks=Ks, widths=widths, heights=heights)


def decompose_projection(P: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Splits a 3x4 projection matrix into K (positive diagonal, K[2,2]=1) and a 4x4 viewmat."""
    M = P[:, :3]
    # RQ decomposition via QR of the row-reversed transpose.
    flip = np.eye(3)[::-1]
    q, r = np.linalg.qr((flip @ M).T)
    K = flip @ r.T @ flip
    R = flip @ q.T
    signs = np.diag(np.sign(np.diag(K)))
    K, R = K @ signs, signs @ R
    scale = K[2, 2]
    K = K / scale
    t = np.linalg.solve(K, P[:, 3] / scale)
    if np.linalg.det(R) < 0:  # P was defined up to a negative scale
        R, t = -R, -t
    viewmat = np.eye(4)
    viewmat[:3, :3], viewmat[:3, 3] = R, t
    return K, viewmat


def intrinsics_matrix(fx: float, fy: float, cx: float, cy: float) -> np.ndarray:
    """[3, 3] pinhole intrinsics."""
    return np.array([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]])


def _as_4x4(m) -> Tensor:
    m = torch.as_tensor(np.asarray(m), dtype=torch.float64)
    if m.shape[-2:] == (4, 4):
        return m.reshape(-1, 4, 4)
    if m.shape[-2:] == (3, 4):
        bottom = torch.tensor([0.0, 0.0, 0.0, 1.0], dtype=torch.float64).expand(*m.shape[:-2], 1, 4)
        return torch.cat([m, bottom], dim=-2).reshape(-1, 4, 4)
    raise ValueError(f"expected [N, 3, 4] or [N, 4, 4] matrices, got {tuple(m.shape)}")


def _uniform(values: Tensor, name: str) -> int:
    if values.numel() == 0:
        raise ValueError(f"no cameras: {name} is undefined")
    if bool((values != values[0]).any()):
        raise ValueError(f"cameras have different image {name}s; index them one size at a time")
    return int(values[0])
