"""``recon export RUN --format F [--out PATH] [--overwrite]``: a run's result in other tools' formats.

Formats and the primitives they fit:

=============  ==========  ==========================================================
format         primitives  output
=============  ==========  ==========================================================
``ply``        gaussian    3DGS PLY (Inria field names, raw values): splat viewers
``splat``      gaussian    antimatter15 ``.splat`` (32 bytes per Gaussian): web viewers
``mesh``       triangle    opaque coloured triangles, merged vertices (.ply/.obj/.glb)
``tsdf``       any         TSDF fusion of rendered depth and colour (.ply/.obj/.glb)
``points``     any         the initial point cloud with colours (PLY)
``colmap``     any         cameras + points as a COLMAP text model (a folder)
``transforms`` any         cameras as a nerfstudio ``transforms.json``
``video``      any         a ``recon render`` orbit video
=============  ==========  ==========================================================

Every file is written under a temporary name beside ``--out`` and renamed when complete.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import tyro
from torch import Tensor

from recon.errors import ConfigError
from recon.export.output import atomic_output, check_output
from recon.primitives import plural
from recon.primitives.sh import num_sh_bases

if TYPE_CHECKING:
    from recon.export.mesh import Mesh
    from recon.run import LoadedRun

Format = Literal["ply", "splat", "mesh", "tsdf", "points", "colmap", "transforms", "video"]
# format -> (primitives it fits or None for any, default name under RUN/export)
FORMATS: dict[str, tuple[tuple[str, ...] | None, str]] = {
    "ply": (("gaussian",), "gaussians.ply"),
    "splat": (("gaussian",), "gaussians.splat"),
    "mesh": (("triangle",), "mesh.ply"),
    "tsdf": (None, "tsdf.ply"),
    "points": (None, "points.ply"),
    "colmap": (None, "colmap"),
    "transforms": (None, "transforms.json"),
    "video": (None, "video.mp4"),
}
COLMAP_FILES = tuple(f"{name}.{ext}" for name in ("cameras", "images", "points3D") for ext in ("txt", "bin"))
_OPTIONAL = {name: "pip install 'recon[export]'" for name in ("trimesh", "open3d", "scipy")}
_INSTEAD = {"gaussian": "ply, splat or tsdf", "triangle": "mesh or tsdf", "convex": "tsdf"}


@dataclass
class ExportArgs:
    """Export a run: Gaussians as a 3DGS PLY or .splat, triangles as a mesh, any primitive as a
    TSDF-fused mesh, the initial points, the cameras (COLMAP text, transforms.json) or a video.
    Everything stays in the scene's original coordinate frame (recon never rescales a scene)."""

    run: tyro.conf.Positional[Path]
    """run directory written by `recon train`"""
    format: Format = "ply"
    """ply/splat (Gaussians), mesh (triangles), tsdf (any), points, colmap, transforms, video"""
    out: Path | None = None
    """output file, a folder for colmap (default RUN/export/gaussians.ply, mesh.ply, ...); meshes: .ply, .obj or .glb"""
    overwrite: bool = False
    """replace an existing output"""
    checkpoint: int | None = None
    """step of the checkpoint to export (default: the newest readable one)"""
    min_opacity: float = 0.5
    """mesh: triangles less opaque than this are left out"""
    merge_tolerance: float | None = None
    """mesh: vertices closer than this are merged (default: 1e-4 of the mesh's bounding-box diagonal)"""
    resolution: int = 256
    """tsdf: voxels along the diagonal of the fused region"""
    views_between: int = 1
    """tsdf: interpolated views fused between consecutive training cameras (0 = training views only)"""
    image_dir: str = "images"
    """transforms: folder (relative to transforms.json) that frames' file_path names; empty for none"""
    backend: str = "auto"
    """rasterizer backend for tsdf and video: auto, cpu, cuda, reference, gsplat"""


def check_args(args: ExportArgs) -> Path:
    """Validates options that need no run; returns the output path."""
    if args.resolution < 8:
        raise ConfigError(f"--resolution {args.resolution} is too coarse", hint="pass 8 or more (default 256)")
    if args.views_between < 0:
        raise ConfigError(f"--views-between {args.views_between} must be >= 0", hint="0 fuses the training views only")
    if args.merge_tolerance is not None and args.merge_tolerance < 0:
        raise ConfigError(f"--merge-tolerance {args.merge_tolerance:g} must be >= 0", hint="0 merges exact duplicates")
    if not (0.0 <= args.min_opacity <= 1.0):
        raise ConfigError(f"--min-opacity {args.min_opacity:g} must lie in [0, 1]", hint="default 0.5")
    if not (args.run / "config.json").is_file():
        raise ConfigError(
            "not a run directory (no config.json)", path=args.run, hint="pass the --out folder of `recon train`"
        )
    out = args.out if args.out is not None else args.run / "export" / FORMATS[args.format][1]
    if args.format in ("mesh", "tsdf"):
        from recon.export.mesh import mesh_file_type

        mesh_file_type(out)
    check_output(out, args.overwrite, folder=args.format == "colmap", replaceable=COLMAP_FILES)
    return out


