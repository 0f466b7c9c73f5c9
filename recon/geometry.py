"""Rotations and quaternions shared by the ops, the strategies, the data readers, export and the viewer.

Quaternions are ``(w, x, y, z)`` (scalar first, as 3DGS, gsplat, COLMAP and viser) and need not be
unit length: every function normalises them first. The torch functions are differentiable and
batched over leading dims; the ``*_np`` variants take and return float64 numpy arrays (file
formats, the viewer) and run the same torch code.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor


def normalize_quats(quats: Tensor) -> Tensor:
    """Unit quaternions.

    Args:
        quats: [..., 4] quaternions ``(w, x, y, z)`` of non-zero norm.

    Returns:
        [..., 4] the same rotations with unit norm.
    """
    return F.normalize(quats, p=2, dim=-1)


def quat_to_rotmat(quats: Tensor) -> Tensor:
    """Rotation matrices from (possibly unnormalised) quaternions ``(w, x, y, z)``.

    Args:
        quats: [..., 4] quaternions, normalised inside.

    Returns:
        [..., 3, 3] rotation matrices (``R @ v`` rotates ``v``).
    """
    w, x, y, z = normalize_quats(quats).unbind(-1)
    rows = [
        1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
        2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
        2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y),
    ]  # fmt: skip
    return torch.stack(rows, dim=-1).reshape(quats.shape[:-1] + (3, 3))


def rotmat_to_quat(R: Tensor) -> Tensor:
    """Unit quaternions ``(w, x, y, z)`` with ``w >= 0`` of rotation matrices (Shepperd's method).

    Of the four algebraically equal forms, each element takes the one dividing by the largest of
    ``4 w^2, 4 x^2, 4 y^2, 4 z^2``, so it stays accurate near 180-degree turns.

    Args:
        R: [..., 3, 3] rotation matrices.

    Returns:
        [..., 4] unit quaternions, ``quat_to_rotmat(rotmat_to_quat(R)) == R``.
    """
    r = R.unbind(-2)
    (r00, r01, r02), (r10, r11, r12), (r20, r21, r22) = (row.unbind(-1) for row in r)
    four_sq = torch.stack([1 + r00 + r11 + r22, 1 + r00 - r11 - r22, 1 - r00 + r11 - r22, 1 - r00 - r11 + r22], -1)
    candidates = torch.stack([  # row k: the quaternion times 4 q_k (k = w, x, y, z), its k-th form
        torch.stack([four_sq[..., 0], r21 - r12, r02 - r20, r10 - r01], -1),
        torch.stack([r21 - r12, four_sq[..., 1], r01 + r10, r02 + r20], -1),
        torch.stack([r02 - r20, r01 + r10, four_sq[..., 2], r12 + r21], -1),
        torch.stack([r10 - r01, r02 + r20, r12 + r21, four_sq[..., 3]], -1),
    ], -2)  # fmt: skip  # [..., 4, 4]
    best = four_sq.argmax(-1)[..., None, None]  # [..., 1, 1]
    q = normalize_quats(torch.take_along_dim(candidates, best, dim=-2).squeeze(-2))  # [..., 4]
    return torch.where(q[..., :1] < 0, -q, q)


def quat_to_rotmat_np(quats: np.ndarray) -> np.ndarray:
    """:func:`quat_to_rotmat` on numpy: [..., 4] quaternions ``(w, x, y, z)`` -> [..., 3, 3] float64."""
    return quat_to_rotmat(torch.from_numpy(np.asarray(quats, dtype=np.float64))).numpy()


def rotmat_to_quat_np(R: np.ndarray) -> np.ndarray:
    """:func:`rotmat_to_quat` on numpy: [..., 3, 3] rotations -> [..., 4] float64 unit quaternions, ``w >= 0``."""
    return rotmat_to_quat(torch.from_numpy(np.asarray(R, dtype=np.float64))).numpy()


def random_quats(n: int, generator: torch.Generator | None = None) -> Tensor:
    """[n, 4] unit quaternions of uniformly random rotations (normalised 4D Gaussian samples)."""
    return normalize_quats(torch.randn(n, 4, generator=generator))


def random_rotations(n: int, generator: torch.Generator | None = None) -> Tensor:
    """[n, 3, 3] uniformly random rotation matrices."""
    return quat_to_rotmat(random_quats(n, generator))


__all__ = [
    "normalize_quats",
    "quat_to_rotmat",
    "quat_to_rotmat_np",
    "random_quats",
    "random_rotations",
    "rotmat_to_quat",
    "rotmat_to_quat_np",
]
