"""Nearest-neighbour distances used to size primitives at initialisation (simple-knn's distCUDA2)."""

from __future__ import annotations

import torch
from torch import Tensor


def mean_sq_knn_dist(points: Tensor, k: int = 3, chunk: int = 2048) -> Tensor:
    """Mean squared distance of every point to its ``k`` nearest other points.

    Args:
        points: [P, 3] positions.
        k: neighbours (3 as in 3DGS).
        chunk: rows per distance block (bounds memory at ``chunk * P`` floats).

    Returns:
        [P] mean squared distances, floored at 1e-7 (duplicates would otherwise give 0).
    """
    p = points.shape[0]
    if p <= 1:
        return torch.ones(p, dtype=points.dtype, device=points.device)
    k = min(k, p - 1)
    out = torch.empty(p, dtype=points.dtype, device=points.device)
    for start in range(0, p, chunk):
        block = points[start : start + chunk]  # [B, 3]
        d2 = torch.cdist(block.double(), points.double()).square()  # [B, P]
        rows = torch.arange(block.shape[0], device=points.device)
        d2[rows, rows + start] = float("inf")  # exclude the point itself
        out[start : start + chunk] = d2.topk(k, dim=1, largest=False).values.mean(1).to(points.dtype)
    return out.clamp_min(1e-7)
