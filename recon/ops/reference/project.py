"""Stage 1 of the engine in pure PyTorch: projection of Gaussians and triangles (ENGINE.md).

Everything here is differentiable through autograd. Culled primitives get ``radii == 0`` and
finite (but meaningless) 2D values, so that zero cotangents never turn into NaN gradients.
"""

from __future__ import annotations

import torch
from torch import Tensor

from recon.geometry import quat_to_rotmat

# Degenerate triangles: doubled projected area below this (px^2) are culled.
MIN_TRIANGLE_CROSS = 1e-6


def world_to_camera(points: Tensor, viewmats: Tensor) -> Tensor:
    """Transforms world points into every camera: ``x_c = R x + t``.

    Args:
        points: [N, ..., 3] world points.
        viewmats: [V, 4, 4] world-to-camera matrices.

    Returns:
        [V, N, ..., 3] camera-space points.
    """
    R = viewmats[:, :3, :3]  # [V, 3, 3]
    t = viewmats[:, :3, 3]  # [V, 3]
    shape = (viewmats.shape[0],) + (1,) * (points.dim() - 1) + (3,)
    return torch.einsum("vij,...j->v...i", R, points) + t.reshape(shape)


def pinhole(points_c: Tensor, Ks: Tensor, near_plane: float) -> Tensor:
    """Pinhole projection ``u = fx x/z + cx``, ``v = fy y/z + cy`` of camera-space points.

    Points with ``z <= near_plane`` are divided by 1 instead (their primitive is culled), which
    keeps values and gradients finite.

    Args:
        points_c: [V, ...., 3] camera-space points.
        Ks: [V, 3, 3] intrinsics.
        near_plane: near clipping distance.

    Returns:
        [V, ..., 2] pixel coordinates.
    """
    shape = (Ks.shape[0],) + (1,) * (points_c.dim() - 2)
    fx, fy = Ks[:, 0, 0].reshape(shape), Ks[:, 1, 1].reshape(shape)
    cx, cy = Ks[:, 0, 2].reshape(shape), Ks[:, 1, 2].reshape(shape)
    x, y, z = points_c.unbind(-1)
    z = torch.where(z > near_plane, z, torch.ones_like(z))
    return torch.stack([fx * x / z + cx, fy * y / z + cy], dim=-1)


def box_inside_image(means2d: Tensor, radii: Tensor, width: int, height: int) -> Tensor:
    """Whether the box ``means2d +- radii`` overlaps the image (gsplat's test). [V, N] bool."""
    return (
        (means2d[..., 0] + radii[..., 0] > 0)
        & (means2d[..., 0] - radii[..., 0] < width)
        & (means2d[..., 1] + radii[..., 1] > 0)
        & (means2d[..., 1] - radii[..., 1] < height)
    )


