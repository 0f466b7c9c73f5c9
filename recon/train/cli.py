"""``recon train``, ``recon demo`` and ``recon eval``."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import tyro
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from recon.config import Primitive, TrainConfig, load_config, load_preset, override, save_config, scale_schedule
from recon.errors import ConfigError
from recon.primitives import plural
from recon.priors._progress import stderr_console
from recon.priors.pointcloud import PointCloud
from recon.run import (
    SYNTHETIC,
    load_run,
    load_run_scene,
    load_training_scene,
    mark_run,
    prepare_out,
    removed_if_start_fails,
    write_cameras,
)
from recon.train.health import EtaEstimate
from recon.train.setup import depth_prior_maps, initial_cloud, make_split
from recon.train.trainer import Trainer, TrainResult, sparse_enabled
from recon.wild.median import filter_weather
from recon.wild.terms import attach_user_masks

console = stderr_console()  # shared: the repair fit's bar nests under training's

StartHook = Callable[[Trainer, PointCloud | None], None]
"""Called as ``hook(trainer, init_cloud)`` once the primitives are initialised (or resumed), before
the first step; ``init_cloud`` is None on a resume. ``recon train --viewer`` attaches the live
viewer through one (:mod:`recon.app.train`): the trainer never imports the viewer."""


@dataclass
class TrainArgs:
    """Reconstruct a scene: recon train --data PATH --primitive gaussian --out RUN."""

    out: str
    """Run folder (config, checkpoints, logs, eval)."""
    data: str = ""
    """Scene folder or file (not needed with --resume); synthetic, or synthetic:wild-appearance,
    synthetic:wild-occluders, synthetic:wild-rain, synthetic:wild (perturbed demo scenes, recon.data.synthetic_wild)."""
    format: str = "auto"
    """Scene format (auto = detect)."""
    protocol: Literal["auto", "llff", "dtu", "blender", "generic"] = "auto"
    """Sparse-view protocol choosing train/test views."""
    views: int | None = None
    """Number of training views (protocol default when unset)."""
    primitive: Primitive = "gaussian"
    """Primitive family."""
    preset: str = "auto"
    """Preset name (configs/train) or YAML file path; auto = sparse-3view for <= 9 training views, else dense."""
    iterations: int | None = None
    """Override the preset's number of steps."""
    seed: int | None = None
    """Override the seed."""
    backend: str | None = None
    """Rasterizer backend: auto, cpu, cuda, reference, gsplat."""
    device: Literal["cpu", "cuda"] | None = None
    """Torch device of the training (default: cuda with --backend cuda or gsplat, else the preset's)."""
    downscale: float | None = None
    """Image downscale factor."""
    init: str | None = None
    """Initial point cloud: auto, scene, sfm, mvs, hull, random."""
    sparse: bool | None = None
    """Force the sparse-view regularisers on or off."""
    checkpoint_every: int | None = None
    """Override the checkpoint period (steps)."""
    resume: bool = False
    """Continue the run in --out from its latest checkpoint."""
    checkpoint: int | None = None
    """With --resume: continue from the checkpoint of this step instead of the latest."""
    overwrite: bool = False
    """Delete an existing --out folder first (only a run folder recon created)."""
    skip_missing: bool = False
    """Drop frames whose image file is missing (transforms.json scenes) instead of failing."""
    viewer: bool = False
    """Serve a live viewer while training (needs recon[viewer])."""
    repair: str | None = None
    """Diffusion repair of novel views: off, auto (fit the scene's own fixer on <= 9 training views,
    gated on a held-out view) or a local diffusers folder (gated too); default: the preset's (off)."""
    repair_steps: int | None = None
    """--repair PATH img2img pipelines: denoising steps (default 2)."""
    repair_strength: float | None = None
    """--repair PATH img2img pipelines: how far the render is noised before denoising, 0..1 (default 0.5)."""
    repair_guidance: float | None = None
    """--repair PATH img2img pipelines: classifier-free guidance scale (default 0 = off)."""
    repair_prompt: str | None = None
    """--repair PATH pipelines: text prompt (default empty)."""
    wild: Literal["auto", "on", "off"] | None = None
    """Photos in the wild: per-image appearance and the robust (transient-masking) loss; auto = on for
    photo folders, off for benchmark formats (default: the preset's, auto)."""
    appearance: str | None = None
    """Reference appearance of renders and evaluation: mean, or a training image name (with --wild)."""
    appearance_model: Literal["affine", "bilateral", "none"] | None = None
    """Per-image colour model with --wild: affine (3x3 + bias per image), bilateral (a low-resolution grid of
    affine transforms per image, by position and luminance) or none (default: the preset's, affine)."""
    masks: str | None = None
    """User masks of transients (0 = ignore): auto (the masks/ folder of a photo folder when wild is on),
    none, or a folder of 0/1 PNGs named like the photos."""
    weather: Literal["off", "median"] | None = None
    """Weather filter of the training photos (snow, rain): median = replace pixels far from the median of the other
    training views warped in through the poses and a depth (recon.wild.median); default: the preset's, off."""


