"""The priors step of training: an initial point cloud and per-view depth from the training views.

Only training views are ever used (sparse-view protocols must not see test views). Methods:

* ``sfm``: points triangulated with pycolmap on the known poses of the training views
  (FSGS' preprocessing); the scene's own sparse points only when every view is a training view.
* ``mvs``: plane-sweep stereo (:mod:`recon.priors.stereo`), consistency filtered and fused.
* ``mono``: monocular depth (a transformers model given by the user) aligned to MVS depth.
* ``hull``: visual hull of the object masks (:mod:`recon.priors.hull`).
* ``random``: uniform points in a cube around the cameras' focus point.
* ``auto``: the best offline prior available: MVS, else SfM points, else the hull (when masks
  exist), else random (measured order, see ``_auto_cloud``).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from recon.data.scene import SceneData
from recon.errors import ConfigError, DataError, ReconError
from recon.priors.bounds import depth_bounds, focus_point
from recon.priors.pointcloud import PointCloud, clean_cloud, read_ply, write_ply
from recon.priors.stereo import MVSConfig, MVSResult, run_mvs

__all__ = ["METHODS", "PointCloud", "depth_priors", "initial_point_cloud", "load_priors", "save_priors"]

log = logging.getLogger(__name__)
METHODS = ("sfm", "mvs", "mono", "hull", "random", "auto")
_MVS_CACHE: dict[tuple, MVSResult] = {}
AUTO_MIN_STEREO_POINTS = 1000  # fewer fused stereo points than this: auto tries the next prior


def _check(scene: SceneData, train_ids: list[int], method: str) -> None:
    if method not in METHODS:
        raise ConfigError(f"unknown prior method {method!r}", hint=f"use one of {', '.join(METHODS)}")
    if scene.cameras is None:
        raise DataError("the scene has no camera poses", path=scene.root,
                        hint="run `recon data sfm PHOTOS --out DIR` first or train with --data PHOTOS")
    bad = [i for i in train_ids if not 0 <= i < len(scene)]
    if bad or not train_ids:
        raise ConfigError(f"train ids {bad or train_ids} are not views of a {len(scene)}-view scene")


def _near_far(scene: SceneData) -> tuple[float, float] | None:
    """Global depth bounds a format recorded (LLFF poses_bounds), if any."""
    meta = scene.meta or {}
    if "near" in meta and "far" in meta:
        return float(np.min(meta["near"])), float(np.max(meta["far"]))
    b = meta.get("bounds", meta.get("near_far"))
    if b is not None:
        b = np.asarray(b, dtype=np.float64).reshape(-1, 2)
        return float(b[:, 0].min()), float(b[:, 1].max())
    return None


def _bounding_points(scene: SceneData, train_ids: list[int]) -> Tensor | None:
    """Points that bound the plane sweep's depths: a coarse visual hull when the scene has masks,
    else the scene's sparse points (SfM of a photo folder, a COLMAP model), else none. Sparse points
    only set the sweep's depth range, never a training target."""
    if scene.masks is not None:
        try:
            return hull_prior(scene, train_ids, resolution=48).points
        except ReconError:
            pass
    return scene.points if scene.num_points > 0 else None


def mvs_prior(scene: SceneData, train_ids: list[int], cfg: MVSConfig | None = None) -> MVSResult:
    """Plane-sweep stereo on the training views (cached for the last scene/ids/config)."""
    cfg = cfg or MVSConfig()
    key = (id(scene), tuple(train_ids), cfg)
    if key in _MVS_CACHE:
        return _MVS_CACHE[key]
    if len(train_ids) < 2:
        raise DataError(f"multi-view stereo needs at least 2 training views, got {len(train_ids)}")
    cams = scene.cameras[list(train_ids)]
    masks = None if scene.masks is None else [scene.masks[i] for i in train_ids]
    bounds = depth_bounds(cams.viewmats, _bounding_points(scene, train_ids), _near_far(scene))
    ignore = None if scene.user_masks is None else [scene.user_masks[i] for i in train_ids]  # recon.wild
    res = run_mvs([scene.images[i] for i in train_ids], cams.Ks, cams.viewmats, bounds, cfg, masks, ignore=ignore)
    _MVS_CACHE.clear()
    _MVS_CACHE[key] = res
    return res


