"""Stage 3 per family in pure PyTorch: the window functions plugged into the shared compositor.

Each ``*_window`` evaluates one family's window (ENGINE.md "Windows") for a chunk of tiles:
``ids`` [B, K] are flat ``view * N + n`` indices, ``pixels`` [B, P, 2] pixel centres; the result
is [B, K, P] in [0, 1], exactly 0 where the pixel is skipped.
"""

from __future__ import annotations

import torch
from torch import Tensor

from recon.ops.reference import composite
from recon.ops.reference.composite import WindowFn, composite_tiles
from recon.ops.reference.convex import hull_lines


def conic_power(ids: Tensor, pixels: Tensor, means2d: Tensor, conics: Tensor) -> Tensor:
    """[B, K, P] ``p = (a dx^2 + c dy^2)/2 + b dx dy``: half the squared Mahalanobis distance of each
    pixel from each projected centre (``means2d`` [V*N, 2], ``conics`` [V*N, 3]); the radial
    windows (Gaussian, GES) are functions of it."""
    m = means2d[ids]  # [B, K, 2]
    a, b, c = conics[ids].unbind(-1)  # [B, K]
    dx = pixels[:, None, :, 0] - m[..., 0, None]  # [B, K, P]
    dy = pixels[:, None, :, 1] - m[..., 1, None]
    return 0.5 * (a[..., None] * dx * dx + c[..., None] * dy * dy) + b[..., None] * dx * dy


def gaussian_window(ids: Tensor, pixels: Tensor, means2d: Tensor, conics: Tensor) -> Tensor:
    """``exp(-(a dx^2 + c dy^2)/2 - b dx dy)``, 0 where the exponent is positive."""
    power = conic_power(ids, pixels, means2d, conics)  # [B, K, P]
    return torch.where(power >= 0, torch.exp(-power.clamp_min(0)), torch.zeros_like(power))


def triangle_window(ids: Tensor, pixels: Tensor, verts2d: Tensor, sigma: Tensor) -> Tensor:
    """``(phi(p) / phi_s) ** sigma`` inside the triangle, 0 outside (Triangle Splatting).

    ``phi = max_i L_i`` with unit outward edge normals routes its gradient to the maximising
    edge only; ``phi_s = -inradius`` keeps its exact gradient.
    """
    N = sigma.shape[0]
    p = verts2d[ids]  # [B, K, 3, 2]
    edge = torch.roll(p, shifts=-1, dims=-2) - p  # [B, K, 3, 2] edge i: p_i -> p_{i+1}
    e1, e2 = p[..., 1, :] - p[..., 0, :], p[..., 2, :] - p[..., 0, :]
    cross = e1[..., 0] * e2[..., 1] - e1[..., 1] * e2[..., 0]  # [B, K] doubled signed area
    # Padded entries (and only they) may be degenerate: keep their arithmetic finite.
    ok = cross.abs() > 0
    cross = torch.where(ok, cross, torch.ones_like(cross))
    length = edge.norm(dim=-1)  # [B, K, 3]
    length = torch.where(ok[..., None], length, torch.ones_like(length))
    sign = torch.sign(cross)[..., None]
    normal = sign[..., None] * torch.stack([edge[..., 1], -edge[..., 0]], -1) / length[..., None]
    offset = -(normal * p).sum(-1)  # [B, K, 3]
    inradius = cross.abs() / length.sum(-1)  # [B, K]
    lines = torch.einsum("bkec,bpc->bkep", normal, pixels) + offset[..., None]  # [B, K, 3, P]
    phi = lines.max(dim=2).values  # [B, K, P]
    inside = (phi < 0) & ok[..., None]
    ratio = torch.where(inside, -phi / inradius[..., None], torch.ones_like(phi))
    value = ratio ** sigma[ids % N][..., None]
    return torch.where(inside, value, torch.zeros_like(value))


def convex_window(
    ids: Tensor,
    pixels: Tensor,
    points2d: Tensor,
    hull: Tensor,
    depths: Tensor,
    delta: Tensor,
    sigma: Tensor,
) -> Tensor:
    """``sigmoid(-z sigma logsumexp_i(z delta L_i(p)))`` over the hull edges (Convex Splatting)."""
    N = sigma.shape[0]
    normals, offsets, valid = hull_lines(points2d[ids], hull[ids])  # [B, K, E, 2], [B, K, E]
    lines = torch.einsum("bkec,bpc->bkep", normals, pixels) + offsets[..., None]  # [B, K, E, P]
    z = depths[ids].detach()[..., None, None]  # [B, K, 1, 1]
    scaled = z * delta[ids % N][..., None, None] * lines
    scaled = torch.where(valid[..., None], scaled, torch.full_like(scaled, -torch.inf))
    phi = torch.logsumexp(scaled, dim=2)  # [B, K, P]
    return torch.sigmoid(-z[..., 0] * sigma[ids % N][..., None] * phi)


def composite_window(
    window_fn: WindowFn, window: tuple[Tensor, ...], features: Tensor, *args, cost: int = 1, **kwargs
) -> tuple[Tensor, Tensor, Tensor]:
    """Stage 3 for any family: composites the window ``window_fn`` of the tensors ``window``.

    Args:
        window_fn: the family's window (:data:`~recon.ops.reference.composite.WindowFn`).
        window: the window tensors, per view ``[V, N, ...]`` or per primitive ``[N]``; the
            per-view ones are flattened to ``[V * N, ...]`` (the window's ``ids`` index them).
        features: [V, N, C] per-view features.
        *args: the remaining arguments of :func:`~recon.ops.reference.composite.composite_tiles`
            (``opacities, width, height, tile_offsets, flatten_ids, backgrounds, tile_size``).
        cost: elements the window evaluates per (primitive, pixel) pair; chunks shrink by it.

    Returns:
        colors [V, H, W, C], alphas [V, H, W, 1], max_weights [V, N].
    """
    V, N = features.shape[:2]
    params = tuple(t.reshape(V * N, *t.shape[2:]) if t.dim() >= 2 else t for t in window)
    return composite_tiles(
        window_fn, params, features, *args, chunk_elements=composite.CHUNK_ELEMENTS // cost, **kwargs
    )


# ENGINE.md stage 3 per family: the window tensors, then the arguments of composite_window.
def rasterize_gaussians_to_pixels(means2d: Tensor, conics: Tensor, *args, **kwargs) -> tuple[Tensor, Tensor, Tensor]:
    """Gaussians: means2d [V, N, 2], conics [V, N, 3]; colors, alphas, max_weights."""
    return composite_window(gaussian_window, (means2d, conics), *args, **kwargs)


def rasterize_triangles_to_pixels(verts2d: Tensor, sigma: Tensor, *args, **kwargs) -> tuple[Tensor, Tensor, Tensor]:
    """Triangles: verts2d [V, N, 3, 2], sigma [N]; colors, alphas, max_weights."""
    return composite_window(triangle_window, (verts2d, sigma), *args, cost=4, **kwargs)


def rasterize_convexes_to_pixels(
    points2d: Tensor, hull: Tensor, delta: Tensor, sigma: Tensor, depths: Tensor, *args, **kwargs
) -> tuple[Tensor, Tensor, Tensor]:
    """Convexes: points2d [V, N, K, 2], hull [V, N, K], delta, sigma [N], depths [V, N] (constant)."""
    window = (points2d, hull, depths, delta, sigma)  # convex_window's order
    return composite_window(convex_window, window, *args, cost=2 * max(hull.shape[-1], 1), **kwargs)
