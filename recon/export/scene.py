"""A run's cameras and point cloud for other tools: COLMAP text model, nerfstudio ``transforms.json``, PLY.

The cameras are the ones the run trained with (``RUN/cameras.json``, in the scene's own frame and
at the trained image size, so ``--downscale`` runs export downscaled intrinsics); the points are
the cloud the primitives were initialised from (``RUN/priors/points.ply``). Both writers are the
inverses of recon's readers (:mod:`recon.data.colmap_io`, :mod:`recon.data.nerfstudio`).
"""

from __future__ import annotations

from pathlib import Path

from recon.cameras import Cameras
from recon.data.colmap import model_from_cameras
from recon.data.colmap_io import write_model_text
from recon.data.nerfstudio import write_transforms
from recon.errors import ConfigError
from recon.priors.pointcloud import PointCloud, read_ply


def run_point_cloud(run_dir: Path) -> PointCloud:
    """The cloud a run was initialised from (``RUN/priors/points.ply``).

    Raises:
        ConfigError: the run saved none.
    """
    path = Path(run_dir) / "priors" / "points.ply"
    if not path.is_file():
        raise ConfigError(
            "the run has no initial point cloud (priors/points.ply)",
            path=run_dir,
            hint="runs save it when training starts; retrain to get one",
        )
    return read_ply(path)


def write_colmap_text(folder: Path, cameras: Cameras, names: list[str], cloud: PointCloud | None) -> int:
    """Writes ``cameras.txt``, ``images.txt`` and ``points3D.txt`` (one PINHOLE camera per image).

    Points carry colours and no tracks (recon does not keep the 2D observations).

    Returns:
        The number of images written.
    """
    points = None if cloud is None else cloud.points.double().numpy()
    colors = None if cloud is None else cloud.colors.double().numpy()
    write_model_text(model_from_cameras(cameras.to("cpu"), names, points, colors), folder)
    return len(cameras)


def write_nerfstudio(path: Path, cameras: Cameras, names: list[str], image_dir: str = "images") -> int:
    """Writes a nerfstudio ``transforms.json`` whose frames point at ``<image_dir>/<name>``.

    Returns:
        The number of frames written.
    """
    write_transforms(path, cameras.to("cpu"), [f"{image_dir}/{n}" if image_dir else n for n in names])
    return len(cameras)
