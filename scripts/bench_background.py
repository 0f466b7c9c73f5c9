"""Background rule for RGBA (Blender) scenes: test PSNR when compositing, training and
evaluation agree or disagree on the background colour.

Rules compared (each a short run on the DietNeRF 8 training views, same seed and init):
  mismatch  images composited on white, trained and rendered on black (recon before the fix)
  white     composited, trained and evaluated on white (the NeRF-synthetic convention)
  black     composited, trained and evaluated on black

Usage:
  python scripts/bench_background.py [--scene ../shared/data/nerf_synthetic/lego_400]
      [--downscale 4] [--iterations 300] [--test-every 8] [--rules mismatch,white,black]
      [--init random]
Prints one JSON line per rule and a markdown table for BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from recon.config import load_preset, override
from recon.data.formats import load_scene
from recon.eval import metrics
from recon.render.render import render
from recon.train.setup import initial_cloud, make_split
from recon.train.trainer import Trainer

REPO = Path(__file__).resolve().parents[1]
WHITE, BLACK = (1.0, 1.0, 1.0), (0.0, 0.0, 0.0)
# rule -> (compositing colour at load, loss.background for training and evaluation)
RULES = {"mismatch": (WHITE, "black"), "white": (WHITE, "white"), "black": (BLACK, "black")}


def run_rule(rule: str, args: argparse.Namespace) -> dict:
    composite, train_bg = RULES[rule]
    config = load_preset("sparse-3view")
    config = override(
        config, **{"data.path": str(args.scene), "data.views": 8, "data.downscale": args.downscale,
                   "iterations": args.iterations, "init.method": args.init, "sparse.enabled": False,
                   "loss.background": train_bg, "seed": 0},
    )  # fmt: skip
    scene = load_scene(args.scene, downscale=args.downscale, background=composite, verbose=False)
    split = make_split(scene, config.data)
    t0 = time.perf_counter()
    trainer = Trainer(config, scene, split, None)
    cloud = initial_cloud(scene, split.train, config.init, config.seed)
    trainer.init_from_cloud(cloud)
    trainer.train(install_sigint=False)
    seconds = time.perf_counter() - t0
    bg = trainer.background.reshape(1, 3)
    test = split.test[:: args.test_every]
    psnrs = []
    with torch.no_grad():
        for i in test:
            out = render(config.primitive, trainer.params, scene.cameras[i], sh_degree=trainer.sh_degree(trainer.step),
                         backgrounds=bg, backend=config.backend)
            psnrs.append(float(metrics.psnr(out.rgb[0].clamp(0, 1), scene.images[i])))
    return {"rule": rule, "composite": composite, "train_background": train_bg, "psnr": sum(psnrs) / len(psnrs),
            "test_views": len(test), "iterations": args.iterations, "downscale": args.downscale,
            "primitives": trainer.num_primitives, "init": cloud.source, "train_seconds": round(seconds, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scene", type=Path, default=REPO.parent / "shared" / "data" / "nerf_synthetic" / "lego_400")
    parser.add_argument("--downscale", type=float, default=4)
    parser.add_argument("--iterations", type=int, default=300)
    parser.add_argument("--test-every", type=int, default=8, help="evaluate every K-th test view")
    parser.add_argument("--rules", default="mismatch,white,black")
    parser.add_argument("--init", default="random", help="init.method (random, hull, auto...)")
    args = parser.parse_args()
    rows = []
    for rule in args.rules.split(","):
        row = run_rule(rule, args)
        print(json.dumps(row), flush=True)
        rows.append(row)
    print("\n| rule | composite | train/eval background | test PSNR (dB) | views | steps | train s |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['rule']} | {r['composite']} | {r['train_background']} | {r['psnr']:.2f} | {r['test_views']} "
              f"| {r['iterations']} | {r['train_seconds']} |")


if __name__ == "__main__":
    main()
