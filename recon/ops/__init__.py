"""Public differentiable rasterization ops: Gaussians, triangles and smooth convexes.

Each op validates its inputs (:mod:`recon.ops.validate`), evaluates colours (per-primitive
colours, per-view features or SH, :mod:`recon.ops.sh`), then composes the three engine stages of
``ENGINE.md`` from one backend module chosen by :func:`resolve_backend`: ``reference`` (pure
PyTorch, :mod:`recon.ops.reference`) or the compiled ``cpu``/``cuda`` extension
(:mod:`recon.ops.kernels`). ``"gsplat"`` renders Gaussians with ``gsplat.rasterization`` (CUDA
only) for comparison.

Example:
    >>> out = rasterize_gaussians(means, quats, scales, opacities, rgb, viewmats, Ks, 64, 48)
    >>> out.colors.shape  # [V, 48, 64, 3]
"""

from recon.ops.dispatch import resolve_backend
from recon.ops.family import FAMILIES, RasterFamily
from recon.ops.rasterize import (
    RasterOutput,
    rasterize_convexes,
    rasterize_gaussians,
    rasterize_triangles,
)
from recon.ops.validate import RasterInputError

__all__ = [
    "FAMILIES",
    "RasterFamily",
    "RasterInputError",
    "RasterOutput",
    "rasterize_convexes",
    "rasterize_gaussians",
    "rasterize_triangles",
    "resolve_backend",
]
