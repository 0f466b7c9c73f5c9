"""From a config to what training needs: the scene, its split, the initial point cloud and depth priors.

Priors come from :mod:`recon.priors` when it is installed; otherwise from the scene itself
(its sparse points and depth maps) and finally random points in the scene bounds.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from torch import Tensor

from recon.config import DataConfig, InitConfig, TrainConfig
from recon.data.scene import SceneData
from recon.data.splits import Split, split_views
from recon.errors import ConfigError, DataError, ReconError
from recon.priors.pointcloud import PointCloud
from recon.run import LoadedRun

log = logging.getLogger(__name__)
SYNTHETIC = "synthetic"


def load_training_scene(data: DataConfig, run_dir: Path | None = None, verbose: bool = True,
                        allow_sfm: bool = True) -> SceneData:
    """Reads the scene named by ``data.path`` (``"synthetic"`` = the embedded demo scene, ``"synthetic:wild"``
    and the other :mod:`recon.data.synthetic_wild` variants its perturbed versions).

    Photos without poses get them by SfM (``allow_sfm``), cached in ``run_dir/sfm``.
    """
    if data.path.partition(":")[0] == SYNTHETIC:  # "synthetic:wild-rain": recon.data.synthetic_wild
        from recon.data.synthetic_wild import make_synthetic_variant

        return make_synthetic_variant(
            data.path,
            num_views=data.synthetic_views, width=data.synthetic_width, height=data.synthetic_height,
            test_every=data.test_every,
        )  # fmt: skip
    if not data.path:
        raise ConfigError("no scene given", hint="pass --data PATH (a scene folder) or use `recon demo`")
    from recon.data.formats import load_scene

    scene = load_scene(data.path, format=data.format, downscale=data.downscale, verbose=verbose,
                       skip_missing=data.skip_missing)
    if not scene.has_poses:
        if not allow_sfm:
            raise DataError("the photos have no camera poses and this run carries no SfM model", path=data.path,
                            hint="retrain the run: evaluating on a new SfM would use other cameras")
        try:
            from recon.priors.sfm import ensure_poses
        except ImportError:
            raise ConfigError("the photos have no camera poses and pose recovery is not installed",
                              path=data.path, hint="pip install 'recon[priors]'") from None
        # RUN/sfm, not RUN/priors: training rewrites priors/, and the run must keep its cameras.
        scene = ensure_poses(scene, run_dir / "sfm" if run_dir is not None else Path(data.path) / "priors")
        scene = downscale_sfm_scene(scene, data.downscale)
    return scene


def downscale_sfm_scene(scene: SceneData, factor: float) -> SceneData:
    """An SfM scene at ``--downscale``: SfM runs on the full-size photos, so its undistorted
    images and cameras are box-downscaled here (:meth:`Cameras.rescale` matches exactly)."""
    if factor == 1:
        return scene
    from recon.data.images import downscale_array

    scene.images = [downscale_array(im, factor) for im in scene.images]
    if scene.masks is not None:  # [H, W] in [0, 1], averaged like read_mask does
        scene.masks = [downscale_array(m[..., None].float(), factor)[..., 0] for m in scene.masks]
    scene.cameras = scene.cameras.rescale(factor)
    return scene


def load_run_scene(run: LoadedRun) -> SceneData:
    """The images a run was trained on, in its ``names`` order, with the run's own cameras.

    Never runs structure from motion: a photo folder's images are the undistorted ones kept in
    the run's SfM folder, other scenes are read from ``data.path``. Each image is checked against
    the hash recorded at training time.

    Raises:
        DataError: the run's SfM folder is missing, an image is missing or differs from training.
    """
    from recon.run import image_digest

    if run.sfm_dir is not None:
        from recon.priors.sfm import load_sfm_scene

        if not (run.sfm_dir / "sparse" / "0").is_dir():
            raise DataError("the run's SfM model is missing", path=run.sfm_dir,
                            hint="restore the run folder or retrain: a new SfM would use other cameras")
        scene = downscale_sfm_scene(load_sfm_scene(run.sfm_dir, run.names), run.config.data.downscale)
    else:
        scene = load_training_scene(run.config.data, verbose=False, allow_sfm=False)
    index = {n: i for i, n in enumerate(scene.names)}
    missing = [n for n in run.names if n not in index]
    if missing:
        raise DataError(f"{len(missing)} images of the run are missing: {', '.join(missing[:5])}",
                        path=scene.root, hint="restore them or retrain the run")
    scene = scene.subset([index[n] for n in run.names])
    changed = [n for n, im in zip(scene.names, scene.images)
               if n in run.image_hashes and image_digest(im) != run.image_hashes[n]]
    if changed:
        raise DataError(f"{len(changed)} images differ from those the run was trained on: {', '.join(changed[:5])}",
                        path=scene.root, hint="restore the original images (or downscale) or retrain the run")
    scene.cameras = run.cameras
    return scene


def make_split(scene: SceneData, data: DataConfig) -> Split:
    """The protocol's train/test split (``SplitError`` names the bad option)."""
    return split_views(scene, data.protocol, data.views, data.test_every)


