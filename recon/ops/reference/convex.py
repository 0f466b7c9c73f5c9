"""Stage 1 for smooth convexes in pure PyTorch: 2D convex hull and conservative footprint.

The hull is computed for every (view, primitive) at once with an O(K^3) edge test (K <= 8):
the directed edge ``i -> j`` belongs to the hull, in positive orientation (signed area > 0 in
image coordinates ``(x right, y down)``, i.e. ``n = (dy, -dx)`` points outwards), when every other
point lies strictly to its left or on the closed segment ``[i, j]``. Collinear and duplicate
points are therefore never hull vertices, and a hull with fewer than 3 vertices is culled.
The ordered hull starts at the lexicographically smallest point ``(x, then y)``.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from recon.ops.reference.project import box_inside_image, pinhole, world_to_camera

# Half extents are capped (in pixels) so that radii stay representable as int32.
MAX_HALF_EXTENT = 1e7


def convex_hull_2d(points2d: Tensor) -> Tensor:
    """Ordered 2D convex hulls of small point sets.

    Args:
        points2d: [..., K, 2] points (K <= 8 in practice; any K >= 1 works).

    Returns:
        [..., K] int32 hull vertex indices in positive orientation starting at the
        lexicographically smallest point, padded with -1; all -1 when the hull has fewer than
        3 vertices (collinear or coincident points).
    """
    batch = points2d.shape[:-2]
    K = points2d.shape[-2]
    p = points2d.detach().reshape(-1, K, 2)  # [B, K, 2]
    B = p.shape[0]
    if K < 3 or B == 0:
        return torch.full(batch + (K,), -1, dtype=torch.int32, device=points2d.device)
    eye = torch.eye(K, dtype=torch.bool, device=p.device)
    same = (p[:, :, None, :] == p[:, None, :, :]).all(-1)  # [B, K, K]
    # A point equal to an earlier point is a duplicate and never a hull vertex.
    dup = (same & torch.ones(K, K, dtype=torch.bool, device=p.device).tril(-1)).any(-1)  # [B, K]
    e = p[:, None, :, :] - p[:, :, None, :]  # [B, i, j, 2] = p_j - p_i
    r = p[:, None, :, :] - p[:, :, None, :]  # [B, i, k, 2] = p_k - p_i
    # cross[b, i, j, k] = (p_j - p_i) x (p_k - p_i)
    cross = e[:, :, :, None, 0] * r[:, :, None, :, 1] - e[:, :, :, None, 1] * r[:, :, None, :, 0]
    dot = (e[:, :, :, None, :] * r[:, :, None, :, :]).sum(-1)  # [B, i, j, k]
    len2 = (e * e).sum(-1)  # [B, i, j]
    on_segment = (cross == 0) & (dot >= 0) & (dot <= len2[..., None])
    is_edge = ((cross > 0) | on_segment).all(-1)  # [B, i, j]
    is_edge &= ~eye & (len2 > 0) & ~dup[:, :, None] & ~dup[:, None, :]
    has_next = is_edge.any(-1)  # [B, i]
    nxt = is_edge.to(torch.int8).argmax(-1)  # [B, i]
    # Start at the lexicographically smallest point (always a hull vertex when one exists).
    order = torch.argsort(p[..., 1], dim=-1, stable=True)
    order = order.gather(1, torch.argsort(p[..., 0].gather(1, order), dim=-1, stable=True))
    start = order[:, 0]  # [B]
    hull = torch.full((B, K), -1, dtype=torch.long, device=p.device)
    cur = start.clone()
    alive = has_next.gather(1, cur[:, None])[:, 0]
    closed = torch.zeros(B, dtype=torch.bool, device=p.device)
    count = torch.zeros(B, dtype=torch.long, device=p.device)
    for step in range(K):
        write = alive & ~closed
        hull[:, step] = torch.where(write, cur, hull[:, step])
        count += write.long()
        cur = torch.where(write, nxt.gather(1, cur[:, None])[:, 0], cur)
        alive &= has_next.gather(1, cur[:, None])[:, 0]
        closed |= write & (cur == start)
    good = closed & (count >= 3)
    hull = torch.where(good[:, None], hull, torch.full_like(hull, -1))
    return hull.to(torch.int32).reshape(batch + (K,))


def hull_lines(points2d: Tensor, hull: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Unnormalised outward edge lines ``L_i(p) = n_i . p + d_i`` of each hull (L < 0 inside).

    Args:
        points2d: [..., K, 2] projected points (differentiable).
        hull: [..., K] int32 ordered hull indices, -1 padded.

    Returns:
        normals [..., K, 2] (``(dy, -dx)`` of edge ``q_i -> q_{i+1}``), offsets [..., K],
        valid [..., K] bool (which edges exist).
    """
    K = hull.shape[-1]
    valid = hull >= 0  # [..., K]
    count = valid.sum(-1, keepdim=True)  # [..., 1]
    idx = hull.long().clamp_min(0)
    q = points2d.gather(-2, idx[..., None].expand(idx.shape + (2,)))  # [..., K, 2]
    ar = torch.arange(K, device=hull.device)
    nxt = torch.where(ar + 1 < count, ar + 1, torch.zeros_like(ar + 1))  # [..., K]
    q_next = q.gather(-2, nxt[..., None].expand(nxt.shape + (2,)))
    edge = q_next - q
    normals = torch.stack([edge[..., 1], -edge[..., 0]], dim=-1)  # [..., K, 2]
    offsets = -(normals * q).sum(-1)
    zero = torch.zeros_like(offsets)
    normals = torch.where(valid[..., None], normals, torch.zeros_like(normals))
    offsets = torch.where(valid, offsets, zero)
    return normals, offsets, valid