@dataclass
class DemoArgs:
    """Train on the embedded synthetic scene with the demo preset, then evaluate."""

    out: str | None = None
    """Run folder (default: runs/demo-<primitive>-<time>)."""
    primitive: Primitive = "gaussian"
    """Primitive family."""
    iterations: int | None = None
    """Override the preset's number of steps."""
    backend: str | None = None
    """Rasterizer backend."""
    overwrite: bool = False
    """Delete an existing --out folder first (only a run folder recon created)."""


@dataclass
class EvalArgs:
    """Render a run's test views and report PSNR/SSIM/LPIPS."""

    run: tyro.conf.Positional[str]
    """The run folder."""
    json: bool = False
    """Print one JSON object (psnr, ssim, lpips, views) instead of a table."""
    no_images: bool = False
    """Do not write side-by-side images."""
    checkpoint: int | None = None
    """Evaluate the checkpoint of this step instead of the latest readable one."""
    appearance: str | None = None
    """Runs with per-image appearance: mean or a training image name (default: the run's)."""
    repair: str | None = None
    """Score the test views through the per-frame repair post-pass (Difix3D+): `--repair` alone uses the
    run's model (RUN/repair/model), `--repair PATH` a local diffusers folder (img2img options: the run's
    repair.pipe_*). Images and metrics.json go to RUN/eval_repaired."""
    out: str | None = None
    """Folder of the images and metrics.json instead of RUN/eval (RUN/eval_repaired with --repair)."""


INIT_METHODS = ("auto", "scene", "sfm", "mvs", "mono", "hull", "random")
BACKENDS = ("auto", "cpu", "cuda", "reference", "gsplat")


def check_options(config: TrainConfig) -> None:
    """Rejects option values that would only fail later (after the scene has loaded) or run silently."""
    import torch

    from recon.data.formats import FORMATS

    for key, value, allowed in (("init.method (--init)", config.init.method, INIT_METHODS),
                                ("backend (--backend)", config.backend, BACKENDS),
                                ("data.format (--format)", config.data.format, ("auto", *FORMATS))):
        if value not in allowed:
            raise ConfigError(f"{key}: unknown value {value!r}", hint=f"use one of {', '.join(allowed)}")
    if config.device not in ("cpu", "cuda"):
        raise ConfigError(f"device (--device): unknown value {config.device!r}", hint="use cpu or cuda")
    if config.device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device (--device) cuda: torch sees no CUDA GPU here",
                          hint="train with --device cpu (and --backend auto), or install a CUDA build of torch")
    if config.device == "cpu" and config.backend in ("cuda", "gsplat"):
        raise ConfigError(f"backend (--backend) {config.backend} renders on a GPU but device is cpu",
                          hint="pass --device cuda, or --backend auto on the CPU")
    if config.iterations <= 0:
        raise ConfigError(f"iterations (--iterations): {config.iterations} is not a positive number of steps",
                          hint="pass --iterations N with N >= 1")
    if config.checkpoint_every < 0:
        raise ConfigError(f"checkpoint_every: {config.checkpoint_every} is negative", hint="use 0 (only at the end) or N >= 1")
    masks = config.wild.masks
    if masks not in ("auto", "none") and not Path(masks).expanduser().is_dir():
        raise ConfigError(f"wild.masks (--masks): {masks} is not a folder", hint="use auto, none or a folder of 0/1 PNG masks")
    if config.repair.model != "off":
        from recon.repair.training import check_repair_option

        check_repair_option(config.repair.model)


