"""Small cameras and random primitives shared by the ops tests."""

from __future__ import annotations

import math

import torch
from torch import Tensor


def look_at_viewmat(eye: list[float], target: list[float], dtype=torch.float64) -> Tensor:
    """World-to-camera [4, 4] (OpenCV axes) of a camera at ``eye`` looking at ``target``."""
    eye_t = torch.tensor(eye, dtype=dtype)
    fwd = torch.tensor(target, dtype=dtype) - eye_t
    fwd = fwd / fwd.norm()
    up = torch.tensor([0.0, -1.0, 0.0], dtype=dtype)
    if abs(float(fwd @ up)) > 0.99:
        up = torch.tensor([0.0, 0.0, 1.0], dtype=dtype)
    right = torch.linalg.cross(fwd, up)
    right = right / right.norm()
    down = torch.linalg.cross(fwd, right)
    R = torch.stack([right, down, fwd])  # rows: camera axes in world
    viewmat = torch.eye(4, dtype=dtype)
    viewmat[:3, :3] = R
    viewmat[:3, 3] = -R @ eye_t
    return viewmat


def intrinsics(width: int, height: int, fov_deg: float = 60.0, dtype=torch.float64) -> Tensor:
    f = 0.5 * width / math.tan(math.radians(fov_deg) / 2)
    return torch.tensor([[f, 0, width / 2], [0, f, height / 2], [0, 0, 1]], dtype=dtype)


def cameras(n_views: int, width: int, height: int, dist: float = 3.0, dtype=torch.float64):
    """``n_views`` cameras on a circle around the origin: (viewmats [V,4,4], Ks [V,3,3])."""
    vms, ks = [], []
    for v in range(n_views):
        a = 2 * math.pi * v / max(n_views, 1) * 0.15
        eye = [dist * math.sin(a), 0.2 * v, -dist * math.cos(a)]
        vms.append(look_at_viewmat(eye, [0.0, 0.0, 0.0], dtype))
        ks.append(intrinsics(width, height, dtype=dtype))
    return torch.stack(vms), torch.stack(ks)


def random_gaussians(n: int, dtype=torch.float64, scale: float = 0.15, spread: float = 0.6):
    g = torch.Generator().manual_seed(n)
    means = (torch.rand(n, 3, generator=g, dtype=dtype) - 0.5) * 2 * spread
    quats = torch.randn(n, 4, generator=g, dtype=dtype)
    scales = (0.3 + torch.rand(n, 3, generator=g, dtype=dtype)) * scale
    opacities = 0.2 + 0.7 * torch.rand(n, generator=g, dtype=dtype)
    return means, quats, scales, opacities