def check_primitive(fmt: str, primitive: str, run: Path) -> None:
    """Rejects a format that does not fit the run's primitive (a triangle mesh from Gaussians)."""
    fits = FORMATS[fmt][0]
    if fits is not None and primitive not in fits:
        raise ConfigError(
            f"--format {fmt} exports {' or '.join(map(plural, fits))}, this run holds {plural(primitive)}",
            path=run,
            hint=f"for {plural(primitive)} use --format {_INSTEAD.get(primitive, 'tsdf')}",
        )


def export_run(args: ExportArgs) -> tuple[Path, str]:
    """Writes the export ``args`` asks for; returns the path and a one-line summary of what it holds."""
    from recon.config import load_config

    out = check_args(args)
    check_primitive(args.format, load_config(args.run / "config.json").primitive, args.run)
    if args.format == "video":
        return out, _video(args, out)
    if args.format in ("points", "colmap", "transforms"):
        return out, _scene_export(args, out)
    from recon.run import load_run

    run = load_run(args.run, args.checkpoint)
    with atomic_output(out, args.overwrite) as tmp:
        if args.format == "ply":
            from recon.export.ply import write_gaussian_ply

            count = write_gaussian_ply(tmp, active_sh(run.params, run.sh_degree))
            what = f"{count} Gaussians, SH degree {run.sh_degree}"
        elif args.format == "splat":
            from recon.export.ply import write_splat

            what = f"{write_splat(tmp, run.params)} Gaussians"
        else:
            from recon.export.mesh import mesh_file_type, save_mesh

            mesh = _mesh(args, run)
            save_mesh(mesh, tmp, mesh_file_type(out))
            what = f"{len(mesh.vertices)} vertices, {len(mesh.faces)} faces"
    return out, what


def active_sh(params: dict[str, Tensor], sh_degree: int) -> dict[str, Tensor]:
    """``params`` with ``shN`` cut to the bands of the active ``sh_degree`` (a checkpoint taken while
    the degree still ramps up stores bands the run does not render yet; viewers would render them)."""
    return {**params, "shN": params["shN"][:, : num_sh_bases(sh_degree) - 1]}


def _mesh(args: ExportArgs, run: LoadedRun) -> Mesh:
    if args.format == "mesh":
        from recon.export.mesh import triangle_mesh

        return triangle_mesh(run.params, args.min_opacity, args.merge_tolerance)
    from recon.export.tsdf import FusionRegion, fusion_cameras, tsdf_mesh
    from recon.primitives import family

    try:
        from recon.export.scene import run_point_cloud

        reference = run_point_cloud(run.run_dir).points
    except ConfigError:
        reference = family(run.primitive).centers(run.params).detach()
    region = FusionRegion.around(reference, args.resolution)
    cameras = fusion_cameras(run.cameras[run.split.train], args.views_between)
    return tsdf_mesh(run.primitive, run.params, cameras, region, sh_degree=run.sh_degree, backend=args.backend)


def _scene_export(args: ExportArgs, out: Path) -> str:
    from recon.export.scene import run_point_cloud, write_colmap_text, write_nerfstudio
    from recon.run import read_cameras

    cameras, names, _, _ = read_cameras(args.run)
    if args.format == "points":
        from recon.priors.pointcloud import write_ply

        cloud = run_point_cloud(args.run)
        with atomic_output(out, args.overwrite) as tmp:
            write_ply(tmp, cloud)
        return f"{len(cloud)} points ({cloud.source})"
    if args.format == "transforms":
        with atomic_output(out, args.overwrite) as tmp:
            write_nerfstudio(tmp, cameras, names, args.image_dir)
        return f"{len(cameras)} cameras"
    try:
        cloud = run_point_cloud(args.run)
    except ConfigError:
        cloud = None
    with atomic_output(out, args.overwrite, folder=True, replaceable=COLMAP_FILES) as tmp:
        write_colmap_text(tmp, cameras, names, cloud)
    return f"{len(cameras)} cameras, {0 if cloud is None else len(cloud)} points"


def _video(args: ExportArgs, out: Path) -> str:
    """``recon render RUN --out OUT``: the one video code path."""
    from viewer.cli import render_main

    argv = [str(args.run), "--out", str(out), "--backend", args.backend]
    if args.checkpoint is not None:
        argv += ["--checkpoint", str(args.checkpoint)]
    render_main(argv, prog="recon render")
    return "orbit video (recon render)"


def export_main(argv: list[str], prog: str = "recon export") -> int:
    """Entry point of ``recon export``."""
    args = tyro.cli(ExportArgs, args=list(argv), prog=prog)
    start = time.perf_counter()
    try:
        out, what = export_run(args)
    except ModuleNotFoundError as err:
        if err.name not in _OPTIONAL:
            raise
        raise ConfigError(f"--format {args.format} needs the {err.name} package", hint=_OPTIONAL[err.name]) from None
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file()) if out.is_dir() else out.stat().st_size
    print(f"wrote {out} ({what}; {size / 1e6:.2f} MB, {time.perf_counter() - start:.1f} s)")
    return 0
