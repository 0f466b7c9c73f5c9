"""``recon view`` (serve a run or PLY in the browser) and ``recon render`` (camera path -> video)."""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np
import tyro
from rich.progress import Progress
from torch import Tensor

from recon.errors import ConfigError
from viewer.app import SceneContext
from viewer.cameras import pose_to_cameras
from viewer.loading import Viewable, add_scene_extras, load_viewable
from viewer.masks import run_mask_source
from viewer.paths import CameraPath, orbit_path, spiral_path
from viewer.render import RENDER_MODES, REPAIRED, RenderSettings, make_render_fn
from viewer.splats import splat_source

if TYPE_CHECKING:
    from recon.repair.postpass import FrameRepair


@dataclass
class ViewArgs:
    """Serve a run directory or an exported PLY in the browser."""

    path: tyro.conf.Positional[Path]
    """run directory written by `recon train`, or a .ply exported by `recon export`"""
    port: int = 8080
    """first port to try; the next free one is used (and printed) when it is taken"""
    host: str = "127.0.0.1"
    """interface to bind; 127.0.0.1 = this machine only, 0.0.0.0 = every network interface"""
    max_resolution: int = 512
    """initial longer side of still renders, in pixels (also a slider in the GUI)"""
    backend: str = "auto"
    """rasterizer backend: auto, cpu, cuda, reference, gsplat"""
    thumbnails: bool = True
    """show the training/test images inside the camera frustums (reads the scene folder)"""
    checkpoint: int | None = None
    """step of the checkpoint to show (default: the newest readable one)"""
    repair: Path | None = None
    """local diffusers folder for the `repaired` render mode (default: the run's RUN/repair/model when it has one)"""
    view: Literal["auto", "splats", "server"] = "auto"
    """what the page starts on: `splats` (the browser draws the Gaussians itself, fast), `server` (rendered here:
    every primitive, render modes, depth) or `auto` (splats for Gaussian runs); the View dropdown switches"""


@dataclass
class RenderArgs:
    """Render a camera path of a run (or PLY) to a video."""

    path_in: tyro.conf.Positional[Path]
    """run directory written by `recon train`, or a .ply (needs --path to a JSON file)"""
    path: str = "orbit"
    """camera path: a JSON file saved by the viewer, or `orbit` / `spiral` from the training cameras"""
    out: Path = Path("video.mp4")
    """output video (.mp4 through imageio-ffmpeg, or .gif)"""
    frames: int | None = None
    """number of frames (default: the JSON path's fps x seconds, 120 for orbit/spiral)"""
    fps: float | None = None
    """frames per second (default: the JSON path's, else 30)"""
    width: int | None = None
    """video width (default: the JSON path's, else the first camera's)"""
    height: int | None = None
    """video height (default: the JSON path's, else the first camera's)"""
    mode: Literal["rgb", "depth", "alpha", "density"] = "rgb"
    """what to render"""
    primitive: str | None = None
    """which primitive set to render when the run holds several"""
    backend: str = "auto"
    """rasterizer backend: auto, cpu, cuda, reference, gsplat"""
    checkpoint: int | None = None
    """step of the checkpoint to render (default: the newest readable one)"""
    appearance: str | None = None
    """runs with per-image appearance (--wild): the frames' reference appearance, `mean` or a training image
    name (default: the run's, wild.reference)"""
    repair: str | None = None
    """per-frame diffusion repair post-pass (Difix3D+ style), off by default: `--repair` alone uses the
    run's model (RUN/repair/model, from `recon repair fit RUN`), `--repair PATH` a local diffusers
    folder. Each frame is repaired on its own, so the video flickers; --mode rgb only"""
    repair_steps: int | None = None
    """--repair PATH img2img pipelines: denoising steps (default: the run's repair.pipe_steps, 2)"""
    repair_strength: float | None = None
    """--repair PATH img2img pipelines: how far the frame is noised before denoising, 0..1 (default: the run's, 0.5)"""
    repair_guidance: float | None = None
    """--repair PATH img2img pipelines: classifier-free guidance scale (default: the run's, 0 = off)"""
    repair_prompt: str | None = None
    """--repair PATH pipelines: text prompt (default: the run's, empty)"""


VIDEO_SUFFIXES = (".mp4", ".mov", ".mkv")


def scene_context(v: Viewable, with_thumbnails: bool = True) -> SceneContext:
    """The viewer's scene context for a loaded run."""
    thumbnails = add_scene_extras(v) if with_thumbnails else None
    wild = _appearance_state(v)  # the Appearance dropdown: mean, then the training images
    return SceneContext(
        cameras=v.cameras, names=list(v.names or []), split=dict(v.split or {}),
        thumbnails=thumbnails, points=v.points,
        point_colors=v.point_colors, primitives=list(v.sets),
        path_dir=None if v.run_dir is None else v.run_dir / "camera_paths",
        splats=splat_source(v.sets),
        masks=run_mask_source(v.run),
        appearances=["mean", *wild["names"]] if wild else [],
        appearance=v.run.config.wild.reference if wild else None,
    )


