"""Coloured point clouds: the common currency of every geometry prior.

A :class:`PointCloud` is plain data (points, colours, a source tag). The clean-up steps that
turn a raw prior into an initialisation (merge, voxel downsampling, statistical outlier removal)
are free functions, written with numpy/scipy so that they need no optional dependency; PLY files
are binary little-endian with ``x y z`` floats and ``red green blue`` bytes, the layout open3d,
COLMAP and every splat viewer read.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from recon.errors import DataError


@dataclass
class PointCloud:
    """A coloured point cloud.

    Attributes:
        points: [P, 3] float32 world positions.
        colors: [P, 3] float32 colours in [0, 1].
        source: which prior built it (``"mvs"``, ``"hull"``, ``"sfm"``, ``"random"``, ...).
    """

    points: Tensor
    colors: Tensor
    source: str

    def __post_init__(self) -> None:
        self.points = torch.as_tensor(self.points, dtype=torch.float32).reshape(-1, 3)
        self.colors = torch.as_tensor(self.colors, dtype=torch.float32).reshape(-1, 3)
        if self.points.shape[0] != self.colors.shape[0]:
            raise ValueError(f"{self.points.shape[0]} points but {self.colors.shape[0]} colours")

    def __len__(self) -> int:
        return int(self.points.shape[0])

    @staticmethod
    def empty(source: str) -> "PointCloud":
        return PointCloud(torch.zeros(0, 3), torch.zeros(0, 3), source)


def merge_clouds(clouds: list[PointCloud], source: str | None = None) -> PointCloud:
    """Concatenates clouds; the source tag joins theirs with ``+`` unless given."""
    clouds = [c for c in clouds if len(c) > 0]
    if not clouds:
        return PointCloud.empty(source or "empty")
    tag = source or "+".join(dict.fromkeys(c.source for c in clouds))
    return PointCloud(
        torch.cat([c.points for c in clouds]), torch.cat([c.colors for c in clouds]), tag
    )


def voxel_downsample(cloud: PointCloud, voxel_size: float) -> PointCloud:
    """Replaces the points of every occupied voxel by their mean position and mean colour.

    Args:
        cloud: input cloud.
        voxel_size: edge length of the cubic voxels in world units (> 0).
    """
    if voxel_size <= 0:
        raise ValueError(f"voxel_size must be > 0, got {voxel_size}")
    if len(cloud) == 0:
        return cloud
    pts = cloud.points.double()  # [P, 3]
    keys = torch.floor((pts - pts.min(0).values) / voxel_size).long()  # [P, 3]
    _, inverse, counts = torch.unique(keys, dim=0, return_inverse=True, return_counts=True)
    m = counts.shape[0]
    mean_p = torch.zeros(m, 3, dtype=torch.float64).index_add_(0, inverse, pts)
    mean_c = torch.zeros(m, 3, dtype=torch.float64).index_add_(0, inverse, cloud.colors.double())
    denom = counts.double()[:, None]
    return PointCloud((mean_p / denom).float(), (mean_c / denom).float(), cloud.source)


def statistical_outlier_mask(points: Tensor, num_neighbors: int = 20, std_ratio: float = 2.0) -> Tensor:
    """Open3D's ``remove_statistical_outlier`` rule, with scipy's k-d tree.

    A point is kept when its mean distance to its ``num_neighbors`` nearest neighbours is at most
    ``mean + std_ratio * std`` of that statistic over the whole cloud.

    Args:
        points: [P, 3] positions.

    Returns:
        [P] bool mask of the points kept.
    """
    from scipy.spatial import cKDTree

    p = points.shape[0]
    if p <= num_neighbors:
        return torch.ones(p, dtype=torch.bool)
    xyz = points.double().cpu().numpy()
    # k + 1 because the nearest neighbour of a point is itself.
    dist, _ = cKDTree(xyz).query(xyz, k=num_neighbors + 1)  # [P, k + 1]
    mean_d = dist[:, 1:].mean(axis=1)  # [P]
    thresh = mean_d.mean() + std_ratio * mean_d.std(ddof=1)
    return torch.from_numpy(mean_d <= thresh)


def remove_outliers(cloud: PointCloud, num_neighbors: int = 20, std_ratio: float = 2.0) -> PointCloud:
    """The cloud without its statistical outliers (see :func:`statistical_outlier_mask`)."""
    keep = statistical_outlier_mask(cloud.points, num_neighbors, std_ratio)
    return PointCloud(cloud.points[keep], cloud.colors[keep], cloud.source)


def clean_cloud(
    cloud: PointCloud,
    max_points: int = 200_000,
    voxel_size: float | None = None,
    num_neighbors: int = 20,
    std_ratio: float = 2.0,
) -> PointCloud:
    """Voxel-downsamples then removes statistical outliers.

    Args:
        cloud: the merged raw prior.
        max_points: when ``voxel_size`` is None, the voxel is chosen (doubling from 1/1000 of
            the robust extent) until at most this many points remain.
        voxel_size: fixed voxel edge; None picks it from ``max_points``.
    """
    if len(cloud) == 0:
        return cloud
    if voxel_size is None:
        lo = torch.quantile(cloud.points[:: max(1, len(cloud) // 100_000)], 0.02, dim=0)
        hi = torch.quantile(cloud.points[:: max(1, len(cloud) // 100_000)], 0.98, dim=0)
        voxel_size = max(float((hi - lo).norm()) / 1000.0, 1e-9)
        out = voxel_downsample(cloud, voxel_size)
        while len(out) > max_points:
            voxel_size *= 1.5
            out = voxel_downsample(cloud, voxel_size)
    else:
        out = voxel_downsample(cloud, voxel_size)
    return remove_outliers(out, num_neighbors, std_ratio)


# ---------------------------------------------------------------------------------------- PLY
_PLY_DTYPE = np.dtype(
    [("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("red", "u1"), ("green", "u1"), ("blue", "u1")]
)


def write_ply(path: str | Path, cloud: PointCloud) -> None:
    """Writes a binary little-endian PLY (x y z float, red green blue uchar), atomically."""
    path = Path(path)
    data = np.empty(len(cloud), dtype=_PLY_DTYPE)
    xyz = cloud.points.detach().cpu().numpy()
    rgb = np.clip(np.round(cloud.colors.detach().cpu().numpy() * 255.0), 0, 255).astype(np.uint8)
    for i, name in enumerate("xyz"):
        data[name] = xyz[:, i]
    for i, name in enumerate(("red", "green", "blue")):
        data[name] = rgb[:, i]
    header = (
        "ply\nformat binary_little_endian 1.0\n"
        f"comment recon prior: {cloud.source}\n"
        f"element vertex {len(cloud)}\n"
        "property float x\nproperty float y\nproperty float z\n"
        "property uchar red\nproperty uchar green\nproperty uchar blue\nend_header\n"
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(header.encode("ascii"))
            f.write(data.tobytes())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_ply(path: str | Path) -> PointCloud:
    """Reads the PLY layout written by :func:`write_ply` (binary little-endian, xyz + rgb)."""
    path = Path(path)
    with open(path, "rb") as f:
        if f.readline().strip() != b"ply":
            raise DataError("not a PLY file", path=path)
        props: list[tuple[str, str]] = []
        count, fmt, source = 0, "", "ply"
        while True:
            line = f.readline()
            if not line:
                raise DataError("PLY header has no end_header", path=path)
            words = line.decode("ascii", "replace").split()
            if not words:
                continue
            if words[0] == "end_header":
                break
            if words[0] == "format":
                fmt = words[1]
            elif words[:2] == ["element", "vertex"]:
                count = int(words[2])
            elif words[0] == "property" and len(words) == 3:
                props.append((words[2], {"float": "<f4", "double": "<f8", "uchar": "u1"}.get(words[1], "")))
            elif words[:3] == ["comment", "recon", "prior:"] and len(words) > 3:
                source = words[3]
        if fmt != "binary_little_endian" or any(not t for _, t in props):
            raise DataError(f"unsupported PLY layout ({fmt}, {props})", path=path,
                            hint="write it with recon or as binary little-endian float/uchar")
        data = np.frombuffer(f.read(), dtype=np.dtype(props), count=count)
    xyz = np.stack([data[k] for k in "xyz"], axis=1).astype(np.float32)
    names = {n for n, _ in props}
    if {"red", "green", "blue"} <= names:
        rgb = np.stack([data[k] for k in ("red", "green", "blue")], axis=1).astype(np.float32) / 255.0
    else:
        rgb = np.full_like(xyz, 0.5)
    return PointCloud(torch.from_numpy(xyz), torch.from_numpy(rgb), source)
