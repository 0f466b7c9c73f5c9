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
    min_points: int = 10,
) -> Tensor:
    """Per-view [near, far] depth ranges for a plane sweep.

    With ``points`` (at least ``min_points``), a view's bounds come from the points in front of
    it: the 1st and 99th percentile of their positive depths, widened by ``margin`` (points
    behind the camera never count). Without points: a global ``near_far`` pair, else a range
    around the cameras' focus point when that point is in front of the view (from a third to
    three times its depth). A view left without bounds (no points in front of it, e.g. a camera
    of a 360-degree capture facing away from the object) takes those of the nearest view (by
    camera centre) that has some, widened by the distance ``d`` between the two centres: a point
    at distance ``z`` from that camera is within ``z +- d`` of this one. Near is finally kept at
    least ``1e-3 * far``.

    Args:
        viewmats: [V, 4, 4] world-to-camera.
        points: optional [P, 3] scene points (sparse SfM points, a visual hull).
        near_far: optional global bounds (LLFF ``poses_bounds``).
        margin: relative widening of point-derived bounds.
        min_points: points in front of a view needed to trust their depths.

    Returns:
        [V, 2] float32 bounds with 0 < near < far.
    """
    vm = viewmats.double()
    focus = focus_point(viewmats)
    bounds = [_own_bounds(vm[i], points, near_far, margin, min_points, focus) for i in range(len(vm))]
    centres = torch.linalg.inv(vm)[:, :3, 3]  # [V, 3]
    known = [i for i, b in enumerate(bounds) if b is not None]
    if not known:  # nothing in front of any camera: a range scaled by the camera spacing
        spread = float((centres - centres.mean(0)).norm(dim=-1).mean().clamp_min(1e-3))
        bounds = [(0.1 * spread, 10.0 * spread)] * len(vm)
    for i, b in enumerate(bounds):
        if b is None:
            dist = (centres[known] - centres[i]).norm(dim=-1)  # [K]
            j = int(dist.argmin())
            near, far = bounds[known[j]]
            d = float(dist[j])
            bounds[i] = (near - d, far + d)
    out = torch.empty(len(vm), 2, dtype=torch.float64)
    for i, (near, far) in enumerate(bounds):
        near = max(near, 1e-3 * far)
        out[i, 0], out[i, 1] = near, max(far, near * 1.01)
    return out.float()


def _own_bounds(vm: Tensor, points: Tensor | None, near_far: tuple[float, float] | None, margin: float,
                min_points: int, focus: Tensor) -> tuple[float, float] | None:
    """[near, far] of one view ([4, 4] world-to-camera) from its own evidence, or None."""
    if points is not None and points.shape[0] >= min_points:  # the scene is known: no guessing
        z = points.double() @ vm[2, :3] + vm[2, 3]  # [P] depths
        z = z[z > 0]
        if z.numel() < min_points:
            return None
        q = torch.quantile(z[:: max(1, z.numel() // 100_000)], torch.tensor([0.01, 0.99], dtype=torch.float64))
        return float(q[0]) * (1 - margin), float(q[1]) * (1 + margin)
    if near_far is not None:
        return near_far
    zf = float(vm[2, :3] @ focus + vm[2, 3])
    return (zf / 3.0, zf * 3.0) if zf > 0 else None
