"""Exports other tools open: 3DGS PLY and .splat, meshes, point clouds, cameras (``recon export``).

* :mod:`recon.export.ply`: Gaussians as the Inria 3DGS PLY and antimatter15's ``.splat``.
* :mod:`recon.export.mesh`: triangles as an opaque coloured mesh; PLY / OBJ / GLB via trimesh.
* :mod:`recon.export.tsdf`: any primitive as a mesh, by TSDF fusion of rendered depth and colour.
* :mod:`recon.export.scene`: cameras as a COLMAP text model or ``transforms.json``, the point cloud.
* :mod:`recon.export.output`: every export is written to a temporary name, then renamed.
* :mod:`recon.export.cli`: ``recon export RUN --format F --out PATH [--overwrite]``.

Heavy dependencies (trimesh, open3d, scipy) are imported by the function that needs them.
"""

from recon.export.ply import load_ply, write_gaussian_ply, write_splat

__all__ = ["load_ply", "write_gaussian_ply", "write_splat"]
