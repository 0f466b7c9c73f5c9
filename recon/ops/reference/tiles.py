"""Stage 2 in vectorised PyTorch: tile intersection, identical to gsplat's ``_isect_tiles``.

gsplat's pure-torch version loops in Python over every (view, primitive) pair; this one builds
the same intersection list with ``repeat_interleave`` and one stable sort of the same 64-bit keys
``(view << tile_bits | tile) << 32 | float32 bits of depth``.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor


def tile_grid(width: int, height: int, tile_size: int = 16) -> tuple[int, int]:
    """Number of tiles ``(tile_width, tile_height)`` covering a ``width x height`` image."""
    return math.ceil(width / tile_size), math.ceil(height / tile_size)


def tile_ranges(
    means2d: Tensor, radii: Tensor, tile_width: int, tile_height: int, tile_size: int
) -> tuple[Tensor, Tensor]:
    """Tile box ``[min, max)`` of every footprint, clamped to the grid (gsplat's arithmetic).

    Args:
        means2d: [V, N, 2] footprint centres.
        radii: [V, N, 2] int footprint half sizes.

    Returns:
        tile_min [V, N, 2] int64 and tile_max [V, N, 2] int64 (x, y).
    """
    tm = means2d.detach() / tile_size
    tr = radii / tile_size
    if not tr.is_floating_point():
        tr = tr.to(torch.float32)
    tile_min = torch.floor(tm - tr).long()
    tile_max = torch.ceil(tm + tr).long()
    upper = torch.tensor([tile_width, tile_height], device=means2d.device)
    tile_min = torch.minimum(tile_min.clamp_min(0), upper)
    tile_max = torch.minimum(tile_max.clamp_min(0), upper)
    return tile_min, tile_max


@torch.no_grad()
def isect_tiles(
    means2d: Tensor,  # [V, N, 2]
    radii: Tensor,  # [V, N, 2]
    depths: Tensor,  # [V, N]
    width: int,
    height: int,
    tile_size: int = 16,
) -> tuple[Tensor, Tensor]:
    """Bins footprints into tiles, sorted by (view, tile, depth), stable in the primitive index.

    Args:
        means2d: [V, N, 2] footprint centres in pixels.
        radii: [V, N, 2] int32 footprint half sizes (0 = culled).
        depths: [V, N] sort depths (positive for every non-culled primitive).
        width: image width in pixels.
        height: image height in pixels.
        tile_size: tile side in pixels.

    Returns:
        tile_offsets [V, tile_height, tile_width] int32: start of each tile's run in
        ``flatten_ids``; flatten_ids [M] int32: ``view * N + n`` of each intersection.
    """
    V, N = depths.shape
    device = means2d.device
    tw, th = tile_grid(width, height, tile_size)
    tile_min, tile_max = tile_ranges(means2d, radii, tw, th, tile_size)
    extent = tile_max - tile_min  # [V, N, 2]
    counts = extent.prod(-1) * (radii > 0).all(-1)  # [V, N]
    counts = counts.reshape(-1)
    flat = torch.repeat_interleave(torch.arange(V * N, device=device), counts)  # [M]
    if flat.numel() == 0:
        return (
            torch.zeros((V, th, tw), dtype=torch.int32, device=device),
            torch.zeros(0, dtype=torch.int32, device=device),
        )
    first = torch.cumsum(counts, 0) - counts  # [V*N]
    local = torch.arange(flat.numel(), device=device) - first[flat]
    span_x = extent.reshape(-1, 2)[flat, 0]
    tx = tile_min.reshape(-1, 2)[flat, 0] + local % span_x
    ty = tile_min.reshape(-1, 2)[flat, 1] + local // span_x
    view = flat // N
    tile_bits = (tw * th).bit_length()
    depth_bits = depths.reshape(-1)[flat].detach().to(torch.float32).view(torch.int32)
    depth_bits = depth_bits.to(torch.int64) & 0xFFFFFFFF
    keys = (((view << tile_bits) | (ty * tw + tx)) << 32) | depth_bits
    keys, order = torch.sort(keys, stable=True)
    flatten_ids = flat[order].to(torch.int32)
    tile_keys = view[order] * (tw * th) + (ty * tw + tx)[order]  # [M]
    tile_counts = torch.bincount(tile_keys, minlength=V * th * tw)
    offsets = (torch.cumsum(tile_counts, 0) - tile_counts).reshape(V, th, tw)
    return offsets.to(torch.int32), flatten_ids
