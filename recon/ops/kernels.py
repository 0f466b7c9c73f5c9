"""Compiled backends (``cpu``: C++/OpenMP, ``cuda``: CUDA) of the engine: the autograd glue.

One ``torch.autograd.Function`` per stage, for every family: :class:`_Project` calls the kernels
``project_<plural>_fwd`` / ``_bwd`` named by the family record, :class:`_Rasterize` the shared
``rasterize_fwd`` / ``_bwd`` with the family's kernel id and packed window. Backward passes call
explicit backward kernels. The extension is built and loaded by :mod:`recon.ops._extension`.
This module exports the ENGINE.md stage functions per family (thin aliases, the same signatures
as :mod:`recon.ops.reference`) and once for any family record (``project``,
``rasterize_to_pixels``), which the pipeline calls.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from recon.ops._extension import CUDA_DIR, ExtensionBuildError, available, ext_for, load_extension  # noqa: F401 (re-exported)
from recon.ops.family import CONVEX, GAUSSIAN, TRIANGLE, RasterFamily


def _f32(t: Tensor) -> Tensor:
    return t.detach().to(torch.float32).contiguous()


def _cotangent(grad: Tensor | None, shape: torch.Size, device: torch.device) -> Tensor:
    """The incoming gradient as float32, or zeros of ``shape`` when the output was unused."""
    return torch.zeros(shape, device=device) if grad is None else grad.to(torch.float32).contiguous()


# ---- stage 1: projection ---------------------------------------------------------------------


class _Project(torch.autograd.Function):
    """Any family: inputs ``(*project_inputs, viewmats, Ks)``, outputs ``(means2d, depths,
    *geometry, radii)``; the first three outputs are differentiable, the first
    ``num_grad_inputs`` inputs get gradients."""

    @staticmethod
    def forward(ctx, family: RasterFamily, scalars: tuple, *tensors: Tensor):
        args = [_f32(t) for t in tensors]
        outs = getattr(ext_for(tensors[0]), f"project_{family.plural}_fwd")(*args, *scalars)
        radii = outs[-1]
        ctx.family = family
        ctx.config = scalars[:2] + scalars[4:]  # width, height, *options (no planes in backward)
        ctx.shapes = [o.shape for o in outs[:3]]
        ctx.num_inputs = len(tensors)
        ctx.save_for_backward(*args[: family.num_grad_inputs], *args[-2:], radii)
        ctx.mark_non_differentiable(*outs[3:])
        return tuple(outs)

    @staticmethod
    def backward(ctx, *v_outs: Tensor | None):
        *saved, radii = ctx.saved_tensors
        family = ctx.family
        cotangents = [_cotangent(v, shape, radii.device) for v, shape in zip(v_outs[:3], ctx.shapes)]
        grads = getattr(ext_for(radii), f"project_{family.plural}_bwd")(*saved, *ctx.config, radii, *cotangents)
        grads = (grads,) if isinstance(grads, Tensor) else tuple(grads)
        return (None, None, *grads) + (None,) * (ctx.num_inputs - len(grads))


def project(
    family: RasterFamily, inputs: Sequence[Tensor], viewmats: Tensor, Ks: Tensor, width: int, height: int,
    near_plane: float = 0.01, far_plane: float = 1e10, *options: float,
) -> tuple[Tensor, ...]:  # fmt: skip
    """Stage 1 of ``family``: ``inputs`` in ``family.project_inputs`` order, cameras (``viewmats``
    [V, 4, 4], ``Ks`` [V, 3, 3]) and planes as ENGINE.md, then the family's ``options``.

    Returns:
        ``(means2d [V, N, 2], depths [V, N], *geometry, radii [V, N, 2] int32)`` as the reference
        projection of the family; gradients reach the first ``family.num_grad_inputs`` inputs.
    """
    scalars = (int(width), int(height), float(near_plane), float(far_plane), *map(float, options))
    return _Project.apply(family, scalars, *inputs, viewmats, Ks)


def project_gaussians(means, quats, scales, viewmats, Ks, width, height, near_plane=0.01, far_plane=1e10, eps2d=0.3):
    """Kernel twin of :func:`recon.ops.reference.project_gaussians` (same contract)."""
    return project(GAUSSIAN, (means, quats, scales), viewmats, Ks, width, height, near_plane, far_plane, eps2d)


def project_triangles(vertices, viewmats, Ks, width, height, near_plane=0.01, far_plane=1e10):
    """Kernel twin of :func:`recon.ops.reference.project_triangles` (same contract)."""
    return project(TRIANGLE, (vertices,), viewmats, Ks, width, height, near_plane, far_plane)


def project_convexes(points, delta, sigma, opacities, viewmats, Ks, width, height, near_plane=0.01, far_plane=1e10):
    """Kernel twin of :func:`recon.ops.reference.project_convexes` (same contract, K <= 8)."""
    return project(CONVEX, (points, delta, sigma, opacities), viewmats, Ks, width, height, near_plane, far_plane)


# ---- stage 2: tile intersection --------------------------------------------------------------


@torch.no_grad()
def isect_tiles(means2d: Tensor, radii: Tensor, depths: Tensor, width: int, height: int, tile_size: int = 16):
    """Kernel twin of :func:`recon.ops.reference.isect_tiles`: footprints binned into tiles, sorted
    by (view, tile, depth) and stable in the primitive index.

    Returns:
        tile_offsets [V, tile_height, tile_width] int32, flatten_ids [M] int32.
    """
    ext = ext_for(means2d)
    return ext.isect_tiles(
        _f32(means2d), radii.to(torch.int32).contiguous(), _f32(depths), int(width), int(height), int(tile_size)
    )


# ---- stage 3: rasterization ------------------------------------------------------------------


class _Rasterize(torch.autograd.Function):
    """Shared by every family: window parameters ``wparams`` [V, N, P] (+ ``hull`` for convexes)."""

    @staticmethod
    def forward(ctx, kernel_id, wparams, hull, features, opacities, backgrounds, width, height,
                tile_size, tile_offsets, flatten_ids):  # fmt: skip
        wparams, features, opacities = _f32(wparams), _f32(features), _f32(opacities)
        bg = None if backgrounds is None else _f32(backgrounds)
        hull = None if hull is None else hull.to(torch.int32).contiguous()
        tile_offsets = tile_offsets.to(torch.int32).contiguous()
        flatten_ids = flatten_ids.to(torch.int32).contiguous()
        colors, alphas, trans, last_ids, max_weights = ext_for(features).rasterize_fwd(
            kernel_id, wparams, hull, features, opacities, bg, width, height, tile_size,
            tile_offsets, flatten_ids,
        )  # fmt: skip
        ctx.config = (kernel_id, width, height, tile_size, bg is not None)
        ctx.save_for_backward(wparams, hull, features, opacities, bg, tile_offsets, flatten_ids,
                              trans, last_ids)  # fmt: skip
        ctx.mark_non_differentiable(max_weights)
        return colors, alphas, max_weights

    @staticmethod
    def backward(ctx, v_colors, v_alphas, _v_max_weights):
        wparams, hull, features, opacities, bg, tile_offsets, flatten_ids, trans, last_ids = ctx.saved_tensors
        kernel_id, width, height, tile_size, has_bg = ctx.config
        V, _, C = features.shape
        v_colors = _cotangent(v_colors, torch.Size((V, height, width, C)), features.device)
        v_alphas = _cotangent(v_alphas, torch.Size((V, height, width, 1)), features.device)
        v_wparams, v_features, v_opacities, v_bg = ext_for(features).rasterize_bwd(
            kernel_id, wparams, hull, features, opacities, bg, width, height, tile_size,
            tile_offsets, flatten_ids, trans, last_ids, v_colors, v_alphas,
        )  # fmt: skip
        return (None, v_wparams, None, v_features, v_opacities, v_bg if has_bg else None, None,
                None, None, None, None)  # fmt: skip


def rasterize_to_pixels(
    family: RasterFamily, window: Sequence[Tensor], features: Tensor, opacities: Tensor, width: int, height: int,
    tile_offsets: Tensor, flatten_ids: Tensor, backgrounds: Tensor | None = None, tile_size: int = 16,
) -> tuple[Tensor, Tensor, Tensor]:  # fmt: skip
    """Stage 3 of ``family``: composites its ``window`` tensors (packed by ``family.pack_window``);
    ``features`` [V, N, C], ``opacities`` [N], tiles from :func:`isect_tiles`, ``backgrounds`` [V, C].

    Returns:
        colors [V, H, W, C], alphas [V, H, W, 1], max_weights [V, N].
    """
    wparams, hull = family.pack_window(*window)  # [V, N, P], [V, N, K] or None
    return _Rasterize.apply(
        family.kernel_id, wparams, hull, features, opacities, backgrounds, int(width), int(height),
        int(tile_size), tile_offsets, flatten_ids,
    )  # fmt: skip


# ENGINE.md stage 3 per family: the window tensors, then the arguments of rasterize_to_pixels.
def rasterize_gaussians_to_pixels(means2d: Tensor, conics: Tensor, *args, **kwargs) -> tuple[Tensor, Tensor, Tensor]:
    """Kernel twin of :func:`recon.ops.reference.rasterize_gaussians_to_pixels`."""
    return rasterize_to_pixels(GAUSSIAN, (means2d, conics), *args, **kwargs)


def rasterize_triangles_to_pixels(verts2d: Tensor, sigma: Tensor, *args, **kwargs) -> tuple[Tensor, Tensor, Tensor]:
    """Kernel twin of :func:`recon.ops.reference.rasterize_triangles_to_pixels`."""
    return rasterize_to_pixels(TRIANGLE, (verts2d, sigma), *args, **kwargs)


def rasterize_convexes_to_pixels(
    points2d: Tensor, hull: Tensor, delta: Tensor, sigma: Tensor, depths: Tensor, *args, **kwargs
) -> tuple[Tensor, Tensor, Tensor]:
    """Kernel twin of :func:`recon.ops.reference.rasterize_convexes_to_pixels` (depth is a constant)."""
    return rasterize_to_pixels(CONVEX, (points2d, hull, delta, sigma, depths), *args, **kwargs)
