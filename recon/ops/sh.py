"""Real spherical harmonics up to degree 3 with the constants and sign convention of 3DGS.

Colours are ``sum_k coeffs[k] * Y_k(dir) + 0.5`` clamped at 0, with ``dir`` the unit vector from
the camera centre to the primitive centre (Inria 3DGS ``eval_sh`` / gsplat ``spherical_harmonics``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

C0 = 0.28209479177387814
C1 = 0.4886025119029199
C2 = (1.0925484305920792, -1.0925484305920792, 0.31539156525252005, -1.0925484305920792,
      0.5462742152960396)  # fmt: skip
C3 = (-0.5900435899266435, 2.890611442640554, -0.4570457994644658, 0.3731763325901154,
      -0.4570457994644658, 1.445305721320277, -0.5900435899266435)  # fmt: skip


def sh_basis(degree: int, dirs: Tensor) -> Tensor:
    """Real SH basis functions evaluated at unit directions.

    Args:
        degree: 0..3.
        dirs: [..., 3] unit directions.

    Returns:
        [..., (degree + 1) ** 2] basis values in the 3DGS coefficient order.
    """
    if not 0 <= degree <= 3:
        raise ValueError(f"sh_degree must be in 0..3, got {degree}")
    x, y, z = dirs.unbind(-1)
    out = [torch.full_like(x, C0)]
    if degree >= 1:
        out += [-C1 * y, C1 * z, -C1 * x]
    if degree >= 2:
        xx, yy, zz, xy, yz, xz = x * x, y * y, z * z, x * y, y * z, x * z
        out += [
            C2[0] * xy,
            C2[1] * yz,
            C2[2] * (2.0 * zz - xx - yy),
            C2[3] * xz,
            C2[4] * (xx - yy),
        ]
    if degree >= 3:
        out += [
            C3[0] * y * (3 * xx - yy),
            C3[1] * xy * z,
            C3[2] * y * (4 * zz - xx - yy),
            C3[3] * z * (2 * zz - 3 * xx - 3 * yy),
            C3[4] * x * (4 * zz - xx - yy),
            C3[5] * z * (xx - yy),
            C3[6] * x * (xx - 3 * yy),
        ]
    return torch.stack(out, dim=-1)


def camera_centers(viewmats: Tensor) -> Tensor:
    """World-space camera centres ``-R^T t`` of world-to-camera matrices [V, 4, 4] -> [V, 3]."""
    R = viewmats[:, :3, :3]
    t = viewmats[:, :3, 3]
    return -torch.einsum("vji,vj->vi", R, t)


def eval_sh_colors(coeffs: Tensor, degree: int, centers: Tensor, viewmats: Tensor) -> Tensor:
    """View-dependent colours of SH coefficients, one set per view.

    Args:
        coeffs: [N, K, C] coefficients with ``K >= (degree + 1) ** 2`` (only the first used).
        degree: SH degree to evaluate (0..3).
        centers: [N, 3] world-space primitive centres.
        viewmats: [V, 4, 4] world-to-camera matrices.

    Returns:
        [V, N, C] colours ``max(sum_k coeffs_k Y_k(dir) + 0.5, 0)``.
    """
    n_bases = (degree + 1) ** 2
    if coeffs.shape[-2] < n_bases:
        raise ValueError(
            f"colors: SH degree {degree} needs [N, >= {n_bases}, C] coefficients, "
            f"got {tuple(coeffs.shape)}"
        )
    dirs = centers[None, :, :] - camera_centers(viewmats)[:, None, :]  # [V, N, 3]
    dirs = F.normalize(dirs, dim=-1)
    basis = sh_basis(degree, dirs)  # [V, N, n_bases]
    colors = torch.einsum("vnk,nkc->vnc", basis, coeffs[:, :n_bases])
    return (colors + 0.5).clamp_min(0.0)