def hull_prior(scene: SceneData, train_ids: list[int], resolution: int = 128) -> PointCloud:
    """Visual hull of the training views' masks."""
    from recon.priors.hull import visual_hull

    if scene.masks is None:
        raise DataError("the visual hull needs object masks and this scene has none", path=scene.root,
                        hint="use --init mvs or give a mask folder")
    cams = scene.cameras[list(train_ids)]
    masks = [scene.masks[i] for i in train_ids]
    for i, m in zip(train_ids, masks):
        if tuple(m.shape) != tuple(scene.images[i].shape[:2]):
            raise DataError(f"mask of view {scene.names[i]} is {tuple(m.shape)} but its image is "
                            f"{tuple(scene.images[i].shape[:2])}", path=scene.root,
                            hint="the mask folder must match the images one to one")
    return visual_hull(masks, cams.Ks, cams.viewmats, [scene.images[i] for i in train_ids], resolution)


def random_prior(scene: SceneData, train_ids: list[int], num_points: int = 10_000, seed: int = 0) -> PointCloud:
    """Uniform points in a cube centred on the training cameras' focus point, half-side half the
    mean camera distance to it; random colours."""
    vm = scene.cameras.viewmats[list(train_ids)]
    c = focus_point(vm) if len(train_ids) > 1 else torch.linalg.inv(vm[0].double())[:3, 3] + torch.linalg.inv(vm[0].double())[:3, 2]
    centres = torch.linalg.inv(vm.double())[:, :3, 3]
    half = 0.5 * float((centres - c).norm(dim=-1).mean().clamp_min(1e-3))
    gen = torch.Generator().manual_seed(seed)
    pts = c.float() + (torch.rand(num_points, 3, generator=gen) * 2 - 1) * half
    return PointCloud(pts, torch.rand(num_points, 3, generator=gen), "random")


def sfm_prior(scene: SceneData, train_ids: list[int], workdir: Path | None) -> PointCloud:
    """Points triangulated from the training views only (pycolmap, known poses)."""
    if scene.points is not None and len(set(train_ids)) == len(scene) and scene.num_points > 0:
        cols = scene.point_colors if scene.point_colors is not None else torch.full_like(scene.points, 0.5)
        return PointCloud(scene.points, cols, "sfm")
    from recon.priors.triangulate import triangulate_known_poses

    return triangulate_known_poses(scene, train_ids, workdir)


def mono_prior(scene: SceneData, train_ids: list[int], model: str | None) -> tuple[PointCloud, list[Tensor]]:
    """Monocular depth of each training view aligned to the MVS depth, back-projected."""
    from recon.priors.align import align_inverse_depth
    from recon.priors.mono_depth import MonoDepth

    model = model or os.environ.get("RECON_MONO_DEPTH_MODEL")
    if not model:
        raise ConfigError("monocular depth needs a model", hint="pass a local folder or hub id "
                          "(mono_model=..., or set RECON_MONO_DEPTH_MODEL)")
    net = MonoDepth(model)
    ref = mvs_prior(scene, train_ids)
    depths, pts, cols = [], [], []
    for k, i in enumerate(train_ids):
        pred = net.predict(scene.images[i])
        known = ref.depths[k]
        if int((known > 0).sum()) <= 10:
            raise DataError(f"view {scene.names[i]}: too few stereo pixels to align monocular depth")
        depth, _, _ = align_inverse_depth(pred, known, method="median")
        depths.append(depth)
        from recon.priors.stereo import _backproject

        sel = depth > 0
        pts.append(_backproject(depth, scene.cameras.Ks[i], scene.cameras.viewmats[i])[sel].float())
        cols.append(scene.images[i][sel])
    return PointCloud(torch.cat(pts), torch.cat(cols), "mono"), depths


def initial_point_cloud(
    scene: SceneData,
    train_ids: list[int],
    method: str = "auto",
    workdir: Path | None = None,
    *,
    mono_model: str | None = None,
    max_points: int = 200_000,
) -> PointCloud:
    """A cleaned point cloud from the training views, to initialise primitives.

    Args:
        scene: the scene (cameras required).
        train_ids: indices of the training views; nothing else is read.
        method: ``sfm``, ``mvs``, ``mono``, ``hull``, ``random`` or ``auto`` (see module doc).
        workdir: scratch folder for pycolmap (``sfm``); a temporary one when None.
        mono_model: local folder or hub id of a transformers depth model (``mono``).
        max_points: voxel downsampling target.

    Returns:
        The merged, voxel-downsampled cloud without statistical outliers.
    """
    _check(scene, train_ids, method)
    if method == "random":
        return random_prior(scene, train_ids)
    if method == "hull":
        cloud = hull_prior(scene, train_ids)
    elif method == "mvs":
        cloud = mvs_prior(scene, train_ids).cloud
    elif method == "sfm":
        cloud = sfm_prior(scene, train_ids, workdir)
    elif method == "mono":
        cloud = mono_prior(scene, train_ids, mono_model)[0]
    else:
        cloud = _auto_cloud(scene, train_ids, workdir)
    if len(cloud) < 10:
        raise DataError(f"the {method} prior found only {len(cloud)} points", path=scene.root,
                        hint="try --init random or another method")
    return clean_cloud(cloud, max_points=max_points)


