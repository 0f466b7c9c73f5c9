"""The public rasterization ops: validate, evaluate colours, compose the engine stages.

Shapes: ``V`` views, ``N`` primitives, ``K`` points per convex, ``C`` channels (any ``C >= 1``).
Every op takes *activated* values (opacities in [0, 1], positive scales/sigma/delta), so it
stays stateless, and returns a :class:`RasterOutput`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from recon.ops import reference
from recon.ops.dispatch import resolve_backend
from recon.ops.family import CONVEX, GAUSSIAN, TRIANGLE, RasterFamily, raster_family
from recon.ops.sh import eval_sh_colors
from recon.ops.validate import InputChecker, RasterInputError, check_image_size, check_planes


@dataclass
class RasterOutput:
    """What a rasterization op returns.

    Attributes:
        colors: [V, H, W, C] composited colours including ``T * background``.
        alphas: [V, H, W, 1] accumulated opacity ``1 - T``.
        depths: [V, H, W, 1] expected camera depth ``sum(w z) / alpha`` (0 where alpha is 0).
        means2d: [V, N, 2] 2D footprint centres. When the op's inputs require grad, ``.grad``
            after ``backward()`` is the gradient of the loss w.r.t. translating the primitive's
            2D footprint (Gaussians: the projected mean, as gsplat's ``meta["means2d"]``, kept
            with ``retain_grad()``; triangles/convexes: all projected vertices/points moved
            together, exposed as a leaf). Densification reads it.
        radii: [V, N, 2] int32 footprint half sizes in pixels (0 = culled in that view).
        max_weights: [V, N] max over pixels of the blending weight ``alpha * T`` (no grad);
            None for the gsplat backend, which does not report it.
    """

    colors: Tensor
    alphas: Tensor
    depths: Tensor
    means2d: Tensor
    radii: Tensor
    max_weights: Tensor | None


def _features(chk: InputChecker, colors: object, sh_degree: int | None, centers: Tensor, viewmats: Tensor) -> Tensor:
    """Per-view features [V, N, C] from colours [N, C], features [V, N, C] or SH [N, K, C]."""
    if sh_degree is not None:
        if isinstance(sh_degree, bool) or not isinstance(sh_degree, int) or not 0 <= sh_degree <= 3:
            raise chk.fail(f"sh_degree must be None or an int in 0..3, got {sh_degree!r}")
        sh = chk.tensor("colors", colors, ("N", "SH", "C"))
        if sh.shape[1] < (sh_degree + 1) ** 2:
            raise chk.fail(
                f"colors must be SH coefficients [N, >= {(sh_degree + 1) ** 2}, C] for "
                f"sh_degree={sh_degree}, got {list(sh.shape)}"
            )
        return eval_sh_colors(sh, sh_degree, centers, viewmats)
    if isinstance(colors, Tensor) and colors.dim() == 3:
        return chk.tensor("colors", colors, ("V", "N", "C"))
    feats = chk.tensor("colors", colors, ("N", "C"))
    return feats[None].expand(chk.dims["V"], -1, -1)


def _append_depth(features: Tensor, depths: Tensor, backgrounds: Tensor | None) -> tuple[Tensor, Tensor | None]:
    """Appends the depth channel to features [V,N,C] and a zero channel to backgrounds [V,C]."""
    feats = torch.cat([features, depths[..., None].to(features.dtype)], dim=-1)
    if backgrounds is not None:
        backgrounds = torch.cat([backgrounds, backgrounds.new_zeros(backgrounds.shape[0], 1)], -1)
    return feats, backgrounds


def _split_output(
    colors: Tensor, alphas: Tensor, max_weights: Tensor | None, means2d: Tensor, radii: Tensor
) -> RasterOutput:
    acc_depth = colors[..., -1:]
    safe = torch.where(alphas > 0, alphas, torch.ones_like(alphas))
    depth = torch.where(alphas > 0, acc_depth / safe, torch.zeros_like(acc_depth))
    return RasterOutput(colors[..., :-1], alphas, depth, means2d, radii, max_weights)


def _translation_handle(means2d: Tensor, enabled: bool) -> tuple[Tensor, Tensor | None]:
    """A leaf copy of ``means2d`` whose grad collects the 2D translation gradient.

    Returns the tensor to expose and the offset ``m - m.detach()`` (zero valued) to add to every
    projected vertex, or None when no gradient is wanted.
    """
    if not enabled:
        return means2d.detach(), None
    handle = means2d.detach().requires_grad_(True)
    return handle, handle - handle.detach()


def _wants_grad(*tensors: Tensor) -> bool:
    return torch.is_grad_enabled() and any(t.requires_grad for t in tensors)


def rasterize(
    family: RasterFamily | str,
    inputs: Mapping[str, Tensor],
    colors: Tensor,
    viewmats: Tensor,
    Ks: Tensor,
    width: int,
    height: int,
    *,
    sh_degree: int | None = None,
    backgrounds: Tensor | None = None,
    near_plane: float = 0.01,
    far_plane: float = 1e10,
    tile_size: int = 16,
    backend: str = "auto",
    **options: float,
) -> RasterOutput:
    """Renders primitives of any family: validate, colour, project, bin, composite (ENGINE.md).

    Args:
        family: a :class:`~recon.ops.family.RasterFamily` or its name (``"gaussian"``, ...).
        inputs: the family's activated per-primitive tensors by name (``family.inputs``:
            Gaussians ``means, quats, scales, opacities``; triangles ``vertices, opacities,
            sigma``; convexes ``points, opacities, delta, sigma``).
        colors: [N, C] colours, [V, N, C] per-view features, or [N, K, C] SH coefficients (with
            ``sh_degree``; ``K >= (sh_degree + 1)^2``; seen from the camera centre to the
            primitive's centre).
        viewmats: [V, 4, 4] world-to-camera matrices (OpenCV axes).
        Ks: [V, 3, 3] pinhole intrinsics in pixels.
        width: image width in pixels.
        height: image height in pixels.
        sh_degree: evaluate ``colors`` as SH of this degree (0..3) per view, ``+ 0.5`` and
            clamped at 0; None = plain colours.
        backgrounds: [V, C] background colours (zeros when None).
        near_plane: primitives closer than this (camera z) are culled.
        far_plane: primitives farther than this are culled.
        tile_size: tile side in pixels.
        backend: ``"auto" | "cuda" | "cpu" | "reference"``, and ``"gsplat"`` for Gaussians.
        **options: the family's projection options (``family.options``: Gaussians ``eps2d``).

    Returns:
        A :class:`RasterOutput`.

    Raises:
        RasterInputError: (a ``ValueError``) on a wrong shape, dtype, device, value or option.
    """
    family = raster_family(family)
    width, height = check_image_size(family.op_name, width, height)
    check_planes(family.op_name, near_plane, far_plane)
    chk = InputChecker(family.op_name)
    unknown = set(options) - set(family.options)
    if unknown:
        raise chk.fail(f"unknown option(s) {sorted(unknown)}; {family.plural} take {sorted(family.options)}")
    opts = {**family.options, **options}
    prims = {spec.name: spec.check(chk, inputs.get(spec.name)) for spec in family.inputs}
    if family.check is not None:
        family.check(chk, prims)
    viewmats = chk.tensor("viewmats", viewmats, ("V", 4, 4))
    Ks = chk.tensor("Ks", Ks, ("V", 3, 3))
    if backend == "gsplat":
        if family.name != "gaussian":
            raise chk.fail("backend='gsplat' renders Gaussians only; use 'auto', 'cpu', 'cuda' or 'reference'")
        return _rasterize_gsplat(chk, prims, colors, viewmats, Ks, width, height, sh_degree, backgrounds,
                                 near_plane, far_plane, opts["eps2d"], tile_size)  # fmt: skip
    features = _features(chk, colors, sh_degree, family.centers(prims), viewmats)  # [V, N, C]
    backgrounds = chk.optional("backgrounds", backgrounds, ("V", "C"))
    if family.kernel_id is None:  # no compiled kernel: the reference twin renders the family
        if backend not in ("auto", "reference"):
            raise chk.fail(f"backend={backend!r}: {family.plural} have no compiled kernel; use 'auto' or 'reference'")
        engine = reference
    else:
        engine = resolve_backend(backend, chk.device)

    means2d, depths, *geometry, radii = engine.project(
        family, [prims[k] for k in family.project_inputs], viewmats, Ks, width, height, near_plane, far_plane,
        *opts.values(),
    )  # fmt: skip
    tile_offsets, flatten_ids = engine.isect_tiles(means2d, radii, depths, width, height, tile_size)
    if family.footprint_handle:
        means2d, shift = _translation_handle(means2d, _wants_grad(prims[family.position]))
        if shift is not None:  # move every projected point with the handle
            geometry[0] = geometry[0] + shift[..., None, :]
    elif means2d.requires_grad:
        means2d.retain_grad()
    feats, bgs = _append_depth(features, depths, backgrounds)
    window = family.window(means2d, depths, tuple(geometry), prims)
    image, alphas, max_weights = engine.rasterize_to_pixels(
        family, window, feats, prims["opacities"], width, height, tile_offsets, flatten_ids, bgs, tile_size
    )
    return _split_output(image, alphas, max_weights, means2d, radii)


def rasterize_gaussians(
    means: Tensor, quats: Tensor, scales: Tensor, opacities: Tensor, colors: Tensor, viewmats: Tensor, Ks: Tensor,
    width: int, height: int, **kwargs: Any,
) -> RasterOutput:  # fmt: skip
    """Renders 3D Gaussians (3DGS / gsplat 1.5 conventions, pinhole, "classic" mode).

    Args:
        means: [N, 3] centres.
        quats: [N, 4] rotations ``(w, x, y, z)``, any non-zero norm.
        scales: [N, 3] activated (positive) standard deviations.
        opacities: [N] activated opacities in [0, 1].
        colors, viewmats, Ks, width, height: as :func:`rasterize`.
        **kwargs: keywords of :func:`rasterize` (``sh_degree``, ``backgrounds``, ``near_plane``,
            ``far_plane``, ``tile_size``, ``backend``, incl. ``"gsplat"``) and ``eps2d``, the
            dilation of the 2D covariance in pixels^2 (0.3).

    Returns:
        A :class:`RasterOutput` (``means2d``: the projected means, grad retained).
    """
    inputs = {"means": means, "quats": quats, "scales": scales, "opacities": opacities}
    return rasterize(GAUSSIAN, inputs, colors, viewmats, Ks, width, height, **kwargs)


def rasterize_triangles(
    vertices: Tensor, colors: Tensor, opacities: Tensor, sigma: Tensor, viewmats: Tensor, Ks: Tensor, width: int,
    height: int, **kwargs: Any,
) -> RasterOutput:  # fmt: skip
    """Renders triangles with the Triangle Splatting window ``(phi(p) / phi(incentre))^sigma``.

    Args:
        vertices: [N, 3, 3] world-space vertices (triangle, vertex, xyz); culled when a vertex is
            closer than ``near_plane`` or the centroid farther than ``far_plane``.
        colors: as :func:`rasterize` (SH seen towards the 3D centroid).
        opacities: [N] activated opacities in [0, 1].
        sigma: [N] window exponents (> 0; small = sharp, 1 = linear).
        viewmats, Ks, width, height, **kwargs: as :func:`rasterize`.

    Returns:
        A :class:`RasterOutput`; ``means2d`` are the centres of the projected bounding boxes.
    """
    inputs = {"vertices": vertices, "opacities": opacities, "sigma": sigma}
    return rasterize(TRIANGLE, inputs, colors, viewmats, Ks, width, height, **kwargs)


def rasterize_convexes(
    points: Tensor, colors: Tensor, opacities: Tensor, delta: Tensor, sigma: Tensor, viewmats: Tensor, Ks: Tensor,
    width: int, height: int, **kwargs: Any,
) -> RasterOutput:  # fmt: skip
    """Renders smooth convexes (3D Convex Splatting): 2D hull, log-sum-exp indicator.

    Args:
        points: [N, K, 3] world-space points per convex (3 <= K <= 8); culled when a point is
            closer than ``near_plane`` or the centroid farther than ``far_plane``.
        colors: as :func:`rasterize` (SH seen towards the 3D centroid of the points).
        opacities: [N] activated opacities in [0, 1].
        delta: [N] smoothness (> 0) of the log-sum-exp over hull edges.
        sigma: [N] sharpness (> 0) of the sigmoid.
        viewmats, Ks, width, height, **kwargs: as :func:`rasterize`.

    Returns:
        A :class:`RasterOutput`; ``means2d`` are the centres of the conservative footprint boxes.
    """
    inputs = {"points": points, "opacities": opacities, "delta": delta, "sigma": sigma}
    return rasterize(CONVEX, inputs, colors, viewmats, Ks, width, height, **kwargs)


def _rasterize_gsplat(
    chk: InputChecker,
    prims: Mapping[str, Tensor],
    colors: object,
    viewmats: Tensor,
    Ks: Tensor,
    width: int,
    height: int,
    sh_degree: int | None,
    backgrounds: object,
    near_plane: float,
    far_plane: float,
    eps2d: float,
    tile_size: int,
) -> RasterOutput:
    """``gsplat.rasterization`` with the equivalent arguments (CUDA only, comparison backend)."""
    means, quats, scales, opacities = (prims[k] for k in ("means", "quats", "scales", "opacities"))
    if means.device.type != "cuda":
        raise RasterInputError(
            f"{chk.op}: backend='gsplat' needs CUDA tensors (gsplat's rasterizer is CUDA-only), "
            f"got tensors on {means.device}; use backend='auto' on CPU"
        )
    try:
        from gsplat import rasterization
    except ImportError as err:
        raise RuntimeError(f"{chk.op}: backend='gsplat' needs the gsplat package: pip install 'recon[gsplat]'") from err
    if sh_degree is None:
        colors = chk.tensor(
            "colors",
            colors,
            ("V", "N", "C") if getattr(colors, "dim", lambda: 2)() == 3 else ("N", "C"),
        )
    else:
        colors = chk.tensor("colors", colors, ("N", "SH", 3))
    backgrounds = chk.optional("backgrounds", backgrounds, ("V", "C"))
    image, alphas, meta = rasterization(
        means, quats, scales, opacities, colors, viewmats, Ks, width, height,
        near_plane=near_plane, far_plane=far_plane, eps2d=eps2d, sh_degree=sh_degree,
        packed=False, tile_size=tile_size, backgrounds=backgrounds, render_mode="RGB+ED",
    )  # fmt: skip
    means2d = meta["means2d"]
    if means2d.requires_grad:
        means2d.retain_grad()
    depth = torch.where(alphas > 0, image[..., -1:], torch.zeros_like(alphas))
    return RasterOutput(image[..., :-1], alphas, depth, means2d, meta["radii"].to(torch.int32), None)