def _progress_bar(total: int, start: int, device: str = "cpu") -> tuple[Progress, object]:
    progress = Progress(
        TextColumn("[bold]train"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
        TextColumn("loss {task.fields[loss]:.4f}  psnr {task.fields[psnr]:.2f}  n {task.fields[n]}  {task.fields[its]:.1f} it/s"),
        TimeElapsedColumn(), TimeRemainingColumn(), console=console, transient=False,
    )  # fmt: skip
    task = progress.add_task("train", total=total, completed=start, loss=0.0, psnr=0.0, n=0, its=0.0)
    t0, s0 = time.perf_counter(), start
    eta = EtaEstimate(total, start=start, device=device)

    def update(step: int, losses: dict, count: int) -> None:
        its = (step - s0) / max(time.perf_counter() - t0, 1e-9)
        progress.update(task, completed=step, loss=losses["loss"], psnr=losses["psnr"], n=count, its=its)
        line = eta.update(step)
        if line:
            progress.console.print(line)

    return progress, update


def _save_priors(out: Path, cloud, depths, names: list[str]) -> None:
    """Keeps the init cloud and depth priors in ``RUN/priors/`` (the viewer shows the cloud)."""
    from recon.priors.init import save_priors

    save_priors(out, cloud, depths, names=names)


def run_training(config: TrainConfig, out: Path, resume: bool = False, quiet: bool = False,
                 checkpoint: int | None = None, on_start: Sequence[StartHook] = ()) -> tuple[Trainer, TrainResult]:
    """Loads the scene, initialises (or resumes) and trains; writes everything under ``out``.

    ``config.json``, ``cameras.json`` and the run marker are written once the scene has loaded
    and split. ``checkpoint`` picks the step a resume starts from (default: the newest readable).
    ``on_start`` hooks run in order just before the first step (the live viewer is one).
    """
    from recon.run import find_checkpoint

    ckpt = find_checkpoint(out / "checkpoints", checkpoint) if resume else None
    if ckpt is not None:
        scene = load_run_scene(load_run(out, checkpoint))  # the cameras it trained with: never a new SfM
    else:
        scene = load_training_scene(config.data, out, verbose=not quiet)
    split = make_split(scene, config.data)
    attach_user_masks(config, scene)  # recon.wild: a masks/ folder of transients, honoured by stereo and the loss
    if not resume:
        save_config(config, out / "config.json")
        own_sfm = Path(scene.root).resolve().is_relative_to((out / "sfm").resolve())
        write_cameras(out, scene.cameras, scene.names, split, str(scene.root), images=scene.images,
                      sfm_dir=Path(scene.root) if own_sfm else None)
        mark_run(out)
    filter_weather(config, scene, split.train, out, verbose=not quiet)  # wild.weather median; after the image hashes
    use_sparse = sparse_enabled(config, len(split.train))
    priors = depth_prior_maps(scene, split.train, config.sparse.depth_source) if use_sparse else None
    trainer = Trainer(config, scene, split, out, depth_priors=priors)
    cloud = None
    if ckpt is not None:
        trainer.load(ckpt)
    else:
        cloud = initial_cloud(scene, split.train, config.init, config.seed, out)
        trainer.init_from_cloud(cloud)
        _save_priors(out, cloud, priors, [scene.names[i] for i in split.train])
        if not quiet:
            console.print(f"init: {cloud.points.shape[0]} points from {cloud.source}; "
                          f"{len(split.train)} train / {len(split.test)} test views ({split.protocol}); "
                          f"sparse regularisers {'on' if use_sparse else 'off'}")
    if config.repair.model != "off":
        from recon.repair.training import repair_source

        say = (lambda line: None) if quiet else console.print
        trainer.pseudo_source = repair_source(trainer, out, say)  # a bad model folder fails here, before training
        if trainer.pseudo_source is not None and ckpt is not None and trainer.pseudo_source.restore(trainer.step):
            say(f"repair: round {trainer.pseudo_source.round + 1} restored from {out / 'repair'}")
    for hook in on_start:
        hook(trainer, cloud)
    if quiet:
        result = trainer.train()
    else:
        progress, update = _progress_bar(config.iterations, trainer.step, config.device)
        with progress:
            result = trainer.train(update)
    if not quiet:
        state = "interrupted" if result.interrupted else "done"
        console.print(f"{state}: step {result.step}/{config.iterations}, {result.num_primitives} {plural(config.primitive)}, "
                      f"{result.seconds:.1f} s, last train PSNR {result.last_psnr:.2f} dB; run in {out}")
    return trainer, result


# The automatic dense schedule on a CPU: 3DGS's first evaluation point (7k of its 30k steps, each
# step-count option scaled alike); 30k steps of 16 photos at 640x480 take about two hours here.
CPU_DENSE_STEPS = 7000


def _config_from_args(args: TrainArgs) -> TrainConfig:
    import torch

    preset = args.preset
    auto = preset == "auto"
    if auto:
        preset = "sparse-3view" if (args.views is not None and args.views <= 9) or args.protocol == "dtu" else "dense"
    config = load_preset(preset)
    device = args.device or ("cuda" if args.backend in ("cuda", "gsplat") else config.device)
    notes = []
    if auto and preset == "dense" and device == "cpu" and args.iterations is None and config.iterations > CPU_DENSE_STEPS:
        notes.append(f"preset dense on the CPU: {CPU_DENSE_STEPS} steps, the whole schedule scaled from "
                     f"{config.iterations} (--iterations N or --preset dense for the full one)")
        config = scale_schedule(config, CPU_DENSE_STEPS)
    if device == "cpu" and args.device is None and torch.cuda.is_available():
        notes.append("a CUDA GPU is available: pass --device cuda to train on it")
    changes = {"data.path": args.data, "data.format": args.format, "data.protocol": args.protocol,
               "data.views": args.views, "primitive": args.primitive, "data.skip_missing": args.skip_missing}
    for key, value in (("iterations", args.iterations), ("seed", args.seed), ("backend", args.backend),
                       ("data.downscale", args.downscale), ("init.method", args.init), ("sparse.enabled", args.sparse),
                       ("checkpoint_every", args.checkpoint_every), ("repair.model", args.repair),
                       ("repair.pipe_steps", args.repair_steps), ("repair.pipe_strength", args.repair_strength),
                       ("repair.pipe_guidance", args.repair_guidance), ("repair.pipe_prompt", args.repair_prompt),
                       ("wild.mode", args.wild), ("wild.reference", args.appearance), ("wild.masks", args.masks),
                       ("wild.weather", args.weather),
                       ("wild.appearance", args.appearance_model),
                       ("device", args.device or ("cuda" if args.backend in ("cuda", "gsplat") else None))):
        if value is not None:
            changes[key] = value
    config = override(config, **changes)
    check_options(config)
    for note in notes:
        console.print(note)
    return config


def train_main(argv: list[str], prog: str = "recon train", live_viewer: StartHook | None = None) -> int:
    """``recon train``; ``live_viewer`` is the start hook that serves ``--viewer`` (see :mod:`recon.app.train`)."""
    args = tyro.cli(TrainArgs, args=_resume_shorthand(argv), prog=prog)
    out = Path(args.out)
    if args.viewer and live_viewer is None:
        raise ConfigError("--viewer: this entry point has no live viewer", hint="use the `recon train` command")
    if args.checkpoint is not None and not args.resume:
        raise ConfigError("--checkpoint needs --resume", hint="recon train --resume RUN --checkpoint STEP")
    if args.resume:
        folder = prepare_out(out, resume=True)
        config = load_config(out / "config.json")
        if args.iterations is not None:
            config = override(config, iterations=args.iterations)
        check_options(config)
    else:
        if not args.data:
            raise ConfigError("--data is required", hint="pass --data PATH to a scene folder")
        config = _config_from_args(args)
        folder = prepare_out(out, overwrite=args.overwrite, data=args.data)
    with removed_if_start_fails(folder):
        _, result = run_training(config, out, resume=args.resume, checkpoint=args.checkpoint,
                                 on_start=[live_viewer] if args.viewer else [])
    return 130 if result.interrupted else 0


def _resume_shorthand(argv: list[str]) -> list[str]:
    if "--resume" not in argv:
        return argv
    i = argv.index("--resume")
    if i + 1 < len(argv) and not argv[i + 1].startswith("-"):
        return argv[:i] + ["--resume", "--out", argv[i + 1]] + argv[i + 2 :]
    return argv


def demo_main(argv: list[str], prog: str = "recon demo") -> int:
    args = tyro.cli(DemoArgs, args=list(argv), prog=prog)
    out = Path(args.out or f"runs/demo-{args.primitive}-{time.strftime('%Y%m%d-%H%M%S')}")
    changes = {"data.path": SYNTHETIC, "primitive": args.primitive}
    if args.iterations is not None:
        changes["iterations"] = args.iterations
    if args.backend is not None:
        changes["backend"] = args.backend
    config = override(load_preset("demo"), **changes)
    check_options(config)
    folder = prepare_out(out, overwrite=args.overwrite)
    t0 = time.perf_counter()
    with removed_if_start_fails(folder):
        _, result = run_training(config, out)
    if result.interrupted:
        return 130
    res = _evaluate(out, images=True)
    console.print(f"demo: test PSNR {res.psnr:.2f} dB, SSIM {res.ssim:.3f} over {len(res.views)} held-out views "
                  f"({time.perf_counter() - t0:.0f} s total)")
    print(json.dumps({"psnr": res.psnr, "ssim": res.ssim, "lpips": res.lpips, "run": str(out)}))
    return 0


def _evaluate(run_dir: Path, images: bool = True, step: int | None = None, appearance: str | None = None,
              repair: str | None = None, out: str | None = None):
    from recon.train.evaluate import evaluate_run

    run = load_run(run_dir, step)
    scene = load_run_scene(run)  # the run's own cameras and images: never a new SfM
    post = None
    if repair is not None:
        from recon.repair.postpass import load_frame_repair
        from recon.repair.pretrained import pipeline_options

        model = None if repair == "auto" else repair
        post = load_frame_repair(run, model, scene=scene, **pipeline_options(run.config.repair))
        if post.note:
            print(f"note: {post.note}", file=sys.stderr)  # stdout stays the table or the JSON line
    folder = Path(out) if out is not None else run_dir / ("eval" if post is None else "eval_repaired")
    return evaluate_run(run, scene, folder, images=images, appearance=appearance, repair=post)


def eval_main(argv: list[str], prog: str = "recon eval") -> int:
    from recon.repair.postpass import bare_repair_flag

    args = tyro.cli(EvalArgs, args=bare_repair_flag(argv), prog=prog)
    res = _evaluate(Path(args.run), images=not args.no_images, step=args.checkpoint, appearance=args.appearance,
                    repair=args.repair, out=args.out)
    if args.json:
        print(json.dumps(res.to_dict()))
        return 0
    kind = ("repaired, " if res.repaired else "") + ("masked " if res.masked else "") + ("NeRF-W " if res.protocol else "")
    for row in res.views:
        lp = "n/a" if row["lpips"] is None else f"{row['lpips']:.4f}"
        print(f"{row['name']:<32} {kind}PSNR {row['psnr']:6.2f}  SSIM {row['ssim']:.4f}  LPIPS {lp}")
    lp = "unavailable (no local weights)" if res.lpips is None else f"{res.lpips:.4f}"
    print(f"mean over {len(res.views)} views: {kind}PSNR {res.psnr:.2f} dB, SSIM {res.ssim:.4f}, LPIPS {lp}")
    return 0

