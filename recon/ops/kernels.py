"""Compiled backends (``cpu``: C++/OpenMP, ``cuda``: CUDA) of the engine: the torch.library ops.

The extension (built and loaded by :mod:`recon.ops._extension`) registers five ops with the
dispatcher, written once for every family (``cuda/src/bindings.cpp``): ``torch.ops.recon.
project_fwd`` / ``project_bwd`` (stage 1 of the family with the given kernel id),
``isect_tiles`` (stage 2) and ``rasterize_fwd`` / ``rasterize_bwd`` (stage 3 with the family's
packed window). This module registers their Python halves on the first use (:func:`library`):
a fake implementation per op (output shapes from the inputs; the intersection count is a dynamic
size) and the backward of the two forward ops (``torch.library.register_autograd``), so they
compose with ``torch.compile``, fake tensors and ``torch.library.opcheck``. It exports the
ENGINE.md stage functions per family (thin aliases, the same signatures as
:mod:`recon.ops.reference`) and once for any family record (``project``,
``rasterize_to_pixels``), which the pipeline calls.

The CPU thread count (:mod:`recon.ops.threads`) is refreshed on every eager call; a compiled
graph runs the ops with the count set by the last eager call.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import torch
from torch import Tensor

from recon.ops._extension import CUDA_DIR, ExtensionBuildError, available, ext_for, load_extension, on_load  # noqa: F401 (re-exported)
from recon.ops.family import CONVEX, GAUSSIAN, TRIANGLE, RasterFamily


def _f32(t: Tensor) -> Tensor:
    return t.to(torch.float32).contiguous()


def _i32(t: Tensor) -> Tensor:
    return t.to(torch.int32).contiguous()


def _cotangent(grad: Tensor | None, shape: torch.Size, like: Tensor) -> Tensor:
    """The incoming gradient as float32, or zeros of ``shape`` when the output was unused."""
    return like.new_zeros(shape, dtype=torch.float32) if grad is None else _f32(grad)


@functools.cache
def _layout(family: int, K: int) -> tuple[int, int, bool, tuple[int, ...]]:
    """``(inputs, differentiable inputs, has hull, shape2d sizes)`` of a family's projection, from
    its C++ Projector (so that a new family needs no Python edit here)."""
    num_inputs, num_grad, has_hull, sizes = load_extension().project_layout(family, K)
    return num_inputs, num_grad, has_hull, tuple(sizes)


def _points(inputs: Sequence[Tensor]) -> int:
    """K of ``inputs[0]`` [N, K, 3] (points per primitive), 0 for [N, D]."""
    return int(inputs[0].shape[1]) if inputs[0].dim() == 3 else 0


# ---- fake implementations: output metadata from the inputs (ENGINE.md shapes) ----------------


def _project_fwd_fake(family, inputs, viewmats, Ks, width, height, near_plane, far_plane, eps2d):
    V, N, K = viewmats.shape[0], inputs[0].shape[0], _points(inputs)
    _, _, has_hull, sizes = _layout(family, K)
    x = inputs[0]
    outs = [x.new_empty(V, N, 2), x.new_empty(V, N), x.new_empty(V, N, *sizes)]
    if has_hull:
        outs.append(x.new_empty(V, N, K, dtype=torch.int32))
    return outs + [x.new_empty(V, N, 2, dtype=torch.int32)]


def _project_bwd_fake(family, inputs, viewmats, Ks, width, height, eps2d, radii, v_means2d, v_depths, v_shape2d):
    return [torch.empty_like(x) for x in inputs]


def _isect_tiles_fake(means2d, radii, depths, width, height, tile_size):
    V = means2d.shape[0]
    tiles = (V, (height + tile_size - 1) // tile_size, (width + tile_size - 1) // tile_size)
    M = torch.library.get_ctx().new_dynamic_size()  # intersections: known after binning only
    return means2d.new_empty(tiles, dtype=torch.int32), means2d.new_empty(M, dtype=torch.int32)


def _rasterize_fwd_fake(family, wparams, hull, features, opacities, backgrounds, width, height, tile_size,
                        tile_offsets, flatten_ids):  # fmt: skip
    V, N, C = features.shape
    new = features.new_empty
    return (new(V, height, width, C), new(V, height, width, 1), new(V, height, width),
            new(V, height, width, dtype=torch.int32), new(V, N))  # fmt: skip


def _rasterize_bwd_fake(family, wparams, hull, features, opacities, backgrounds, width, height, tile_size,
                        tile_offsets, flatten_ids, transmittance, last_ids, v_colors, v_alphas):  # fmt: skip
    V, _, C = features.shape
    return torch.empty_like(wparams), torch.empty_like(features), torch.empty_like(opacities), features.new_empty(V, C)


# ---- autograd of the forward ops ---------------------------------------------------------------


def _project_setup(ctx, inputs, output) -> None:
    family, tensors, viewmats, Ks, width, height, _near, _far, eps2d = inputs
    num_inputs, num_grad, _, _ = _layout(family, _points(tensors))
    ctx.config = (family, width, height, eps2d, num_inputs - num_grad)
    ctx.shapes = [o.shape for o in output[:3]]  # means2d, depths, shape2d
    ctx.save_for_backward(*tensors[:num_grad], viewmats, Ks, output[-1])


def _project_backward(ctx, v_outs: list[Tensor | None]):
    *grad_inputs, viewmats, Ks, radii = ctx.saved_tensors
    family, width, height, eps2d, num_const = ctx.config
    cotangents = [_cotangent(v, shape, radii) for v, shape in zip(v_outs[:3], ctx.shapes)]
    grads = torch.ops.recon.project_bwd(family, grad_inputs, viewmats, Ks, width, height, eps2d, radii, *cotangents)
    return None, list(grads) + [None] * num_const, None, None, None, None, None, None, None


def _rasterize_setup(ctx, inputs, output) -> None:
    family, wparams, hull, features, opacities, backgrounds, width, height, tile_size, offsets, ids = inputs
    _, _, trans, last_ids, max_weights = output
    ctx.mark_non_differentiable(trans, last_ids, max_weights)
    ctx.config = (family, width, height, tile_size)
    ctx.save_for_backward(wparams, hull, features, opacities, backgrounds, offsets, ids, trans, last_ids)


def _rasterize_backward(ctx, v_colors, v_alphas, *_non_differentiable):
    wparams, hull, features, opacities, backgrounds, offsets, ids, trans, last_ids = ctx.saved_tensors
    family, width, height, tile_size = ctx.config
    V, _, C = features.shape
    v_colors = _cotangent(v_colors, torch.Size((V, height, width, C)), features)
    v_alphas = _cotangent(v_alphas, torch.Size((V, height, width, 1)), features)
    v_wparams, v_features, v_opacities, v_bg = torch.ops.recon.rasterize_bwd(
        family, wparams, hull, features, opacities, backgrounds, width, height, tile_size, offsets, ids, trans,
        last_ids, v_colors, v_alphas,
    )  # fmt: skip
    v_bg = None if backgrounds is None else v_bg
    return None, v_wparams, None, v_features, v_opacities, v_bg, None, None, None, None, None


def _register(_ext) -> None:
    """Registers the fake implementations and the autograd formulas of the extension's ops; runs
    once, when the extension is loaded (the C++ library names this module as their home)."""
    for name, fake in (
        ("project_fwd", _project_fwd_fake),
        ("project_bwd", _project_bwd_fake),
        ("isect_tiles", _isect_tiles_fake),
        ("rasterize_fwd", _rasterize_fwd_fake),
        ("rasterize_bwd", _rasterize_bwd_fake),
    ):
        torch.library.register_fake(f"recon::{name}", fake)
    torch.library.register_autograd("recon::project_fwd", _project_backward, setup_context=_project_setup)
    torch.library.register_autograd("recon::rasterize_fwd", _rasterize_backward, setup_context=_rasterize_setup)


on_load(_register)


def library(like: Tensor | None = None):
    """``torch.ops.recon``: the extension's ops, registered with their fake and autograd halves.

    Eager calls load the extension on first use and set the CPU thread count for tensors ``like``;
    inside ``torch.compile`` the ops are only looked up (the extension loads during the first
    trace, at a graph break, unless an eager call loaded it before).
    """
    if not torch.compiler.is_compiling():
        if like is None:
            load_extension()
        else:
            ext_for(like)
    return torch.ops.recon


# ---- stage 1: projection ---------------------------------------------------------------------


def project(
    family: RasterFamily, inputs: Sequence[Tensor], viewmats: Tensor, Ks: Tensor, width: int, height: int,
    near_plane: float = 0.01, far_plane: float = 1e10, *options: float,
) -> tuple[Tensor, ...]:  # fmt: skip
    """Stage 1 of ``family``: ``inputs`` in ``family.project_inputs`` order, cameras (``viewmats``
    [V, 4, 4], ``Ks`` [V, 3, 3]) and planes as ENGINE.md, then the family's ``options`` (at most
    one: ``eps2d``, the only projection option of the kernels).

    Returns:
        ``(means2d [V, N, 2], depths [V, N], *geometry, radii [V, N, 2] int32)`` as the reference
        projection of the family; gradients reach the first ``family.num_grad_inputs`` inputs.
    """
    if len(options) > 1:
        raise ValueError(f"project: the kernels take at most one option (eps2d), got {len(options)}")
    eps2d = float(options[0]) if options else 0.0
    outs = library(viewmats).project_fwd(
        family.kernel_id, [_f32(t) for t in inputs], _f32(viewmats), _f32(Ks), int(width), int(height),
        float(near_plane), float(far_plane), eps2d,
    )  # fmt: skip
    return tuple(outs)


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


def isect_tiles(means2d: Tensor, radii: Tensor, depths: Tensor, width: int, height: int, tile_size: int = 16):
    """Kernel twin of :func:`recon.ops.reference.isect_tiles`: footprints binned into tiles, sorted
    by (view, tile, depth) and stable in the primitive index (not differentiable).

    Returns:
        tile_offsets [V, tile_height, tile_width] int32, flatten_ids [M] int32.
    """
    return library(means2d).isect_tiles(
        _f32(means2d.detach()), _i32(radii), _f32(depths.detach()), int(width), int(height), int(tile_size)
    )


# ---- stage 3: rasterization ------------------------------------------------------------------


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
    colors, alphas, _trans, _last_ids, max_weights = library(features).rasterize_fwd(
        family.kernel_id, _f32(wparams), None if hull is None else _i32(hull), _f32(features), _f32(opacities),
        None if backgrounds is None else _f32(backgrounds), int(width), int(height), int(tile_size),
        _i32(tile_offsets), _i32(flatten_ids),
    )  # fmt: skip
    return colors, alphas, max_weights


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
