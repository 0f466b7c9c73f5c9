"""Where the scene is: the cameras' focus point and per-view depth ranges for stereo."""

from __future__ import annotations

import torch
from torch import Tensor


def focus_point(viewmats: Tensor) -> Tensor:
    """The world point closest (least squares) to every camera's optical axis.

    Args:
        viewmats: [V, 4, 4] world-to-camera transforms (OpenCV, +z forward).

    Returns:
        [3] float64 point. For (near) parallel axes, the point one mean camera spacing in front of
        the mean camera centre.
    """
    c2w = torch.linalg.inv(viewmats.double())
    centres, dirs = c2w[:, :3, 3], c2w[:, :3, 2]  # [V, 3]
    eye = torch.eye(3, dtype=torch.float64)
    P = eye - dirs[:, :, None] * dirs[:, None, :]  # [V, 3, 3] projectors orthogonal to each axis
    A = P.sum(0)
    b = (P @ centres[:, :, None]).sum(0)[:, 0]
    if torch.linalg.cond(A) < 1e4:
        x = torch.linalg.solve(A, b)
        # Only accept a point in front of the cameras.
        if bool((((x - centres) * dirs).sum(-1) > 0).all()):
            return x
    spread = (centres - centres.mean(0)).norm(dim=-1).mean().clamp_min(1e-3)
    return centres.mean(0) + dirs.mean(0) / dirs.mean(0).norm().clamp_min(1e-9) * 4 * spread


def depth_bounds(
    viewmats: Tensor,
    points: Tensor | None = None,
    near_far: tuple[float, float] | None = None,
    margin: float = 0.2,
) -> Tensor:
    """Per-view [near, far] depth ranges for a plane sweep.

    Preference order: ``points`` (the 1st and 99th percentile of their depths in the view, widened
    by ``margin``), a global ``near_far`` pair, else a range around the cameras' focus point
    (from a third to three times its depth).

    Args:
        viewmats: [V, 4, 4] world-to-camera.
        points: optional [P, 3] scene points (sparse SfM points, a visual hull).
        near_far: optional global bounds (LLFF ``poses_bounds``).

    Returns:
        [V, 2] float32 bounds with 0 < near < far.
    """
    v = viewmats.shape[0]
    out = torch.empty(v, 2, dtype=torch.float64)
    vm = viewmats.double()
    focus = focus_point(viewmats)
    for i in range(v):
        z_pts = None
        if points is not None and points.shape[0] >= 10:
            z = points.double() @ vm[i, :3, :3].T[:, 2] + vm[i, 2, 3]
            z = z[z > 0]
            if z.numel() >= 10:
                z_pts = torch.quantile(z[:: max(1, z.numel() // 100_000)], torch.tensor([0.01, 0.99], dtype=torch.float64))
        if z_pts is not None:
            near, far = float(z_pts[0]) * (1 - margin), float(z_pts[1]) * (1 + margin)
        elif near_far is not None:
            near, far = near_far
        else:
            zf = float(vm[i, 2, :3] @ focus + vm[i, 2, 3])
            near, far = zf / 3.0, zf * 3.0
        near = max(near, 1e-3 * far)
        out[i] = torch.tensor([near, max(far, near * 1.01)])
    return out.float()