def _appearance_state(v: Viewable) -> dict | None:
    """The ``extra["wild"]`` state of a run with per-image appearance, else None."""
    state = None if v.run is None else v.run.extra.get("wild")
    return state if state and state.get("appearance") is not None else None


def load_repair(v: Viewable, path: str | Path | None, required: bool, **options) -> FrameRepair | None:
    """The repair post-pass of a loaded run: from ``path`` (a local diffusers folder) or the run's own
    model (``path`` None). Without ``required``, a run with no model of its own, or one that cannot be
    loaded, has none (the reason is printed); with it, both are errors. ``options``: a pipeline's
    (:func:`repair_options`).

    Raises:
        ConfigError: a PLY with ``path`` or ``required``; a bad ``path``; no model when ``required``.
    """
    from recon.errors import ReconError
    from recon.repair.postpass import load_frame_repair, run_model_dir

    if v.run is None:
        if path is None and not required:
            return None
        raise ConfigError("--repair needs a run directory (its training photos are the repair's reference)",
                          hint="pass the run folder written by `recon train`")
    if path is None and not required and not run_model_dir(v.run_dir).is_dir():
        return None
    try:
        repair = load_frame_repair(v.run, path, **options)
    except ReconError as err:
        if required or path is not None:
            raise
        print(f"note: no repaired mode ({err})")
        return None
    if repair.note:
        print(f"note: {repair.note}")
    return repair


def repair_options(args: RenderArgs, v: Viewable) -> dict:
    """The img2img options of ``--repair PATH`` (:func:`recon.repair.pretrained.pipeline_options`): each
    ``--repair-*`` given, else the run's training setting (``repair.pipe_*``; the defaults for a PLY)."""
    from recon.config import RepairConfig
    from recon.repair.pretrained import pipeline_options

    given = {"steps": args.repair_steps, "strength": args.repair_strength, "guidance": args.repair_guidance,
             "prompt": args.repair_prompt}  # fmt: skip
    trained = v.run.config.repair if v.run is not None else RepairConfig()
    return {**pipeline_options(trained), **{k: value for k, value in given.items() if value is not None}}


def run_appearance(v: Viewable, which: str | None) -> tuple[Callable[[str], Tensor] | None, str | None]:
    """The reference-appearance lookup of a run with per-image appearance (:mod:`recon.wild.protocol`)
    and the name to start on: ``which``, else the run's ``wild.reference``; (None, None) without one.

    Raises:
        ConfigError: ``which`` for a PLY or a run without per-image appearance, or not a training image.
    """
    from recon.wild.protocol import reference_transform

    state = _appearance_state(v)
    if state is None:
        if which is not None:
            raise ConfigError("--appearance needs a run trained with per-image appearance", path=v.run_dir,
                              hint="train with --wild on, or leave out --appearance")
        return None, None
    lookup = functools.lru_cache(maxsize=None)(functools.partial(reference_transform, state))
    which = which or v.run.config.wild.reference
    lookup(which)  # an unknown image name fails here, as one line
    return lookup, which


def view_main(argv: list[str], prog: str = "recon view") -> int:
    """Entry point of ``recon view``: serves until Ctrl+C."""
    args = tyro.cli(ViewArgs, args=argv, prog=prog)
    from viewer.app import ViewerApp

    viewable = load_viewable(args.path, args.checkpoint)
    repair = load_repair(viewable, args.repair, required=False)
    appearance, _ = run_appearance(viewable, None)
    context = scene_context(viewable, args.thumbnails)
    if context.splats is None and args.view == "splats":
        raise ConfigError(f"--view splats needs Gaussians; the run holds {sorted(viewable.sets)}", path=args.path,
                          hint="leave out --view: the server renders every primitive")
    if context.splats is not None:
        context.splats.shown = args.view != "server"
    app = ViewerApp(make_render_fn(viewable.sets, backend=args.backend, repair=repair, appearance=appearance), context,
                    host=args.host, port=args.port,
                    max_resolution=args.max_resolution, title=f"recon: {args.path.name}",
                    modes=RENDER_MODES + ((REPAIRED,) if repair is not None else ()))
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        app.stop()
    return 0


def check_render_args(args: RenderArgs) -> None:
    """Rejects frame counts, sizes and rates that would write an empty or broken video, and
    ``--repair`` beside another mode than rgb."""
    if args.repair is not None and args.mode != "rgb":
        raise ConfigError(f"--repair repairs RGB frames, not --mode {args.mode}", hint="leave out --mode or --repair")
    for name, value in (("--frames", args.frames), ("--width", args.width), ("--height", args.height),
                        ("--fps", args.fps)):
        if value is not None and not value > 0:
            raise ConfigError(f"{name} {value:g} must be positive", hint=f"pass {name} N with N > 0 or leave it out")