def project_gaussians(
    means: Tensor,  # [N, 3]
    quats: Tensor,  # [N, 4]
    scales: Tensor,  # [N, 3]
    viewmats: Tensor,  # [V, 4, 4]
    Ks: Tensor,  # [V, 3, 3]
    width: int,
    height: int,
    near_plane: float = 0.01,
    far_plane: float = 1e10,
    eps2d: float = 0.3,
    extent: Tensor | float = 3.33,
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Projects 3D Gaussians to 2D exactly as gsplat 1.5 ``_fully_fused_projection`` (pinhole).

    Args:
        means: [N, 3] centres.
        quats: [N, 4] rotations ``(w, x, y, z)``, normalised inside.
        scales: [N, 3] standard deviations along the rotated axes.
        viewmats: [V, 4, 4] world-to-camera matrices.
        Ks: [V, 3, 3] intrinsics.
        width: image width in pixels.
        height: image height in pixels.
        near_plane: Gaussians with camera ``z <= near_plane`` are culled.
        far_plane: Gaussians with camera ``z >= far_plane`` are culled.
        eps2d: isotropic dilation added to the 2D covariance (pixels^2).
        extent: footprint half size in standard deviations of the dilated 2D covariance, a float
            or [N] per primitive (GES: larger for heavy tails, 0 culls); not part of ENGINE.md's
            signature.

    Returns:
        means2d [V, N, 2], depths [V, N] (camera z), conics [V, N, 3] (``a, b, c`` of the inverse
        dilated 2D covariance), radii [V, N, 2] int32 (``ceil(extent sqrt(diag))``, 0 when culled).
    """
    R = quat_to_rotmat(quats)  # [N, 3, 3]
    M = R * scales[:, None, :]  # [N, 3, 3]
    covars = M @ M.transpose(-1, -2)  # [N, 3, 3]
    Rv = viewmats[:, :3, :3]  # [V, 3, 3]
    means_c = world_to_camera(means, viewmats)  # [V, N, 3]
    covars_c = torch.einsum("vij,njk,vlk->vnil", Rv, covars, Rv)  # [V, N, 3, 3]

    tx, ty, tz = means_c.unbind(-1)  # [V, N]
    valid_z = (tz > near_plane) & (tz < far_plane)
    tz_safe = torch.where(tz > near_plane, tz, torch.ones_like(tz))
    fx, fy = Ks[:, 0, 0, None], Ks[:, 1, 1, None]  # [V, 1]
    cx, cy = Ks[:, 0, 2, None], Ks[:, 1, 2, None]
    tan_fovx, tan_fovy = 0.5 * width / fx, 0.5 * height / fy
    lim_x_pos = (width - cx) / fx + 0.3 * tan_fovx
    lim_x_neg = cx / fx + 0.3 * tan_fovx
    lim_y_pos = (height - cy) / fy + 0.3 * tan_fovy
    lim_y_neg = cy / fy + 0.3 * tan_fovy
    # gsplat clamps x/z, y/z to 1.3x the field of view inside the Jacobian only.
    txc = tz_safe * torch.maximum(torch.minimum(tx / tz_safe, lim_x_pos), -lim_x_neg)
    tyc = tz_safe * torch.maximum(torch.minimum(ty / tz_safe, lim_y_pos), -lim_y_neg)
    zero = torch.zeros_like(tz)
    tz2 = tz_safe * tz_safe
    J = torch.stack(
        [fx / tz_safe, zero, -fx * txc / tz2, zero, fy / tz_safe, -fy * tyc / tz2], dim=-1
    ).reshape(tz.shape + (2, 3))  # [V, N, 2, 3]
    cov2d = J @ covars_c @ J.transpose(-1, -2)  # [V, N, 2, 2]
    means2d = pinhole(means_c, Ks, near_plane)  # [V, N, 2]

    c00 = cov2d[..., 0, 0] + eps2d
    c11 = cov2d[..., 1, 1] + eps2d
    c01 = 0.5 * (cov2d[..., 0, 1] + cov2d[..., 1, 0])
    det = c00 * c11 - c01 * c01
    valid = valid_z & (det > 0)
    det_safe = torch.where(valid, det, torch.ones_like(det))
    conics = torch.stack([c11 / det_safe, -c01 / det_safe, c00 / det_safe], dim=-1)  # [V, N, 3]

    with torch.no_grad():
        radii = torch.stack(
            [
                torch.ceil(extent * torch.sqrt(c00.clamp_min(0))),
                torch.ceil(extent * torch.sqrt(c11.clamp_min(0))),
            ],
            dim=-1,
        )  # [V, N, 2]
        radii = torch.where(valid[..., None], radii, torch.zeros_like(radii))
        inside = box_inside_image(means2d, radii, width, height)
        radii = torch.where(inside[..., None], radii, torch.zeros_like(radii)).to(torch.int32)
    return means2d, tz, conics, radii


def project_triangles(
    vertices: Tensor,  # [N, 3, 3]
    viewmats: Tensor,  # [V, 4, 4]
    Ks: Tensor,  # [V, 3, 3]
    width: int,
    height: int,
    near_plane: float = 0.01,
    far_plane: float = 1e10,
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Projects triangles (ENGINE.md stage 1, triangles).

    Args:
        vertices: [N, 3, 3] world-space vertices (triangle, vertex, xyz).
        viewmats: [V, 4, 4] world-to-camera matrices.
        Ks: [V, 3, 3] intrinsics.
        width: image width in pixels.
        height: image height in pixels.
        near_plane: a triangle with any vertex at ``z <= near_plane`` is culled.
        far_plane: a triangle whose centroid has ``z >= far_plane`` is culled.

    Returns:
        means2d [V, N, 2] (centre of the 2D bounding box), depths [V, N] (camera z of the 3D
        centroid), verts2d [V, N, 3, 2], radii [V, N, 2] int32 (``ceil(half extent) + 1``, 0 when
        culled; the window vanishes outside the triangle so the box is exact).
    """
    verts_c = world_to_camera(vertices, viewmats)  # [V, N, 3, 3]
    depths = verts_c[..., 2].mean(-1)  # [V, N]
    verts2d = pinhole(verts_c, Ks, near_plane)  # [V, N, 3, 2]
    lo = verts2d.amin(dim=-2)  # [V, N, 2]
    hi = verts2d.amax(dim=-2)
    means2d = 0.5 * (lo + hi)
    with torch.no_grad():
        e1 = verts2d[..., 1, :] - verts2d[..., 0, :]
        e2 = verts2d[..., 2, :] - verts2d[..., 0, :]
        cross = e1[..., 0] * e2[..., 1] - e1[..., 1] * e2[..., 0]  # [V, N]
        valid = (
            (verts_c[..., 2] > near_plane).all(-1)
            & (depths < far_plane)
            & (cross.abs() >= MIN_TRIANGLE_CROSS)
        )
        radii = torch.ceil(0.5 * (hi - lo)) + 1  # [V, N, 2]
        valid &= box_inside_image(means2d, radii, width, height)
        radii = torch.where(valid[..., None], radii, torch.zeros_like(radii)).to(torch.int32)
    return means2d, depths, verts2d, radii
