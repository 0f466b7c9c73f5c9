"""Photos in the wild (issue #15) on the synthetic variants: the same runs with and without ``--wild``.

For each variant of the demo scene (clean, ``wild-appearance``, ``wild-occluders``, ``wild-rain``,
``wild``) and each seed, the demo preset trains twice in this process (``wild.mode`` off and on,
everything else identical; one torch thread; ``--modes off on streaks`` adds a third run with
``wild.streaks``, the rain filter of :mod:`recon.wild.weather`) and the clean test views are scored:

* ``psnr`` / ``ssim``: the whole image, rendered in the run's reference appearance (the mean of
  the training transforms; the render itself without appearance);
* ``psnr_nerfw`` / ``ssim_nerfw``: the NeRF-W protocol for both modes (an affine colour transform
  fitted on the left half of each test image, scored on the right half), which removes the
  global colour ambiguity a run without appearance cannot resolve either;
* ``recall_occluders`` / ``recall_rain`` / ``false_drop``: on the training views, the share of the
  pasted occluders' (rain streaks') pixels the final masks drop, and the share of the other
  pixels they drop (on a real scene, ``--data``, every pixel counts as clean: the share dropped);
* ``cpu_s`` / ``wall_s``: training time (process CPU seconds, wall seconds).

The runs start from the demo preset's points: the scene's exact surface samples, or with
``--points sfm`` the SfM-like ones of ``synthetic:...+sfm-points`` (sparse and noisy, as a user's
run would start; the clean scene then starts from the same points).

Writes ``results.json`` and ``table.md`` under ``--out`` (run folders in ``--out/runs``)::

    OMP_NUM_THREADS=1 nice -n 10 python scripts/bench_wild.py --seeds 0 1 2 --out /tmp/bench_wild

Numbers go to BENCHMARKS.md ("Photos in the wild").
"""

from __future__ import annotations

import argparse
import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

VARIANTS = ("clean", "wild-appearance", "wild-occluders", "wild-rain", "wild", "wild-occluders-all")
MODES = ("off", "on", "streaks", "median", "on-median", "bilateral")
# streaks = on + wild.streaks (recon.wild.weather); median = off + wild.weather median (recon.wild.median)
MODE_OPTIONS = {
    "off": {"wild.mode": "off"},
    "on": {"wild.mode": "on"},
    "streaks": {"wild.mode": "on", "wild.streaks": True},
    "median": {"wild.mode": "off", "wild.weather": "median"},
    "on-median": {"wild.mode": "on", "wild.weather": "median"},
    "bilateral": {"wild.mode": "on", "wild.appearance": "bilateral"},  # a bilateral grid per photo, not an affine
}


@dataclass
class Record:
    variant: str
    mode: str
    seed: int
    psnr: float = math.nan
    ssim: float = math.nan
    psnr_nerfw: float = math.nan
    ssim_nerfw: float = math.nan
    recall_occluders: float | None = None
    recall_rain: float | None = None
    false_drop: float | None = None
    cpu_s: float = math.nan
    wall_s: float = math.nan


def _config(
    variant: str,
    mode: str,
    seed: int,
    iterations: int | None,
    points: str = "exact",
    downscale: float = 1.0,
    views=None,
):
    """The demo preset on ``variant`` (a name of :data:`VARIANTS` or a real scene's folder) in ``mode``.

    ``points`` exact or sfm (see the module docstring), ``downscale`` of a real scene, ``views``
    training views (``data.views``, None = the protocol's).
    """
    from recon.config import load_preset, override, scale_schedule

    if variant in VARIANTS:
        kinds = ([] if variant == "clean" else [variant]) + (["sfm-points"] if points == "sfm" else [])
        data = {"data.path": ":".join(["synthetic", "+".join(kinds)]) if kinds else "synthetic"}
    else:  # a real scene (--data): LLFF protocol, the scene's own points
        data = {"data.path": variant, "data.protocol": "llff", "data.downscale": downscale}
    config = override(load_preset("demo"), **{**data, "data.views": views, "seed": seed, **MODE_OPTIONS[mode]})
    return config if iterations is None else scale_schedule(config, iterations)


@torch.no_grad()
def _scores(trainer) -> dict[str, float]:
    """Means over the test views of the four image metrics (see the module docstring)."""
    from recon.eval import metrics
    from recon.render import render
    from recon.wild.protocol import apply_appearance, nerfw_halves

    scene, params = trainer.scene, {k: v.detach() for k, v in trainer.params.items()}
    ref = None if trainer.wild is None else trainer.wild.reference()
    rows = []
    for i in trainer.split.test:
        out = render(
            trainer.config.primitive,
            params,
            scene.cameras[i],
            sh_degree=trainer.sh_degree(trainer.step),
            backgrounds=trainer.pseudo_background().reshape(1, 3),
        )
        raw, gt = out.rgb[0], scene.images[i]
        pred = (raw if ref is None else apply_appearance(raw, ref)).clamp(0, 1)
        half, half_gt = nerfw_halves(raw, gt, ref)
        rows.append(
            [
                float(metrics.psnr(pred, gt)),
                float(metrics.ssim(pred, gt)),
                float(metrics.psnr(half, half_gt)),
                float(metrics.ssim(half, half_gt)),
            ]
        )
    keys = ("psnr", "ssim", "psnr_nerfw", "ssim_nerfw")
    return dict(zip(keys, np.mean(rows, axis=0).tolist(), strict=True))


