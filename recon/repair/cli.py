"""``recon repair pairs|fit|apply RUN``: the repair steps on a finished (or training) run.

``pairs`` writes the fixer's training pairs (leave-one-out sub-runs + attribute noise, training
views only) under ``RUN/repair/pairs``; ``fit`` fits the scene's fixer on them, gates it against
the identity on a held-out view and saves both; ``apply`` renders views of the run, repairs them
and writes render | repaired | photo side by side under ``RUN/repair/apply`` with PSNRs, to
judge a repair model by eye before training with it (``recon train --repair``).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import tyro

from recon.config import RepairConfig
from recon.priors._progress import stderr_console

console = stderr_console()


@dataclass(frozen=True)
class PairsArgs:
    """Generate the fixer's training pairs of a run (RUN/repair/pairs)."""

    run: tyro.conf.Positional[Path]
    """The run folder."""
    held_out: int = 6
    """Leave-one-out sub-runs (views held out, evenly spaced over the training views)."""
    fraction: float = 0.1
    """Length of a sub-run as a fraction of the run's schedule."""
    downscale: float = 2.0
    """Image downscale of the pairs."""
    noise_per_view: int = 2
    """Attribute-noise renders per training view."""


@dataclass(frozen=True)
class FitArgs:
    """Fit the scene's fixer on RUN/repair/pairs and gate it against the identity (RUN/repair/model, gate.json)."""

    run: tyro.conf.Positional[Path]
    """The run folder."""
    steps: int = 1000
    """Optimisation steps."""
    channels: int = 32
    """Width of the first UNet level (then x2, x2)."""
    crop: int = 48
    """Training crop size in pixels (at most the pairs' smaller side)."""
    max_seconds: float = 0.0
    """Stop fitting after this many CPU seconds (0 = no limit); the weights so far are kept."""


@dataclass(frozen=True)
class ApplyArgs:
    """Repair renders of a run's views and write render | repaired | photo side by side."""

    run: tyro.conf.Positional[Path]
    """The run folder."""
    views: tuple[int, ...] = ()
    """Scene indices of the views to repair (default: the test views)."""
    model: Path | None = None
    """A local diffusers folder (default: the fixer in RUN/repair/model)."""
    out: Path | None = None
    """Output folder (default: RUN/repair/apply)."""
    pipe_steps: int = RepairConfig.pipe_steps
    """--model pipelines (img2img): denoising steps."""
    pipe_strength: float = RepairConfig.pipe_strength
    """--model pipelines (img2img): how far the render is noised before denoising (0..1)."""
    pipe_guidance: float = RepairConfig.pipe_guidance
    """--model pipelines (img2img): classifier-free guidance scale (0 = off)."""
    pipe_prompt: str = RepairConfig.pipe_prompt
    """--model pipelines: text prompt."""


def pairs_main(argv: Sequence[str], prog: str = "recon repair pairs") -> int:
    from recon.repair.pairs import PairConfig
    from recon.repair.workflow import pairs_for_run, repair_dir

    args = tyro.cli(PairsArgs, args=list(argv), prog=prog)
    config = PairConfig(held_out=args.held_out, fraction=args.fraction, downscale=args.downscale,
                        noise_per_view=args.noise_per_view)  # fmt: skip
    with console.status("repair pairs: leave-one-out sub-runs"):
        pair_set = pairs_for_run(args.run, config, progress=console.print)
    console.print(f"{len(pair_set.pairs)} pairs in {repair_dir(args.run) / 'pairs'}")
    return 0


def fit_main(argv: Sequence[str], prog: str = "recon repair fit") -> int:
    from recon.repair.fixer import FixerConfig
    from recon.repair.workflow import fit_for_run, repair_dir

    args = tyro.cli(FitArgs, args=list(argv), prog=prog)
    w = args.channels
    config = FixerConfig(channels=(w, 2 * w, 2 * w), norm_groups=min(8, w), steps=args.steps, crop=args.crop,
                         max_seconds=args.max_seconds)  # fmt: skip
    fixer, gate = fit_for_run(args.run, config, progress=True)
    console.print(f"fixer: {fixer.meta.get('fit_steps')} steps, loss {fixer.meta.get('first_loss', 0):.4f} -> "
                  f"{fixer.meta.get('last_loss', 0):.4f}; saved in {repair_dir(args.run) / 'model'}")
    console.print(gate.reason)
    return 0


