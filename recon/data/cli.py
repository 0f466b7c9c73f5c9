"""``recon data inspect``: describe a scene folder and the train/test split a protocol gives."""

from __future__ import annotations

import json
import sys
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import tyro

from recon.data.formats import parse_scene
from recon.data.images import has_alpha
from recon.data.source import SceneSource


@dataclass(frozen=True)
class InspectArgs:
    """Describe a scene: format, images, sizes, poses, masks, points and protocol splits."""

    path: tyro.conf.Positional[Path]
    """Scene folder, or a format's main file (transforms.json, poses_bounds.npy, ...)."""
    format: Literal[
        "auto", "blender", "dtu", "middlebury", "nerfstudio", "colmap", "llff", "folder"
    ] = "auto"
    """Scene format; auto detects it from the files present."""
    json: bool = False
    """Print one JSON object instead of a table."""
    protocol: Literal["auto", "llff", "dtu", "blender", "generic", "none"] = "auto"
    """Sparse-view protocol for the split (see recon.data.splits); auto picks it from the format."""
    views: int | None = None
    """Number of training views (None: the protocol's default / all)."""
    test_every: int = 8
    """Generic protocol: every K-th view is a test view."""
    skip_missing: bool = False
    """transforms.json: ignore frames whose image files do not exist."""
    check_images: bool = False
    """Decode every image and mask to find corrupt or truncated files (slow on large scenes)."""


def describe(
    source: SceneSource,
    protocol: str | None = "auto",
    views: int | None = None,
    test_every: int = 8,
) -> dict:
    """The facts ``recon data inspect`` reports, as a JSON-ready dict (sizes from file headers)."""
    sizes = source.image_sizes()
    counts = Counter(sizes)
    (w, h), _ = counts.most_common(1)[0]
    info = {
        "format": source.format,
        "root": str(source.root),
        "num_images": len(source),
        "width": w,
        "height": h,
        "sizes": {f"{sw}x{sh}": n for (sw, sh), n in sorted(counts.items())},
        "has_poses": source.cameras is not None,
        "has_masks": has_masks(source),
        "num_points": 0 if source.points is None else int(source.points.shape[0]),
        "distorted": source.cameras is not None and source.cameras.dist is not None,
        "needs_sfm": bool(source.meta.get("needs_sfm", False)),
    }
    if source.split is not None:
        info["format_split"] = {k: len(v) for k, v in source.split.items()}
    if source.cameras is not None:
        K = source.fit_cameras([0]).Ks[0]
        info["first_camera"] = {
            "fx": float(K[0, 0]),
            "fy": float(K[1, 1]),
            "cx": float(K[0, 2]),
            "cy": float(K[1, 2]),
        }
    if protocol is not None:
        info["splits"] = _splits(source, protocol, views, test_every)
    return info


def has_masks(source: SceneSource) -> bool:
    """Whether :meth:`SceneSource.load` gives masks: mask files, or an alpha channel in every
    image (read from the headers)."""
    return source.mask_paths is not None or all(has_alpha(p) for p in source.image_paths)


def _splits(source: SceneSource, protocol: str, views: int | None, test_every: int) -> dict:
    from recon.data.splits import split_views

    split = split_views(
        source.names,
        protocol,
        views=views,
        test_every=test_every,
        scene_split=source.split,
        scene_format=source.format,
    )
    return {**split.to_dict(), "views": views}


def check_images(source: SceneSource, verbose: bool = True) -> None:
    """Decodes every image and mask of ``source``; raises DataError naming the first bad file."""
    from recon.data.images import read_image, read_mask
    from recon.data.source import progress

    masks = source.mask_paths or []
    for i in progress(list(range(len(source))), f"checking {len(source)} images", verbose):
        read_image(source.image_paths[i], background=None)
        if masks:
            read_mask(masks[i])


def _print_table(info: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(show_header=False, box=None)
    for key in (
        "format",
        "root",
        "num_images",
        "sizes",
        "has_poses",
        "distorted",
        "has_masks",
        "num_points",
        "needs_sfm",
        "format_split",
        "first_camera",
    ):
        if key in info:
            value = info[key]
            if isinstance(value, dict):
                value = ", ".join(
                    f"{k}={v:.6g}" if isinstance(v, float) else f"{k}={v}" for k, v in value.items()
                )
            table.add_row(key, str(value))
    splits = info.get("splits")
    if splits:
        table.add_row(f"{splits['protocol']} train ({len(splits['train'])})", _ids(splits["train"]))
        table.add_row(f"{splits['protocol']} test ({len(splits['test'])})", _ids(splits["test"]))
    Console().print(table)


def _ids(ids: list[int], limit: int = 40) -> str:
    text = " ".join(map(str, ids[:limit]))
    return text + (f" ... (+{len(ids) - limit})" if len(ids) > limit else "")


def inspect_main(argv: Sequence[str], prog: str = "recon data inspect") -> int:
    """Entry point of ``recon data inspect``; returns the exit status."""
    args = tyro.cli(InspectArgs, args=list(argv), prog=prog)
    source = parse_scene(
        args.path, args.format, skip_missing=args.skip_missing, verbose=not args.json
    )
    if args.check_images:
        check_images(source, verbose=not args.json)
    protocol = None if args.protocol == "none" else args.protocol
    info = describe(source, protocol, args.views, args.test_every)
    if args.json:
        sys.stdout.write(json.dumps(info, allow_nan=False) + "\n")  # strict JSON: never NaN
    else:
        _print_table(info)
    return 0