def _auto_cloud(scene: SceneData, train_ids: list[int], workdir: Path | None) -> PointCloud:
    """Stereo points, else SfM points, else the visual hull, else random points: the order of
    their masked test PSNR when they initialise DTU scan24 3-view training (BENCHMARKS.md:
    17.6 / 16.7 / 11.9 / 10.6 dB; the hull merged with stereo loses 0.2 dB to stereo alone)."""
    attempts = []
    if len(train_ids) >= 2:
        attempts += [("stereo", lambda: mvs_prior(scene, train_ids).cloud, AUTO_MIN_STEREO_POINTS),
                     ("SfM points", lambda: sfm_prior(scene, train_ids, workdir), 100)]
    if scene.masks is not None:
        attempts.append(("visual hull", lambda: hull_prior(scene, train_ids), 100))
    for name, make, need in attempts:
        try:
            cloud = make()
        except (ReconError, ImportError, RuntimeError) as err:
            log.warning("%s skipped: %s", name, err)
            continue
        if len(cloud) >= need:
            return cloud
        log.warning("%s: only %d points, trying the next prior", name, len(cloud))
    return random_prior(scene, train_ids)


def depth_priors(scene: SceneData, train_ids: list[int], method: str = "auto", *,
                 mono_model: str | None = None) -> list[Tensor] | None:
    """Per training view depth [H, W] (camera z, 0 = unknown) for depth losses.

    ``mvs`` and ``auto`` give consistency-filtered stereo depth (``auto`` returns None when
    stereo is impossible, e.g. one view); ``mono`` gives aligned monocular depth (dense).
    Other methods give None.
    """
    _check(scene, train_ids, method)
    if method == "mono":
        return mono_prior(scene, train_ids, mono_model)[1]
    if method not in ("mvs", "auto"):
        return None
    try:
        return mvs_prior(scene, train_ids).depths
    except ReconError:
        if method == "auto":
            return None
        raise


# -------------------------------------------------------------------------------------- files
def save_priors(run_dir: str | Path, cloud: PointCloud | None, depths: list[Tensor] | None,
                names: list[str] | None = None) -> Path:
    """Writes ``RUN/priors/``: ``points.ply``, ``depth_XXX.png`` (16-bit) and ``depths.json``.

    A PNG value ``q`` means depth ``q * scale`` (``scale`` per map in ``depths.json``); 0 means
    unknown. Everything is written to a temporary folder, then moved into place.

    Returns:
        The ``priors`` folder.
    """
    from PIL import Image

    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    final = run_dir / "priors"
    tmp = Path(tempfile.mkdtemp(dir=run_dir, prefix=".priors-"))
    try:
        meta: dict = {"version": 1, "unit": "depth = png_value * scale (0 = unknown)", "maps": []}
        if cloud is not None:
            write_ply(tmp / "points.ply", cloud)
            meta["points"] = {"file": "points.ply", "source": cloud.source, "count": len(cloud)}
        for k, d in enumerate(depths or []):
            d = d.detach().float().cpu()
            dmax = float(d.max()) if d.numel() else 0.0
            scale = dmax / 65535.0 if dmax > 0 else 1.0
            q = torch.where(d > 0, (d / scale).round().clamp(1, 65535), torch.zeros_like(d))
            fname = f"depth_{k:03d}.png"
            Image.fromarray(q.numpy().astype(np.uint16)).save(tmp / fname)
            meta["maps"].append({"file": fname, "scale": scale,
                                 "view": names[k] if names is not None else k})
        (tmp / "depths.json").write_text(json.dumps(meta, indent=2))
        if final.exists():
            old = Path(tempfile.mkdtemp(dir=run_dir, prefix=".priors-old-"))
            os.replace(final, old / "priors")
            os.replace(tmp, final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


def load_priors(run_dir: str | Path) -> tuple[PointCloud | None, list[Tensor]]:
    """Reads what :func:`save_priors` wrote: the cloud (or None) and the depth maps."""
    from PIL import Image

    folder = Path(run_dir) / "priors"
    meta_path = folder / "depths.json"
    if not meta_path.is_file():
        raise DataError("no priors here", path=folder, hint="run `recon data priors` or train first")
    meta = json.loads(meta_path.read_text())
    cloud = read_ply(folder / meta["points"]["file"]) if "points" in meta else None
    depths = []
    for m in meta["maps"]:
        q = np.asarray(Image.open(folder / m["file"]), dtype=np.float64)
        depths.append(torch.from_numpy(q * m["scale"]).float())
    return cloud, depths
