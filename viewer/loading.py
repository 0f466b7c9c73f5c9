"""What ``recon view`` / ``recon render`` open: a run directory or an exported PLY.

Both become named :class:`~viewer.render.PrimitiveSet` objects (what to render) and a
:class:`~viewer.app.SceneContext` (what to draw around it). Any failure to read the input is a
:class:`~recon.errors.ConfigError` naming the path, never a traceback.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from recon.cameras import Cameras
from recon.errors import ConfigError, ReconError
from recon.export.ply import load_ply as read_gaussian_ply  # 3DGS PLY (Inria fields) -> raw Gaussians
from viewer.render import PrimitiveSet

log = logging.getLogger(__name__)


@dataclass
class Viewable:
    """A loaded run or PLY.

    Attributes:
        sets: primitive-set name -> parameters to render.
        cameras: the scene's cameras (None for a bare PLY).
        names: one name per camera.
        split: ``train``/``test`` -> camera indices.
        scene_root: the scene folder the run was trained on (None when unknown).
        run_dir: the run directory (camera paths are saved under it), or None.
        points: [P, 3] prior point cloud or None; point_colors [P, 3] in [0, 1] or None.
        run: the loaded run (:class:`recon.run.LoadedRun`; its photos feed the repair
            post-pass, :mod:`recon.repair.postpass`), None for a PLY.
    """

    sets: dict[str, PrimitiveSet]
    cameras: Cameras | None = None
    names: list[str] | None = None
    split: dict[str, list[int]] | None = None
    scene_root: Path | None = None
    run_dir: Path | None = None
    points: np.ndarray | None = None
    point_colors: np.ndarray | None = None
    run: Any = None


def sh_degree_of(params: dict) -> int:
    """The SH degree stored in ``params`` (``shN`` holds ``(d + 1)^2 - 1`` bases; 0 without it)."""
    if "shN" not in params:
        return 0
    return int(round(math.sqrt(params["shN"].shape[1] + 1))) - 1


def load_viewable(path: str | Path, checkpoint: int | None = None) -> Viewable:
    """Opens a run directory (its newest readable checkpoint, or the one of step ``checkpoint``)
    or an exported Gaussian PLY."""
    path = Path(path).expanduser()
    if not path.exists():
        raise ConfigError("no such run directory or PLY file", path=path,
                          hint="pass a folder written by `recon train` or a .ply from `recon export`")
    if path.is_file():
        if path.suffix.lower() != ".ply":
            raise ConfigError("expected a run directory or a .ply file", path=path)
        if checkpoint is not None:
            raise ConfigError("--checkpoint applies to run directories, not PLY files", path=path)
        return _load_ply(path)
    return _load_run(path, checkpoint)


def _load_run(run_dir: Path, checkpoint: int | None = None) -> Viewable:
    try:
        from recon.run import load_run
    except ImportError as err:  # the trainer is an optional part of this checkout
        raise ConfigError(f"cannot load runs in this installation ({err})", path=run_dir) from None
    try:
        run = load_run(run_dir, checkpoint)
    except ReconError:
        raise
    except Exception as err:  # a corrupt safetensors/JSON file must not crash the CLI
        raise ConfigError(f"cannot read the checkpoint ({type(err).__name__}: {err})", path=run_dir,
                          hint="the run may still be writing or the file is damaged; "
                               "try an earlier checkpoint") from None
    params = dict(run.params)
    sh_degree = getattr(run, "sh_degree", None)
    background = getattr(run, "background", None)
    sets = {run.primitive: PrimitiveSet(
        run.primitive, params, sh_degree_of(params) if sh_degree is None else int(sh_degree),
        background=None if background is None else tuple(float(c) for c in background))}
    split = run.split
    if split is not None and not isinstance(split, dict):
        split = {"train": list(split.train), "test": list(split.test)}
    root = getattr(run, "scene_root", None)
    viewable = Viewable(sets=sets, cameras=run.cameras, names=list(run.names), split=dict(split or {}),
                        scene_root=None if not root else Path(root), run_dir=run_dir, run=run)
    _add_prior_cloud(viewable, run_dir)
    return viewable


def _add_prior_cloud(viewable: Viewable, run_dir: Path) -> None:
    """The run's own prior point cloud (``RUN/priors/points.ply``), when training saved one."""
    path = run_dir / "priors" / "points.ply"
    if not path.is_file():
        return
    try:
        from recon.priors.pointcloud import read_ply

        cloud = read_ply(path)
    except Exception as err:  # noqa: BLE001 - the cloud is context, never a reason to fail
        log.warning("prior point cloud not shown: %s", err)
        return
    viewable.points = cloud.points.numpy()
    viewable.point_colors = cloud.colors.numpy()


def _load_ply(path: Path) -> Viewable:
    try:
        loaded = read_gaussian_ply(path)
    except ReconError:
        raise
    except Exception as err:
        raise ConfigError(f"cannot read the PLY file ({type(err).__name__}: {err})", path=path) from None
    primitive, params = (loaded if isinstance(loaded, tuple) else ("gaussian", loaded))
    params = dict(params)
    return Viewable(sets={primitive: PrimitiveSet(primitive, params, sh_degree_of(params))})


def add_scene_extras(viewable: Viewable, max_side: int = 96) -> list[np.ndarray | None] | None:
    """Reads the run's scene folder for thumbnails (matched by image name) and, when the run has
    none, the scene's sparse points. Returns the thumbnails (None entries for images not found;
    None when the folder is unreadable: thumbnails are a nicety, never an error)."""
    if viewable.scene_root is None or viewable.cameras is None:
        return None
    from viewer.app import make_thumbnail

    try:
        from recon.data import load_scene

        scene = load_scene(viewable.scene_root)
    except Exception as err:  # noqa: BLE001
        log.warning("no thumbnails: cannot read %s (%s)", viewable.scene_root, err)
        return None
    if viewable.points is None and scene.points is not None:
        viewable.points = scene.points.numpy()
        if scene.point_colors is not None:
            viewable.point_colors = scene.point_colors.numpy()
    by_name = dict(zip(scene.names, scene.images))
    images = [by_name.get(n) for n in viewable.names or []]
    if not any(im is not None for im in images):
        return None
    return [None if im is None else make_thumbnail(im.numpy(), max_side) for im in images]
