"""A ray-cast test scene with exact depth: a value-noise textured sphere in front of a textured
back wall, seen by cameras on an arc looking at the sphere. Independent of recon's renderers."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from recon.cameras import Cameras

SPHERE_C = torch.tensor([0.0, 0.0, 0.0], dtype=torch.float64)
SPHERE_R = 1.0
WALL_Z = 2.5  # plane z = WALL_Z behind the sphere


def look_at(eye: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """[4, 4] world-to-camera (OpenCV) for a camera at eye looking at target, world -y up."""
    fwd = (target - eye) / (target - eye).norm()
    up = torch.tensor([0.0, -1.0, 0.0], dtype=torch.float64)
    right = torch.linalg.cross(fwd, up)
    right = right / right.norm()
    down = torch.linalg.cross(fwd, right)
    R = torch.stack([right, down, fwd])  # rows: camera axes in world
    m = torch.eye(4, dtype=torch.float64)
    m[:3, :3] = R
    m[:3, 3] = -R @ eye
    return m


def make_views(num_views: int = 3, width: int = 96, height: int = 72, arc_deg: float = 30.0,
               seed: int = 0, textured: bool = True):
    """Images [V, H, W, 3], Cameras, exact depth [V, H, W] and object masks [V, H, W]."""
    gen = torch.Generator().manual_seed(seed)
    noise = [torch.rand(1, 3, n, n, n, generator=gen) for n in (8, 24, 64)]
    f = 0.9 * width
    K = torch.tensor([[f, 0, width / 2], [0, f, height / 2], [0, 0, 1]], dtype=torch.float64)
    views, images, depths, masks = [], [], [], []
    for i in range(num_views):
        a = math.radians(-arc_deg / 2 + arc_deg * i / max(1, num_views - 1))
        eye = torch.tensor([4.0 * math.sin(a), -0.3, -4.0 * math.cos(a)], dtype=torch.float64)
        vm = look_at(eye, SPHERE_C)
        views.append(vm)
        ys, xs = torch.meshgrid(torch.arange(height) + 0.5, torch.arange(width) + 0.5, indexing="ij")
        pix = torch.stack([xs, ys, torch.ones_like(xs)], -1).double()
        dirs_c = pix @ torch.linalg.inv(K).T  # z = 1
        R = vm[:3, :3]
        dirs_w = dirs_c @ R  # R^T d
        # sphere: |eye + t d - c|^2 = r^2
        oc = eye - SPHERE_C
        a2 = (dirs_w * dirs_w).sum(-1)
        b = 2 * (dirs_w @ oc)
        c = oc @ oc - SPHERE_R**2
        disc = b * b - 4 * a2 * c
        t_s = (-b - disc.clamp_min(0).sqrt()) / (2 * a2)
        hit_s = (disc > 0) & (t_s > 0)
        t_w = (WALL_Z - eye[2]) / dirs_w[..., 2]
        t = torch.where(hit_s, t_s, t_w)  # z-depth equals t because dirs_c has z = 1
        X = eye + t[..., None] * dirs_w
        q = (X / 6.0).clamp(-1, 1)  # texture coordinates
        grid = q.float()[None, None]  # [1, 1, H, W, 3]
        col = sum(F.grid_sample(n, grid, align_corners=True)[0, :, 0] * w
                  for n, w in zip(noise, (0.3, 0.35, 0.35)))  # [3, H, W]
        if not textured:
            col = torch.full_like(col, 0.5)
        images.append(col.permute(1, 2, 0).clamp(0, 1))
        depths.append(t.float())
        masks.append(hit_s.float())
    cams = Cameras.create(K.expand(num_views, 3, 3), torch.stack(views), width, height)
    return torch.stack(images), cams, torch.stack(depths), torch.stack(masks)
