"""Pure-PyTorch twin of the rasterization engine (ENGINE.md): the test oracle and the fallback.

Exports the stage functions with the exact signatures every backend shares. No compiled code;
gradients come from autograd; float32 and float64; any device.
"""

from recon.ops.reference.convex import convex_hull_2d, project_convexes
from recon.ops.reference.project import project_gaussians, project_triangles
from recon.ops.reference.rasterize import (
    rasterize_convexes_to_pixels,
    rasterize_gaussians_to_pixels,
    rasterize_triangles_to_pixels,
)
from recon.ops.reference.tiles import isect_tiles

__all__ = [
    "convex_hull_2d",
    "isect_tiles",
    "project_convexes",
    "project_gaussians",
    "project_triangles",
    "rasterize_convexes_to_pixels",
    "rasterize_gaussians_to_pixels",
    "rasterize_triangles_to_pixels",
]
