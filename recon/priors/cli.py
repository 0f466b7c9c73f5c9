"""``recon data sfm`` (poses of a photo folder) and ``recon data priors`` (geometry priors)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import tyro


@dataclass(frozen=True)
class SfmArgs:
    """Recover camera poses of a photo folder with pycolmap (SIFT on CPU, incremental mapping)."""

    photos: tyro.conf.Positional[Path]
    """Folder of photos (jpg/png/tif/bmp), or a scene folder holding them in images/."""
    out: Path
    """Output folder: images/ (undistorted), sparse/0/ (pinhole COLMAP model), distorted/, sfm.json."""
    matcher: Literal["auto", "exhaustive", "sequential"] = "auto"
    """Exhaustive for unordered photos, sequential for video frames; auto = exhaustive up to 100
    photos, sequential above that for numbered frames (what `recon train` uses)."""
    seed: int = 0
    """Seed of COLMAP's random sampling (same photos and seed: same model)."""
    max_image_size: int = 1600
    """SIFT runs on photos downscaled to this longer side."""
    relaxed: bool = False
    """Weaker features and laxer thresholds, for few or weakly overlapping photos."""
    min_registered: int | None = None
    """Registered photos required (default: half of them, at least 2)."""
    overwrite: bool = False
    """Replace a non-empty output folder."""


@dataclass(frozen=True)
class PriorsArgs:
    """Compute geometry priors of a posed scene from its training views: a point cloud (PLY) and
    per-view depth (16-bit PNG + scale) in OUT/priors/."""

    path: tyro.conf.Positional[Path]
    """Scene folder (any format recon reads; a plain photo folder gets SfM poses first)."""
    out: Path
    """Run folder; priors go to OUT/priors/."""
    method: Literal["auto", "mvs", "hull", "mono", "sfm", "random"] = "auto"
    """Prior: auto (hull when masks exist + MVS, else MVS, else SfM points, else random)."""
    format: str = "auto"
    """Scene format (see `recon data inspect`)."""
    downscale: float = 1.0
    """Image downscale factor when loading."""
    protocol: str = "auto"
    """Sparse-view protocol choosing the training views (see recon.data.splits)."""
    views: int | None = None
    """Number of training views (protocol default when None)."""
    all_views: bool = False
    """Use every view (no train/test split)."""
    mono_model: str | None = None
    """Monocular depth model (local folder or hub id) for --method mono."""


def sfm_main(argv: Sequence[str], prog: str = "recon data sfm") -> int:
    args = tyro.cli(SfmArgs, args=list(argv), prog=prog)
    from recon.data.folder import photo_folder
    from recon.priors.sfm import run_sfm

    photos = photo_folder(args.photos) or args.photos  # scene/ or scene/images/
    result = run_sfm(photos, args.out, args.matcher, max_image_size=args.max_image_size,
                     relaxed=args.relaxed, min_registered=args.min_registered, overwrite=args.overwrite,
                     seed=args.seed)
    print(result.summary())
    print(f"model: {result.model_dir}  images: {result.image_dir}")
    return 0


def priors_main(argv: Sequence[str], prog: str = "recon data priors") -> int:
    args = tyro.cli(PriorsArgs, args=list(argv), prog=prog)
    from recon.data import load_scene
    from recon.priors.init import depth_priors, initial_point_cloud, save_priors
    from recon.priors.sfm import ensure_poses

    scene = load_scene(args.path, format=args.format, downscale=args.downscale)
    if not scene.has_poses:
        scene = ensure_poses(scene, args.out / "sfm-cache")
    if args.all_views:
        train = list(range(len(scene)))
    else:
        from recon.data.splits import split_views

        train = split_views(scene, args.protocol, args.views).train
    cloud = initial_point_cloud(scene, train, args.method, workdir=args.out / "priors-work",
                                mono_model=args.mono_model)
    depths = None
    if args.method in ("auto", "mvs", "mono"):
        depths = depth_priors(scene, train, args.method, mono_model=args.mono_model)
    folder = save_priors(args.out, cloud, depths, names=[scene.names[i] for i in train])
    info = {"points": len(cloud), "source": cloud.source, "train_views": [scene.names[i] for i in train],
            "depth_maps": 0 if depths is None else len(depths),
            "depth_known_fraction": None if not depths else
            round(float(sum(float((d > 0).float().mean()) for d in depths) / len(depths)), 4),
            "folder": str(folder)}
    print(json.dumps(info, indent=2))
    return 0