def scene_box(scene: SceneData, train_ids: list[int]) -> tuple[Tensor, Tensor]:
    """An axis-aligned box [3], [3] around the content: the points' 1-99% range, else the cameras'."""
    if scene.points is not None and scene.num_points > 10:
        q = torch.quantile(scene.points.float(), torch.tensor([0.01, 0.99]), dim=0)
        return q[0], q[1]
    centers = scene.cameras[train_ids].centers.float()
    mid = centers.mean(0)
    half = torch.full((3,), 0.5 * scene.scene_scale)
    return mid - half, mid + half


def initial_cloud(scene: SceneData, train_ids: list[int], init: InitConfig, seed: int,
                  run_dir: Path | None = None) -> PointCloud:
    """Points to initialise primitives from, following ``init.method``."""
    gen = torch.Generator().manual_seed(seed)
    method = init.method
    cloud = None
    # A dataset's own points (COLMAP/transforms.json) were triangulated from every view, test views
    # included: "auto" uses them only when every view trains (or on the synthetic scene, whose
    # points are exact surface samples), so sparse-view protocols never see test-view geometry.
    own_points_ok = scene.format == "synthetic" or len(set(train_ids)) == len(scene)
    use_own = method == "scene" or (method == "auto" and own_points_ok)
    if use_own and scene.points is not None and scene.num_points > 0:
        colors = scene.point_colors if scene.point_colors is not None else torch.full_like(scene.points, 0.5)
        cloud = PointCloud(scene.points.float(), colors.float(), "scene")
    elif method == "scene":
        raise ConfigError("init.method scene: the scene has no points", hint="use init.method auto or random")
    elif method != "random":
        try:
            from recon.priors.init import initial_point_cloud

            pc = initial_point_cloud(scene, train_ids, method, workdir=None if run_dir is None else run_dir / "priors")
            cloud = pc
        except ImportError:
            log.warning("recon.priors is not available; initialising from random points")
        except ReconError:
            if method != "auto":
                raise
            log.warning("no prior point cloud could be computed; initialising from random points")
    if cloud is None:
        lo, hi = scene_box(scene, train_ids)
        pts = lo + torch.rand(init.random_points, 3, generator=gen) * (hi - lo)
        cloud = PointCloud(pts, torch.rand(init.random_points, 3, generator=gen), "random")
    if init.max_points and cloud.points.shape[0] > init.max_points:
        keep = torch.randperm(cloud.points.shape[0], generator=gen)[: init.max_points]
        cloud = PointCloud(cloud.points[keep], cloud.colors[keep], cloud.source)
    return cloud


def depth_prior_maps(scene: SceneData, train_ids: list[int], source: str) -> list[Tensor] | None:
    """Per training view [H, W] depth prior (0 = unknown), or None.

    ``scene`` uses the scene's own depth maps; ``priors`` computes stereo depth; ``auto`` tries
    the scene's maps first (exact on the synthetic scene), then stereo.
    """
    if source == "none":
        return None
    if source in ("scene", "auto") and scene.depths is not None:
        return [scene.depths[i].float() for i in train_ids]
    if source == "scene":
        raise ConfigError("sparse.depth_source scene: the scene has no depth maps", hint="use auto or priors")
    try:
        from recon.priors.init import depth_priors
    except ImportError:
        return None
    try:
        return depth_priors(scene, train_ids, "auto")
    except ReconError as err:
        log.warning("no depth prior: %s", err)
        return None


def masked_protocol(protocol: str, scene: SceneData) -> bool:
    """Whether the protocol scores only the object (DTU with object masks): training then
    composites the targets on a random background with the masks, evaluation masks its metrics."""
    return protocol == "dtu" and scene.masks is not None


def background_color(config: TrainConfig, scene: SceneData, protocol: str = "generic") -> Tensor | None:
    """[3] fixed background, or None for a random one per step.

    ``auto`` is random on masked protocols (the object is learnt alone; a fixed colour would be
    baked into its edges), else the scene's own background colour (``meta["background"]``: the
    colour the loader composited RGBA images on, white for Blender scenes), else black.
    """
    mode = config.loss.background
    if mode == "random" or (mode == "auto" and masked_protocol(protocol, scene)):
        return None
    own = scene.meta.get("background")
    if mode in ("white", "black"):
        if own is not None and list(own) != [float(mode == "white")] * 3:
            log.warning("loss.background %s: the scene's RGBA images were composited on %s, so their "
                        "transparent pixels cannot match (use loss.background auto)", mode, own)
        return torch.full((3,), float(mode == "white"))
    return torch.tensor(own, dtype=torch.float32) if own is not None else torch.zeros(3)
