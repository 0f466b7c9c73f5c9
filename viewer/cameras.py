"""Conversion between viser's camera state and :class:`recon.cameras.Cameras`.

viser describes a browser camera by ``wxyz`` and ``position`` such that
``P_world = R(wxyz) @ p_camera + position`` with camera axes in the OpenCV convention
(x right, y down, z forward), a *vertical* field of view ``fov`` in radians and the canvas
size. recon's :class:`~recon.cameras.Cameras` use the same axes but store world-to-camera
matrices, so the conversion is an inversion plus a pinhole ``K`` with square pixels and the
principal point at the image centre.

This module needs only numpy and torch, so ``recon render`` works without viser installed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from recon.cameras import Cameras
from recon.geometry import quat_to_rotmat_np, rotmat_to_quat_np


@dataclass(frozen=True)
class ViewPose:
    """A camera pose in viser's terms.

    Attributes:
        wxyz: [4] unit quaternion of the camera-to-world rotation (OpenCV camera axes).
        position: [3] camera centre in world coordinates.
        fov: vertical field of view in radians.
    """

    wxyz: np.ndarray
    position: np.ndarray
    fov: float


def fit_resolution(aspect: float, max_size: int) -> tuple[int, int]:
    """(width, height) with the given aspect ratio whose longer side is ``max_size`` pixels."""
    if not (aspect > 0 and math.isfinite(aspect)):
        aspect = 1.0
    max_size = max(int(max_size), 8)
    if aspect >= 1.0:
        return max_size, max(1, round(max_size / aspect))
    return max(1, round(max_size * aspect)), max_size


def pose_to_cameras(poses: ViewPose | list[ViewPose], width: int, height: int) -> Cameras:
    """Viser camera poses -> recon cameras of ``width`` x ``height`` pixels.

    Pixels are square; the principal point is the image centre, so a point on the optical axis
    lands at ``(width / 2, height / 2)``. ``fov`` spans the image height.
    """
    poses = [poses] if isinstance(poses, ViewPose) else list(poses)
    c2w = np.tile(np.eye(4), (len(poses), 1, 1))
    Ks = np.zeros((len(poses), 3, 3))
    for i, pose in enumerate(poses):
        c2w[i, :3, :3] = quat_to_rotmat_np(pose.wxyz)
        c2w[i, :3, 3] = np.asarray(pose.position, dtype=np.float64)
        f = 0.5 * height / math.tan(0.5 * float(pose.fov))
        Ks[i] = [[f, 0.0, 0.5 * width], [0.0, f, 0.5 * height], [0.0, 0.0, 1.0]]
    return Cameras.create(Ks, np.linalg.inv(c2w), width, height)


def cameras_to_poses(cameras: Cameras) -> list[ViewPose]:
    """recon cameras -> viser poses (vertical fov from ``fy`` and the image height)."""
    c2w = torch.linalg.inv(cameras.viewmats.double()).cpu().numpy()  # [N, 4, 4]
    fy = cameras.Ks[:, 1, 1].double().cpu().numpy()  # [N]
    heights = cameras.heights.cpu().numpy()
    return [
        ViewPose(
            wxyz=rotmat_to_quat_np(c2w[i, :3, :3]),
            position=c2w[i, :3, 3].copy(),
            fov=float(2.0 * math.atan(0.5 * heights[i] / fy[i])),
        )
        for i in range(len(cameras))
    ]


def look_at_pose(position: np.ndarray, target: np.ndarray, up: np.ndarray, fov: float) -> ViewPose:
    """A pose at ``position`` looking at ``target``, image-up as close to ``up`` as possible."""
    position = np.asarray(position, dtype=np.float64)
    z = np.asarray(target, dtype=np.float64) - position
    z /= np.linalg.norm(z)
    y = -np.asarray(up, dtype=np.float64)  # image y points down
    y = y - (y @ z) * z
    if np.linalg.norm(y) < 1e-9:  # up parallel to the view direction
        y = np.eye(3)[int(np.argmin(np.abs(z)))]
        y = y - (y @ z) * z
    y /= np.linalg.norm(y)
    x = np.cross(y, z)
    return ViewPose(rotmat_to_quat_np(np.stack([x, y, z], axis=1)), position, float(fov))