def support_box(
    normals: Tensor, offsets: Tensor, valid: Tensor, level: Tensor
) -> tuple[Tensor, Tensor]:
    """Exact bounding box of the polygon ``{p : L_i(p) <= level for all hull edges i}``.

    Its vertices are intersections of two edge lines shifted to ``level`` that satisfy every
    other constraint; all O(K^2) pairs are tried (K <= 8).

    Args:
        normals: [M, K, 2], offsets: [M, K], valid: [M, K] from :func:`hull_lines`.
        level: [M] non-negative shift of the line values.

    Returns:
        lo [M, 2], hi [M, 2] box corners (lo > hi where no vertex was found).
    """
    n = normals.detach().double()
    d = offsets.detach().double() - level.double()[:, None]  # line: n . p + d = 0
    a = n[:, :, None, :]  # [M, i, 1, 2]
    b = n[:, None, :, :]  # [M, 1, j, 2]
    det = a[..., 0] * b[..., 1] - a[..., 1] * b[..., 0]  # [M, i, j]
    ok = valid[:, :, None] & valid[:, None, :] & (det.abs() > 1e-12)
    det = torch.where(ok, det, torch.ones_like(det))
    di, dj = d[:, :, None], d[:, None, :]
    # Solve [n_i; n_j] p = [-d_i; -d_j] by Cramer's rule.
    px = (-di * b[..., 1] + dj * a[..., 1]) / det
    py = (-a[..., 0] * dj + b[..., 0] * di) / det
    v = torch.stack([px, py], dim=-1).reshape(n.shape[0], -1, 2)  # [M, K*K, 2]
    lines = torch.einsum("mkc,mpc->mpk", n, v) + d[:, None, :]  # [M, K*K, K]
    scale = n.norm(dim=-1)[:, None, :] * (v.abs().amax(-1, keepdim=True) + 1.0)
    feasible = ((lines <= 1e-9 * scale) | ~valid[:, None, :]).all(-1) & ok.reshape(ok.shape[0], -1)
    inf = torch.full_like(v, math.inf)
    lo = torch.where(feasible[..., None], v, inf).amin(1)
    hi = torch.where(feasible[..., None], v, -inf).amax(1)
    return lo.to(normals.dtype), hi.to(normals.dtype)


