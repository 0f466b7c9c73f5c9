"""Geometric consistency of depth maps across views (METHODS.md 5.4) and back-projection.

A pixel of view ``r`` with depth ``d`` is sent to world space, projected into view ``s``, given
the depth that view ``s``'s map holds there (bilinear over the neighbours that have one) and sent
back to view ``r``: it agrees with view ``s`` when it lands within ``reproj_px`` pixels of where it
started with a relative depth difference below ``rel_depth``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from recon.priors.patchmatch import pixel_rays


def _to_grid(uv: Tensor, h: int, w: int) -> Tensor:
    """Pixel coordinates (centre convention) -> grid_sample's [-1, 1] (align_corners=False)."""
    return torch.stack([uv[..., 0] / w * 2 - 1, uv[..., 1] / h * 2 - 1], dim=-1)


def backproject(depth: Tensor, K: Tensor, viewmat: Tensor) -> Tensor:
    """[H, W] depth -> [H, W, 3] world points."""
    h, w = depth.shape
    cam = pixel_rays(K.double(), h, w) * depth.double()[..., None]
    c2w = torch.linalg.inv(viewmat.double())
    return cam @ c2w[:3, :3].T + c2w[:3, 3]


def project(points: Tensor, K: Tensor, viewmat: Tensor) -> tuple[Tensor, Tensor]:
    """World points [..., 3] -> pixels [..., 2] and camera z [...]."""
    cam = points @ viewmat[:3, :3].double().T + viewmat[:3, 3].double()
    z = cam[..., 2]
    uv = cam @ K.double().T
    return uv[..., :2] / z.clamp_min(1e-12)[..., None], z


def consistency_check(
    depths: list[Tensor], Ks: Tensor, viewmats: Tensor, reproj_px: float = 1.0, rel_depth: float = 0.01
) -> tuple[list[Tensor], list[Tensor]]:
    """Forward-backward geometric consistency of depth maps (0 = no depth).

    Args:
        depths: per view [H, W] depth (camera z), 0 where unknown.
        Ks: [V, 3, 3] intrinsics matching the maps; viewmats: [V, 4, 4] world-to-camera.
        reproj_px: largest forward-backward reprojection error in pixels.
        rel_depth: largest relative depth difference.

    Returns:
        per view [H, W] int count of agreeing other views, and [H, W] mean reprojection error over
        them (inf where none agrees).
    """
    counts, errors = [], []
    v = len(depths)
    for r in range(v):
        d_r = depths[r]
        h, w = d_r.shape
        X = backproject(d_r, Ks[r], viewmats[r])  # [H, W, 3]
        ys, xs = torch.meshgrid(torch.arange(h) + 0.5, torch.arange(w) + 0.5, indexing="ij")
        pix = torch.stack([xs, ys], dim=-1).double()
        count = torch.zeros(h, w, dtype=torch.int64)
        err_sum = torch.zeros(h, w, dtype=torch.float64)
        for s in range(v):
            if s == r:
                continue
            d_s = depths[s]
            hs, ws = d_s.shape
            uv, _ = project(X, Ks[s], viewmats[s])  # [H, W, 2]
            grid = _to_grid(uv, hs, ws).float()[None]
            both = torch.stack([d_s, (d_s > 0).float()])[None]  # [1, 2, Hs, Ws]
            smp = F.grid_sample(both, grid, mode="bilinear", padding_mode="zeros", align_corners=False)[0]
            # Bilinear over the neighbours that have a depth (at least half the weight).
            ok_s = smp[1] > 0.5
            d_back = torch.where(ok_s, smp[0] / smp[1].clamp_min(1e-6), torch.zeros_like(smp[0])).double()
            rays_s = torch.cat([uv, torch.ones_like(uv[..., :1])], dim=-1) @ torch.linalg.inv(Ks[s].double()).T
            c2w_s = torch.linalg.inv(viewmats[s].double())
            X_back = (rays_s * d_back[..., None]) @ c2w_s[:3, :3].T + c2w_s[:3, 3]
            uv_r, z_r = project(X_back, Ks[r], viewmats[r])
            err = (uv_r - pix).norm(dim=-1)
            rel = (z_r - d_r.double()).abs() / d_r.double().clamp_min(1e-12)
            agree = ok_s & (d_r > 0) & (err < reproj_px) & (rel < rel_depth)
            count += agree.long()
            err_sum += torch.where(agree, err, torch.zeros_like(err))
        counts.append(count)
        errors.append(torch.where(count > 0, err_sum / count.clamp_min(1), torch.full_like(err_sum, math.inf)).float())
    return counts, errors


def warp_to_view(depth: Tensor, K_ref: Tensor, viewmat_ref: Tensor, K_src: Tensor, viewmat_src: Tensor,
                 width_src: int, height_src: int) -> tuple[Tensor, Tensor]:
    """Where each pixel of a reference view lands in a source view, given its depth.

    Pixel centres sit at +0.5 (gsplat convention); OpenCV cameras, world-to-camera viewmats.

    Args:
        depth: [H, W] camera-z depth of the reference view (<= 0 = unknown).
        K_ref, viewmat_ref: [3, 3], [4, 4] reference camera.
        K_src, viewmat_src: [3, 3], [4, 4] source camera.
        width_src, height_src: source image size.

    Returns:
        ([H, W, 2] grid in grid_sample's [-1, 1] coordinates (align_corners=False), [H, W] bool:
        known depth, in front of the source camera and inside its image).
    """
    uv, z = project(backproject(depth, K_ref, viewmat_ref), K_src, viewmat_src)  # float64: [H, W, 2], [H, W]
    grid = torch.stack([2 * uv[..., 0] / width_src - 1, 2 * uv[..., 1] / height_src - 1], -1).to(depth.dtype)
    valid = (depth > 0) & (z > 1e-8) & (grid.abs() < 1).all(-1)
    return grid, valid
