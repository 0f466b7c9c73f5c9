"""Sparse points from known poses, using only the training views (FSGS' preprocessing).

The training images are written to a scratch folder, SIFT features are extracted and matched
with pycolmap, the known pinhole cameras and poses are written as a COLMAP text model with no
points, and ``pycolmap.triangulate_points`` triangulates tracks with the poses held fixed. No
test view is ever read, so sparse-view protocols stay clean.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from recon.data.scene import SceneData
from recon.errors import DataError
from recon.priors.pointcloud import PointCloud


def _rotation_to_wxyz(R: np.ndarray) -> np.ndarray:
    """3x3 rotation -> unit quaternion (w, x, y, z), w >= 0."""
    import pycolmap

    x, y, z, w = pycolmap.Rotation3d(R).quat  # pycolmap stores xyzw
    q = np.array([w, x, y, z])
    return q if q[0] >= 0 else -q


def triangulate_known_poses(
    scene: SceneData,
    train_ids: list[int],
    workdir: str | Path | None = None,
    max_image_size: int = 1600,
    num_threads: int = -1,
) -> PointCloud:
    """Triangulates SIFT matches between the training views on their known poses.

    Args:
        scene: a posed scene (undistorted pinhole cameras).
        train_ids: training view indices (at least 2).
        workdir: scratch folder (kept for inspection); a temporary one is removed when None.
        max_image_size: SIFT image size cap.
        num_threads: pycolmap threads (-1: all).

    Returns:
        A :class:`PointCloud` with source ``"sfm"``.
    """
    import pycolmap

    if scene.cameras is None:
        raise DataError("triangulation needs known camera poses", path=scene.root)
    if len(train_ids) < 2:
        raise DataError(f"triangulation needs at least 2 training views, got {len(train_ids)}")
    own_tmp = workdir is None
    work = Path(tempfile.mkdtemp(prefix="recon-tri-")) if own_tmp else Path(workdir)
    try:
        pycolmap.logging.minloglevel = 2
        img_dir, model_dir, out_dir = work / "images", work / "known", work / "triangulated"
        for d in (img_dir, model_dir, out_dir):
            shutil.rmtree(d, ignore_errors=True)
            d.mkdir(parents=True)
        db_path = work / "database.db"
        db_path.unlink(missing_ok=True)
        names = []
        for k, i in enumerate(train_ids):
            name = f"{k:04d}.png"
            arr = (scene.images[i].clamp(0, 1).numpy() * 255 + 0.5).astype(np.uint8)
            Image.fromarray(arr).save(img_dir / name)
            names.append(name)
        ext = pycolmap.FeatureExtractionOptions()
        ext.max_image_size, ext.num_threads = max_image_size, num_threads
        reader = pycolmap.ImageReaderOptions()
        reader.camera_model = "PINHOLE"
        pycolmap.extract_features(db_path, img_dir, image_names=names, camera_mode=pycolmap.CameraMode.PER_IMAGE,
                                  reader_options=reader, extraction_options=ext, device=pycolmap.Device.cpu)
        db = pycolmap.Database.open(str(db_path))
        try:
            db_images = {im.name: im for im in db.read_all_images()}
            cam_lines, img_lines = [], []
            for k, i in enumerate(train_ids):
                im = db_images[names[k]]
                K = scene.cameras.Ks[i].double().numpy()
                w, h = int(scene.cameras.widths[i]), int(scene.cameras.heights[i])
                params = [K[0, 0], K[1, 1], K[0, 2], K[1, 2]]
                cam = pycolmap.Camera(model="PINHOLE", width=w, height=h, params=params, camera_id=im.camera_id)
                db.update_camera(cam)
                vm = scene.cameras.viewmats[i].double().numpy()
                q, t = _rotation_to_wxyz(vm[:3, :3]), vm[:3, 3]
                cam_lines.append(f"{im.camera_id} PINHOLE {w} {h} " + " ".join(f"{p:.12g}" for p in params))
                img_lines.append(f"{im.image_id} " + " ".join(f"{v:.12g}" for v in (*q, *t))
                                 + f" {im.camera_id} {names[k]}\n")
        finally:
            db.close()
        pycolmap.match_exhaustive(db_path, device=pycolmap.Device.cpu)
        (model_dir / "cameras.txt").write_text("\n".join(cam_lines) + "\n")
        (model_dir / "images.txt").write_text("\n".join(img_lines) + "\n")
        (model_dir / "points3D.txt").write_text("")
        rec = pycolmap.Reconstruction(str(model_dir))
        opts = pycolmap.IncrementalPipelineOptions()
        opts.num_threads = num_threads
        rec = pycolmap.triangulate_points(rec, db_path, img_dir, out_dir, options=opts)
        pts = np.array([p.xyz for p in rec.points3D.values()], dtype=np.float32).reshape(-1, 3)
        cols = np.array([p.color for p in rec.points3D.values()], dtype=np.float32).reshape(-1, 3) / 255.0
        return PointCloud(torch.from_numpy(pts), torch.from_numpy(cols), "sfm")
    finally:
        if own_tmp:
            shutil.rmtree(work, ignore_errors=True)
