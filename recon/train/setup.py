"""From a config to what training needs: the split, the initial point cloud and depth priors (the
scene itself comes from :mod:`recon.run.scene`).

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
from recon.errors import ConfigError, ReconError
from recon.priors.pointcloud import PointCloud

log = logging.getLogger(__name__)


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
