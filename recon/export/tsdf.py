"""A mesh of any primitive family by TSDF fusion of rendered depth and colour (open3d).

Each view renders colour, depth (``sum(w z) / alpha``) and alpha; pixels with ``alpha >= 0.5``
are fused into open3d's ``t.geometry.VoxelBlockGrid`` with their colour un-premultiplied
(``rgb / alpha`` over a black background). Views are the training cameras plus
``views_between`` poses interpolated between consecutive ones (Catmull-Rom positions, slerped
rotations: :func:`viewer.paths.interpolate`), which fill in surfaces the sparse training views
see at grazing angles.

The region and the voxel size come from the scene: the box holding the 1-99 % quantiles of the
reference points (the run's prior point cloud, else the primitives' centres), grown by 10 %,
is split into ``resolution`` voxels along its diagonal; the truncation distance is 4 voxels.
The fused mesh is cropped to that box.

open3d's legacy ``pipelines.integration.ScalableTSDFVolume`` is not used: with open3d-cpu 0.20 it
returns an empty mesh even for one flat depth map, where ``VoxelBlockGrid`` recovers the plane.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from recon.cameras import Cameras
from recon.errors import ConfigError
from recon.export.mesh import Mesh
from recon.priors._progress import track
from recon.render import render


@dataclass(frozen=True)
class FusionRegion:
    """Where and how finely to fuse.

    Attributes:
        lo: [3] lower corner of the box.
        hi: [3] upper corner of the box.
        voxel: voxel edge length.
    """

    lo: np.ndarray
    hi: np.ndarray
    voxel: float

    @classmethod
    def around(cls, points: Tensor, resolution: int = 256, margin: float = 0.1) -> FusionRegion:
        """The quantile box of ``points`` [P, 3] grown by ``margin``, ``resolution`` voxels along its diagonal."""
        if points.shape[0] == 0:
            raise ConfigError("nothing to fuse: no points to size the region from")
        q = torch.quantile(points.double().cpu(), torch.tensor([0.01, 0.99], dtype=torch.float64), dim=0).numpy()
        pad = margin * (q[1] - q[0]) + 1e-6
        lo, hi = q[0] - pad, q[1] + pad
        return cls(lo, hi, float(np.linalg.norm(hi - lo)) / resolution)


def fusion_cameras(cameras: Cameras, views_between: int) -> Cameras:
    """The cameras plus ``views_between`` interpolated ones between each consecutive pair.

    Interpolated views take the first camera's image size and a centred principal point.
    """
    if views_between <= 0 or len(cameras) < 2:
        return cameras
    from viewer.cameras import cameras_to_poses, pose_to_cameras
    from viewer.paths import interpolate

    poses = interpolate(cameras_to_poses(cameras), (len(cameras) - 1) * (views_between + 1) + 1)
    extra = [p for i, p in enumerate(poses) if i % (views_between + 1)]
    between = pose_to_cameras(extra, int(cameras.widths[0]), int(cameras.heights[0]))
    return Cameras.create(
        torch.cat([cameras.Ks.cpu(), between.Ks]),
        torch.cat([cameras.viewmats.cpu(), between.viewmats]),
        torch.cat([cameras.widths, between.widths]),
        torch.cat([cameras.heights, between.heights]),
    )


def fuse_depth_maps(
    frames: Iterable[tuple[Cameras, Tensor, Tensor]], region: FusionRegion, min_weight: float = 1.0
) -> Mesh:
    """TSDF fusion of depth maps into a coloured mesh cropped to ``region`` (open3d ``VoxelBlockGrid``).

    Args:
        frames: per view, a one-camera :class:`Cameras`, its depth [H, W] (camera z, 0 = unknown)
            and colour [H, W, 3] in [0, 1].
        region: box and voxel size (truncation: 4 voxels).
        min_weight: voxels observed by fewer views are left out of the surface.

    Raises:
        ConfigError: the fused volume holds no surface.
    """
    import open3d as o3d
    import open3d.core as o3c

    grid = o3d.t.geometry.VoxelBlockGrid(
        attr_names=("tsdf", "weight", "color"), attr_dtypes=(o3c.float32, o3c.float32, o3c.float32),
        attr_channels=((1), (1), (3)), voxel_size=region.voxel, block_resolution=8, block_count=4096,
    )  # fmt: skip
    corners = np.stack(np.meshgrid(*zip(region.lo, region.hi), indexing="ij"), -1).reshape(-1, 3)  # [8, 3]
    for cam, depth, rgb in frames:
        viewmat = cam.viewmats[0].double().cpu().numpy()  # [4, 4]
        far = float(np.linalg.norm(corners - np.linalg.inv(viewmat)[:3, 3], axis=1).max())
        # open3d reads the pixel that holds the projection (floor), as recon's i + 0.5 centres need:
        # no principal-point shift (measured: shifting by half a pixel triples the surface error)
        K, extrinsic = o3c.Tensor(cam.Ks[0].double().cpu().numpy()), o3c.Tensor(viewmat)
        depth_image = o3d.t.geometry.Image(o3c.Tensor(np.ascontiguousarray(depth.float().cpu().numpy())))
        color_image = o3d.t.geometry.Image(o3c.Tensor(np.ascontiguousarray(rgb.float().cpu().numpy())))
        blocks = grid.compute_unique_block_coordinates(depth_image, K, extrinsic, 1.0, far, 4.0)
        grid.integrate(blocks, depth_image, color_image, K, K, extrinsic, 1.0, far, 4.0)
    fused = grid.extract_triangle_mesh(weight_threshold=min_weight).to_legacy()
    fused = fused.crop(o3d.geometry.AxisAlignedBoundingBox(region.lo, region.hi))
    if len(fused.triangles) == 0:
        raise ConfigError(
            "TSDF fusion found no surface in the scene's region",
            hint="check the run renders something (recon render) or raise --resolution",
        )
    colors = np.asarray(fused.vertex_colors) if fused.has_vertex_colors() else None
    return Mesh(np.asarray(fused.vertices), np.asarray(fused.triangles).astype(np.int64), vertex_colors=colors)


def rendered_frames(
    primitive: str,
    params: dict[str, Tensor],
    cameras: Cameras,
    *,
    sh_degree: int,
    backend: str = "auto",
    min_alpha: float = 0.5,
    progress: bool = True,
) -> Iterator[tuple[Cameras, Tensor, Tensor]]:
    """Per camera: the camera, its rendered depth [H, W] (0 where alpha < ``min_alpha``) and colour
    [H, W, 3] un-premultiplied over black (``rgb / alpha``)."""
    for i in track(range(len(cameras)), f"fusing {len(cameras)} views", enabled=progress):
        cam = cameras[i]
        with torch.no_grad():
            out = render(primitive, params, cam, sh_degree=sh_degree, backend=backend)
        alpha = out.alpha[0, ..., 0].float().cpu()  # [H, W]
        depth = torch.where(alpha >= min_alpha, out.depth[0, ..., 0].float().cpu(), torch.zeros_like(alpha))
        yield cam, depth, (out.rgb[0].float().cpu() / alpha.clamp_min(1e-6)[..., None]).clamp(0, 1)


def tsdf_mesh(
    primitive: str,
    params: dict[str, Tensor],
    cameras: Cameras,
    region: FusionRegion,
    *,
    sh_degree: int,
    backend: str = "auto",
    min_alpha: float = 0.5,
    min_weight: float = 1.0,
    progress: bool = True,
) -> Mesh:
    """Fuses the renders of ``params`` at ``cameras`` into a coloured mesh cropped to ``region``.

    Args:
        primitive: ``"gaussian"``, ``"triangle"`` or ``"convex"``.
        params: raw parameters of the family.
        cameras: the views to fuse (any sizes).
        region: box and voxel size.
        sh_degree: active SH degree.
        backend: rasterizer backend.
        min_alpha: pixels with a lower accumulated opacity are not fused.
        min_weight: voxels observed by fewer views are left out of the surface.
        progress: show a progress bar on an interactive terminal.

    Raises:
        ConfigError: the fused volume holds no surface.
    """
    frames = rendered_frames(
        primitive, params, cameras, sh_degree=sh_degree, backend=backend, min_alpha=min_alpha, progress=progress
    )
    return fuse_depth_maps(frames, region, min_weight)
