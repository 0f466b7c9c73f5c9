"""Stage 3 in vectorised PyTorch: front-to-back alpha compositing over tiles (ENGINE.md).

Written once for every primitive family: a family only supplies ``window(ids, pixels)``, the
value of its window at the pixel centres. Tiles are processed in chunks of similar length: the
sorted primitive lists of a chunk are padded to ``[B, K]``, the window is evaluated for all
``tile_size^2`` pixels at once (``[B, K, P]``) and the per-pixel sequential rules (alpha clamp,
1/255 skip, stop at ``next_T <= 1e-4``) are applied with a cumulative product and masks; this is
exact because the transmittance is monotone. Autograd gives the backward; on large scenes
(over ``CHECKPOINT_ELEMENTS`` intersection-pixel pairs) each chunk is wrapped in activation
checkpointing so memory stays bounded by one chunk, at about twice the backward time.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor
from torch.utils.checkpoint import checkpoint

ALPHA_MAX = 0.99
ALPHA_MIN = 1.0 / 255.0
T_MIN = 1e-4
# Elements of one chunk's [B, K, P] window tensor.
CHUNK_ELEMENTS = 1 << 21
# Above this many (intersection, pixel) pairs, chunks are checkpointed when gradients are on.
CHECKPOINT_ELEMENTS = 1 << 25

WindowFn = Callable[..., Tensor]
"""``window(ids [B, K] int64 flat ids view*N+n, pixels [B, P, 2], *params) -> [B, K, P]``.