def apply_main(argv: Sequence[str], prog: str = "recon repair apply") -> int:
    args = tyro.cli(ApplyArgs, args=list(argv), prog=prog)
    options = RepairConfig(pipe_steps=args.pipe_steps, pipe_strength=args.pipe_strength,
                           pipe_guidance=args.pipe_guidance, pipe_prompt=args.pipe_prompt)  # fmt: skip
    rows = apply_to_run(args.run, list(args.views) or None, args.model, args.out, options)
    for row in rows:
        photo = "" if row["psnr_render"] is None else f"  PSNR {row['psnr_render']:.2f} -> {row['psnr_repaired']:.2f} dB"
        print(f"{row['name']:<32} {row['file']}{photo}")
    return 0


def apply_to_run(run_dir: Path, views: list[int] | None = None, model_path: Path | None = None,
                 out: Path | None = None, options: RepairConfig | None = None) -> list[dict]:
    """Repairs renders of ``views`` (scene indices; default the test views) and writes
    ``render | repaired | photo`` PNGs and ``apply.json`` (PSNR of each against the photo).
    ``options``: the ``pipe_*`` settings of a pipeline ``model_path`` (defaults when None).

    Raises:
        ConfigError: a bad run, view index or model folder, or no fitted fixer and no ``model_path``.
    """
    import numpy as np
    import torch
    from PIL import Image

    from recon.errors import ConfigError
    from recon.render import render, solid_background
    from recon.repair.pretrained import load_repair_model, pipeline_options
    from recon.repair.source import PseudoViewConfig, RepairedViews
    from recon.repair.workflow import repair_dir
    from recon.run import load_run, load_run_scene
    from recon.train.losses import psnr

    run = load_run(run_dir)
    scene = load_run_scene(run)
    views = list(run.split.test) if views is None else views
    bad = [v for v in views if not 0 <= v < len(scene)]
    if bad or not views:
        raise ConfigError(f"--views {' '.join(map(str, bad)) or '(none)'}: the run has views 0..{len(scene) - 1}",
                          hint="pass scene indices (recon data inspect lists them)")
    gate_file = repair_dir(run_dir) / "gate.json"
    if model_path is None:
        model_path = repair_dir(run_dir) / "model"
        if not model_path.is_dir():
            raise ConfigError("the run has no fitted repair model", path=model_path,
                              hint="run `recon repair pairs RUN` and `recon repair fit RUN`, or pass --model PATH")
        if gate_file.is_file():
            console.print(f"note: {json.loads(gate_file.read_text())['reason']}")
    model = load_repair_model(model_path, **pipeline_options(options or RepairConfig()))
    bg = solid_background(run.background)

    def render_fn(cam):
        return render(run.primitive, run.params, cam, sh_degree=run.sh_degree, backgrounds=bg.reshape(1, 3))

    train = list(run.split.train)
    repaired = RepairedViews(model, render_fn, scene.cameras[train], [scene.images[i] for i in train],
                             scene.cameras[views], PseudoViewConfig()).views(0)
    folder = out or repair_dir(run_dir) / "apply"
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for v, view in zip(views, repaired, strict=True):
        before = render_fn(scene.cameras[v]).rgb[0].clamp(0, 1)  # [H, W, 3]
        photo = scene.images[v]
        tile = torch.cat([before, view.image, photo], 1)
        name = Path(scene.names[v]).stem
        file = folder / f"{v:03d}_{name}.png"
        Image.fromarray((tile.numpy() * 255).round().astype(np.uint8)).save(file)
        rows.append({"view": v, "name": scene.names[v], "file": str(file), "psnr_render": psnr(before, photo),
                     "psnr_repaired": psnr(view.image, photo)})
    (folder / "apply.json").write_text(json.dumps({"model": str(model_path), "views": rows}, indent=1))
    return rows
