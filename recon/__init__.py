"""recon: sparse-view 3D reconstruction with Gaussians, triangles and smooth convexes."""

__version__ = "0.1.0"