def _mask_scores(trainer) -> tuple[float | None, float | None, float | None]:
    """Recall on the occluder and on the rain pixels of the training views (final masks), and the
    false-drop rate on their other pixels."""
    truth = trainer.scene.meta.get("wild", {})
    if trainer.wild is None or not trainer.wild.last_masks:
        return None, None, None
    caught, total, dropped, clean = {"occluders": 0, "rain": 0}, {"occluders": 0, "rain": 0}, 0, 0
    for v, weights in trainer.wild.last_masks.items():
        name = trainer.wild.names[v]
        drop = weights < 0.5
        bad = torch.zeros_like(drop)
        for kind in caught:
            if name in truth.get(kind, {}):
                bad |= truth[kind][name]
                caught[kind] += int((drop & truth[kind][name]).sum())
                total[kind] += int(truth[kind][name].sum())
        dropped, clean = dropped + int((drop & ~bad).sum()), clean + int((~bad).sum())
    recall = [caught[k] / total[k] if total[k] else None for k in ("occluders", "rain")]
    return recall[0], recall[1], dropped / max(clean, 1)


def run_one(variant: str, mode: str, seed: int, out: Path, iterations: int | None, **options) -> Record:
    """Trains ``variant`` in ``mode`` (``options``: those of :func:`_config`) and scores the run."""
    from recon.train.cli import run_training

    config = _config(variant, mode, seed, iterations, **options)
    tag = "".join(f"-{k}{v}" for k, v in sorted(options.items()) if v not in (None, "exact", 1, 1.0))
    run_dir = out / "runs" / f"{Path(variant).name}-{mode}-s{seed}{tag}"
    run_dir.mkdir(parents=True, exist_ok=True)
    cpu0, wall0 = time.process_time(), time.perf_counter()
    trainer, _ = run_training(config, run_dir, quiet=True)
    rec = Record(variant, mode, seed, cpu_s=time.process_time() - cpu0, wall_s=time.perf_counter() - wall0)
    for key, value in _scores(trainer).items():
        setattr(rec, key, value)
    rec.recall_occluders, rec.recall_rain, rec.false_drop = _mask_scores(trainer)
    return rec


def table(records: list[Record]) -> str:
    """Markdown: per variant and mode, mean +- std over seeds."""

    def stat(values: list[float], fmt: str) -> str:
        values = [v for v in values if v is not None]
        if not values:
            return "-"
        return f"{np.mean(values):{fmt}} ± {np.std(values):{fmt}}" if len(values) > 1 else f"{values[0]:{fmt}}"

    lines = [
        "| variant | wild | PSNR | SSIM | PSNR NeRF-W | SSIM NeRF-W | recall occl. | recall rain | false drop | CPU s |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for variant in dict.fromkeys(r.variant for r in records):
        for mode in MODES:
            rs = [r for r in records if r.variant == variant and r.mode == mode]
            if rs:
                col = lambda k, rs=rs: [getattr(r, k) for r in rs]
                lines.append(
                    f"| {variant} | {mode} | {stat(col('psnr'), '.2f')} | {stat(col('ssim'), '.3f')} | "
                    f"{stat(col('psnr_nerfw'), '.2f')} | {stat(col('ssim_nerfw'), '.3f')} | "
                    f"{stat(col('recall_occluders'), '.3f')} | {stat(col('recall_rain'), '.3f')} | "
                    f"{stat(col('false_drop'), '.4f')} | "
                    f"{stat(col('cpu_s'), '.1f')} |"
                )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS[:5]), choices=VARIANTS)
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--modes", nargs="+", default=["off", "on"], choices=MODES)
    parser.add_argument("--iterations", type=int, default=None, help="override the demo preset's 500 steps")
    parser.add_argument(
        "--points",
        choices=("exact", "sfm"),
        default="exact",
        help="initial points: the scene's exact surface samples, or SfM-like ones (sparse, noisy: sfm-points)",
    )
    parser.add_argument("--data", help="a real scene folder instead of the variants (LLFF protocol, its own points)")
    parser.add_argument("--downscale", type=float, default=1.0, help="image downscale of --data")
    parser.add_argument("--views", type=int, default=None, help="training views (data.views; default: all)")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    if args.data:
        args.variants = [args.data]
    torch.set_num_threads(1)
    args.out.mkdir(parents=True, exist_ok=True)
    records: list[Record] = []
    for variant in args.variants:
        for seed in args.seeds:
            for mode in args.modes:
                options = {"points": args.points, "downscale": args.downscale, "views": args.views}
                rec = run_one(variant, mode, seed, args.out, args.iterations, **options)
                records.append(rec)
                print(json.dumps(asdict(rec)), flush=True)
                (args.out / "results.json").write_text(json.dumps([asdict(r) for r in records], indent=1))
    (args.out / "table.md").write_text(table(records))
    print(table(records))


if __name__ == "__main__":
    main()