def project_convexes(
    points: Tensor,  # [N, K, 3]
    delta: Tensor,  # [N]
    sigma: Tensor,  # [N]
    opacities: Tensor,  # [N]
    viewmats: Tensor,  # [V, 4, 4]
    Ks: Tensor,  # [V, 3, 3]
    width: int,
    height: int,
    near_plane: float = 0.01,
    far_plane: float = 1e10,
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """Projects smooth convexes (ENGINE.md stage 1, convexes).

    The footprint box is the exact bounding box of ``{p : max_i L_i(p) <= s}`` with
    ``s = ln((1 - eps) / eps) / (z^2 delta sigma)``, ``eps = 1 / (255 opacity)``, clamped at 0.
    Outside it ``logsumexp(z delta L) >= z delta max L > z delta s`` so
    ``opacity * sigmoid(-z sigma phi) < 1/255``: the primitive is skipped there anyway.
    Convexes with ``opacity <= 1/255`` never reach the alpha threshold and are culled.

    Args:
        points: [N, K, 3] world-space points.
        delta: [N] smoothness (> 0).
        sigma: [N] sharpness (> 0).
        opacities: [N] opacities in [0, 1].
        viewmats: [V, 4, 4] world-to-camera matrices.
        Ks: [V, 3, 3] intrinsics.
        width: image width in pixels.
        height: image height in pixels.
        near_plane: a convex with any point at ``z <= near_plane`` is culled.
        far_plane: a convex whose 3D centroid has ``z >= far_plane`` is culled.

    Returns:
        means2d [V, N, 2] (centre of the footprint box), depths [V, N] (camera z of the 3D
        centroid), points2d [V, N, K, 2], hull [V, N, K] int32, radii [V, N, 2] int32
        (``ceil(half extent) + 1``; 0 when culled).
    """
    V, N, K = viewmats.shape[0], points.shape[0], points.shape[1]
    pts_c = world_to_camera(points, viewmats)  # [V, N, K, 3]
    depths = pts_c[..., 2].mean(-1)  # [V, N]
    points2d = pinhole(pts_c, Ks, near_plane)  # [V, N, K, 2]
    with torch.no_grad():
        hull = convex_hull_2d(points2d)  # [V, N, K]
        normals, offsets, valid_e = hull_lines(points2d, hull)
        valid = (pts_c[..., 2] > near_plane).all(-1) & (depths < far_plane) & (hull[..., 0] >= 0)
        valid &= (opacities > 1.0 / 255.0)[None, :]
        eps = (1.0 / (255.0 * opacities.double())).clamp(max=1.0 - 1e-12)  # [N]
        z = torch.where(valid, depths, torch.ones_like(depths)).double()
        level = torch.log((1 - eps) / eps)[None, :] / (z * z * delta.double() * sigma.double())
        level = level.clamp_min(0.0)  # [V, N]
        lo, hi = support_box(
            normals.reshape(V * N, K, 2),
            offsets.reshape(V * N, K),
            valid_e.reshape(V * N, K),
            level.reshape(V * N),
        )
        lo, hi = lo.reshape(V, N, 2), hi.reshape(V, N, 2)
        valid &= (lo <= hi).all(-1)
        half = (0.5 * (hi - lo)).clamp(0, MAX_HALF_EXTENT)
        centre = torch.where(valid[..., None], 0.5 * (lo + hi), torch.zeros_like(lo))
        radii = torch.where(valid[..., None], torch.ceil(half) + 1, torch.zeros_like(half))
        valid &= box_inside_image(centre, radii, width, height)
        radii = torch.where(valid[..., None], radii, torch.zeros_like(radii)).to(torch.int32)
    # The box centre moves with the hull but is a piecewise function of it; it carries no
    # gradient (the public op attaches the footprint-translation gradient to means2d).
    return centre.to(points2d.dtype), depths, points2d, hull, radii
