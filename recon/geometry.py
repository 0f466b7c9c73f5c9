"""Rotations and quaternions shared by the ops, the primitives and the strategies.

Quaternions are ``(w, x, y, z)`` (scalar first, as 3DGS and gsplat) and need not be unit length:
every function normalises them first. Everything is differentiable and batched over leading dims.
"""

from __future__ import annotations

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


def random_quats(n: int, generator: torch.Generator | None = None) -> Tensor:
    """[n, 4] unit quaternions of uniformly random rotations (normalised 4D Gaussian samples)."""
    return normalize_quats(torch.randn(n, 4, generator=generator))


def random_rotations(n: int, generator: torch.Generator | None = None) -> Tensor:
    """[n, 3, 3] uniformly random rotation matrices."""
    return quat_to_rotmat(random_quats(n, generator))


__all__ = ["normalize_quats", "quat_to_rotmat", "random_quats", "random_rotations"]