def even_size(width: int, height: int, out: Path) -> tuple[int, int]:
    """H.264 video (yuv420p) needs even sizes: rounds an odd side down by one pixel, with a note."""
    if out.suffix.lower() not in VIDEO_SUFFIXES or (width % 2 == 0 and height % 2 == 0):
        return width, height
    even = (max(width - width % 2, 2), max(height - height % 2, 2))
    print(f"note: {width}x{height} rounded to {even[0]}x{even[1]} ({out.suffix} video needs even sizes)")
    return even


@contextmanager
def partial_file(out: Path):
    """Yields a temporary name beside ``out``, renamed to ``out`` on success and deleted on failure,
    so an interrupted or failed render never leaves a truncated video (nor replaces a good one)."""
    tmp = out.with_name(f".{out.stem}.partial{out.suffix}")
    try:
        yield tmp
        tmp.replace(out)
    finally:
        tmp.unlink(missing_ok=True)


def resolve_path(args: RenderArgs, v: Viewable) -> tuple[list, int, int, float]:
    """The frames, size and fps a ``recon render`` call asks for."""
    if args.path in ("orbit", "spiral"):
        if v.cameras is None or len(v.cameras) == 0:
            raise ConfigError(f"--path {args.path} needs the run's cameras", path=args.path_in,
                              hint="pass --path camera_path.json for a PLY")
        n = args.frames or 120
        frames = (orbit_path if args.path == "orbit" else spiral_path)(v.cameras, n)
        width = args.width or int(v.cameras.widths[0])
        height = args.height or int(v.cameras.heights[0])
        return frames, width, height, args.fps or 30.0
    file = Path(args.path)
    if not file.is_absolute() and not file.exists() and v.run_dir is not None:
        file = v.run_dir / "camera_paths" / file
    cam_path = CameraPath.load(file)
    if args.width:
        cam_path.width = args.width
    if args.height:
        cam_path.height = args.height
    return cam_path.frames(args.frames), cam_path.width, cam_path.height, args.fps or cam_path.fps


def render_main(argv: list[str], prog: str = "recon render") -> int:
    """Entry point of ``recon render``: writes one video."""
    from recon.repair.postpass import bare_repair_flag

    args = tyro.cli(RenderArgs, args=bare_repair_flag(argv), prog=prog)
    check_render_args(args)
    import imageio.v2 as imageio

    viewable = load_viewable(args.path_in, args.checkpoint)
    if args.primitive is not None and args.primitive not in viewable.sets:
        raise ConfigError(f"no primitive set {args.primitive!r}; the run holds {sorted(viewable.sets)}",
                          path=args.path_in)
    frames, width, height, fps = resolve_path(args, viewable)
    if not frames:
        raise ConfigError("the camera path has no frames", path=args.path, hint="pass --frames N with N >= 1")
    width, height = even_size(width, height, args.out)
    repair = None
    if args.repair is not None:
        path = None if args.repair == "auto" else args.repair
        repair = load_repair(viewable, path, required=True, **repair_options(args, viewable))
    appearance, reference = run_appearance(viewable, args.appearance)
    render_fn = make_render_fn(viewable.sets, backend=args.backend, repair=repair, appearance=appearance)
    settings = RenderSettings(mode=REPAIRED if repair is not None else args.mode, primitive=args.primitive,
                              appearance=reference)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    options = {"fps": fps}
    if args.out.suffix.lower() in VIDEO_SUFFIXES:
        options.update(codec="libx264", quality=8, macro_block_size=1)
    with partial_file(args.out) as tmp:
        try:
            writer = imageio.get_writer(tmp, **options)
        except Exception as err:  # noqa: BLE001 (missing ffmpeg plugin, bad suffix)
            raise ConfigError(f"cannot write a video here ({err})", path=args.out,
                              hint="use .mp4 (needs imageio-ffmpeg) or .gif") from None
        try:
            with Progress() as progress:
                what = f"rendering {len(frames)} frames" + (" and repairing them" if repair is not None else "")
                task = progress.add_task(what, total=len(frames))
                for pose in frames:
                    writer.append_data(np.ascontiguousarray(render_fn(pose_to_cameras(pose, width, height), settings)))
                    progress.advance(task)
            writer.close()
        except BaseException as err:
            with suppress(Exception):  # imageio leaves the encoder running on errors: stop it before the
                writer.close()  # partial file is deleted, or it is written again afterwards
            if isinstance(err, OSError):  # the encoder stopped (ffmpeg's pipe closed, disk full)
                first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
                raise ConfigError(f"writing the video failed ({first})", path=args.out,
                                  hint="try another --width/--height or a .gif") from None
            raise
        if not tmp.is_file() or tmp.stat().st_size == 0:  # ffmpeg can fail at close without an error
            raise ConfigError(f"the encoder wrote an empty video ({width}x{height})", path=args.out,
                              hint="try another --width/--height or a .gif")
    print(f"wrote {args.out} ({len(frames)} frames, {width}x{height}, {fps:g} fps)")
    return 0
