"""Pure-PyTorch twin of the rasterization engine (ENGINE.md): the test oracle and the fallback.

Exports the stage functions with the exact signatures every backend shares, per family and, for
the pipeline, once for any family record (:class:`recon.ops.family.RasterFamily`). No compiled
code; gradients come from autograd; float32 and float64; any device.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from torch import Tensor

from recon.ops.reference.convex import convex_hull_2d, project_convexes
from recon.ops.reference.ges import project_ges, rasterize_ges_to_pixels
from recon.ops.reference.project import project_gaussians, project_triangles
from recon.ops.reference.rasterize import (
    rasterize_convexes_to_pixels,
    rasterize_gaussians_to_pixels,
    rasterize_triangles_to_pixels,
)
from recon.ops.reference.tiles import isect_tiles


def project(family: Any, inputs: Sequence[Tensor], *args: Any) -> tuple[Tensor, ...]:
    """Stage 1 of ``family`` (a ``RasterFamily``): ``inputs`` then the camera arguments of ENGINE.md."""
    return family.reference_project(*inputs, *args)


def rasterize_to_pixels(
    family: Any, window: Sequence[Tensor], *args: Any, **kwargs: Any
) -> tuple[Tensor, Tensor, Tensor]:
    """Stage 3 of ``family``: its ``window`` tensors, then the shared arguments of ENGINE.md."""
    return family.reference_to_pixels(*window, *args, **kwargs)


__all__ = [
    "convex_hull_2d",
    "isect_tiles",
    "project",
    "project_convexes",
    "project_gaussians",
    "project_ges",
    "project_triangles",
    "rasterize_convexes_to_pixels",
    "rasterize_gaussians_to_pixels",
    "rasterize_ges_to_pixels",
    "rasterize_to_pixels",
    "rasterize_triangles_to_pixels",
]