Values in [0, 1]; ``params`` are the family's per-primitive tensors (leading dim ``V*N``), passed
explicitly so that activation checkpointing sees them."""


def _composite_chunk(
    window: WindowFn,
    ids: Tensor,  # [B, K] flat ids (view * N + n), padding masked out by `valid`
    valid: Tensor,  # [B, K] bool
    pixels: Tensor,  # [B, P, 2] pixel centres
    in_image: Tensor,  # [B, P] bool: pixel inside the image (edge tiles overhang it)
    features: Tensor,  # [V*N, C]
    opacities: Tensor,  # [N]
    *params: Tensor,
) -> tuple[Tensor, Tensor, Tensor]:
    N = opacities.shape[0]
    w = window(ids, pixels, *params)  # [B, K, P]
    alpha = (opacities[ids % N][..., None] * w).clamp_max(ALPHA_MAX)  # [B, K, P]
    keep = valid[..., None] & (alpha >= ALPHA_MIN)
    alpha = torch.where(keep, alpha, torch.zeros_like(alpha))
    with torch.no_grad():
        # T is non-increasing along K, so "stop at the first next_T <= 1e-4" is a mask.
        next_t = torch.cumprod(1.0 - alpha, dim=1)
        alpha_mask = next_t > T_MIN
    alpha = torch.where(alpha_mask, alpha, torch.zeros_like(alpha))
    one_minus = 1.0 - alpha
    trans = torch.cumprod(one_minus, dim=1)  # [B, K, P] transmittance after each primitive
    t_before = torch.cat([torch.ones_like(trans[:, :1]), trans[:, :-1]], dim=1)
    weights = alpha * t_before  # [B, K, P]
    out = torch.einsum("bkp,bkc->bpc", weights, features[ids])  # [B, P, C]
    t_final = trans[:, -1]  # [B, P]
    max_w = torch.where(in_image[:, None, :], weights.detach(), torch.zeros_like(weights)).amax(-1)
    return out, t_final, max_w


def composite_tiles(
    window: WindowFn,
    params: tuple[Tensor, ...],
    features: Tensor,  # [V, N, C]
    opacities: Tensor,  # [N]
    width: int,
    height: int,
    tile_offsets: Tensor,  # [V, TH, TW]
    flatten_ids: Tensor,  # [M]
    backgrounds: Tensor | None = None,  # [V, C]
    tile_size: int = 16,
    chunk_elements: int | None = None,
) -> tuple[Tensor, Tensor, Tensor]:
    """Composites sorted per-tile primitive lists into images.

    Args:
        window: the family's window function (see :data:`WindowFn`).
        params: per-primitive tensors handed to ``window`` (leading dim ``V*N``).
        features: [V, N, C] per-view features.
        opacities: [N] opacities.
        width: image width in pixels.
        height: image height in pixels.
        tile_offsets: [V, TH, TW] int32 from ``isect_tiles``.
        flatten_ids: [M] int32 from ``isect_tiles``.
        backgrounds: [V, C] or None (zeros).
        tile_size: tile side in pixels.
        chunk_elements: budget of ``B * K * P`` elements per chunk of tiles (default
            ``CHUNK_ELEMENTS``).

    Returns:
        colors [V, H, W, C], alphas [V, H, W, 1], max_weights [V, N] (max over pixels of
        ``alpha * T``, no gradient).
    """
    chunk_elements = CHUNK_ELEMENTS if chunk_elements is None else chunk_elements
    V, N, C = features.shape
    TH, TW = tile_offsets.shape[1:]
    P = tile_size * tile_size
    device, dtype = features.device, features.dtype
    n_tiles = V * TH * TW
    M = flatten_ids.numel()
    starts = tile_offsets.reshape(-1).long()
    ends = torch.cat([starts[1:], torch.tensor([M], device=device)])
    counts = ends - starts  # [n_tiles]
    feats = features.reshape(V * N, C)
    flat_ids = flatten_ids.long()

    sums = torch.zeros(n_tiles, P, C, device=device, dtype=dtype)
    trans = torch.ones(n_tiles, P, device=device, dtype=dtype)
    max_weights = torch.zeros(V * N, device=device, dtype=dtype)

    # Pixel centres of one tile, row-major: [P, 2] as (x, y).
    local = torch.arange(P, device=device)
    local_xy = torch.stack([local % tile_size, local // tile_size], -1).to(dtype) + 0.5

    nonempty = torch.nonzero(counts > 0).squeeze(1)
    nonempty = nonempty[torch.argsort(counts[nonempty], stable=True)]
    needs_grad = torch.is_grad_enabled() and any(
        t.requires_grad for t in (features, opacities, *params)
    )
    # Recomputing chunks in backward halves the speed; only do it when the saved activations
    # (about ten [M, P] tensors) would be large.
    use_ckpt = needs_grad and M * P > CHECKPOINT_ELEMENTS
    out_rows, t_rows, tile_rows = [], [], []
    i = 0
    n_nonempty = nonempty.numel()
    counts_cpu = counts[nonempty].tolist()
    while i < n_nonempty:
        j = i + 1
        # Tiles are sorted by length: grow the chunk while the padded size fits the budget.
        while j < n_nonempty and (j - i + 1) * counts_cpu[j] * P <= chunk_elements:
            j += 1
        tiles = nonempty[i:j]  # [B]
        K = counts_cpu[j - 1]
        ar = torch.arange(K, device=device)
        pos = starts[tiles][:, None] + ar  # [B, K]
        valid = ar[None, :] < counts[tiles][:, None]
        ids = flat_ids[pos.clamp_max(max(M - 1, 0))]
        ids = torch.where(valid, ids, torch.zeros_like(ids))
        tx = tiles % TW
        ty = (tiles // TW) % TH
        origin = torch.stack([tx, ty], -1).to(dtype) * tile_size  # [B, 2]
        pixels = origin[:, None, :] + local_xy[None]  # [B, P, 2]
        in_image = (pixels[..., 0] < width) & (pixels[..., 1] < height)  # [B, P]
        args = (window, ids, valid, pixels, in_image, feats, opacities, *params)
        if use_ckpt:
            out, t_final, mw = checkpoint(_composite_chunk, *args, use_reentrant=False)
        else:
            out, t_final, mw = _composite_chunk(*args)
        mw = torch.where(valid, mw, torch.zeros_like(mw))
        max_weights = max_weights.scatter_reduce(0, ids.reshape(-1), mw.reshape(-1), "amax")
        out_rows.append(out)
        t_rows.append(t_final)
        tile_rows.append(tiles)
        i = j

    if tile_rows:
        tiles_all = torch.cat(tile_rows)
        sums = sums.index_copy(0, tiles_all, torch.cat(out_rows))
        trans = trans.index_copy(0, tiles_all, torch.cat(t_rows))
    elif needs_grad:
        # Nothing visible: keep the outputs in the graph so backward() gives zero gradients
        # (as a fused kernel would) instead of failing on a graph-less loss.
        anchor = sum(t.sum() for t in (feats, opacities, *params) if t.is_floating_point())
        sums = sums + 0.0 * anchor
        trans = trans + 0.0 * anchor
    if backgrounds is not None:
        view_of_tile = torch.arange(n_tiles, device=device) // (TH * TW)
        sums = sums + trans[..., None] * backgrounds[view_of_tile][:, None, :]

    def untile(x: Tensor) -> Tensor:  # [n_tiles, P, X] -> [V, H, W, X]
        X = x.shape[-1]
        x = x.reshape(V, TH, TW, tile_size, tile_size, X).permute(0, 1, 3, 2, 4, 5)
        return x.reshape(V, TH * tile_size, TW * tile_size, X)[:, :height, :width]

    colors = untile(sums)
    alphas = untile((1.0 - trans)[..., None])
    return colors, alphas, max_weights.reshape(V, N).detach()
