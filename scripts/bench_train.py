"""Training speed per primitive: seconds per iteration and peak memory, on the demo scene
(and on DTU scan24 3 views when ../shared/data is present).

Usage: python scripts/bench_train.py [--steps 30] [--dtu PATH] [--device cpu|cuda]
Prints one JSON line per (scene, primitive) and a markdown table for BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import json
import resource
import time
from pathlib import Path

import torch

from recon.config import load_preset, override
from recon.train.setup import depth_prior_maps, initial_cloud, load_training_scene, make_split
from recon.train.trainer import Trainer


def bench(config, steps: int, warmup: int = 3) -> dict:
    scene = load_training_scene(config.data, verbose=False)
    split = make_split(scene, config.data)
    tr = Trainer(config, scene, split, None, depth_priors=depth_prior_maps(scene, split.train, "auto"))
    tr.init_from_cloud(initial_cloud(scene, split.train, config.init, config.seed))
    for s in range(warmup):
        tr.train_step(s)
    if config.device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    t = time.perf_counter()
    for s in range(warmup, warmup + steps):
        tr.train_step(s)
    if config.device == "cuda":
        torch.cuda.synchronize()
    dt = (time.perf_counter() - t) / steps
    peak = (torch.cuda.max_memory_allocated() / 2**20 if config.device == "cuda"
            else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    return {"s_per_it": dt, "peak_mib": peak, "count": tr.num_primitives,
            "size": f"{scene.images[0].shape[1]}x{scene.images[0].shape[0]}"}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--dtu", default=str(Path(__file__).resolve().parents[1].parent / "shared/data/dtu/scan24"))
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--primitives", default="gaussian,triangle,convex")
    args = ap.parse_args()
    rows = []
    scenes = [("demo", override(load_preset("demo"), **{"strategy.name": "none"}))]
    if Path(args.dtu).is_dir():
        dtu = override(load_preset("sparse-3view"), **{"data.path": args.dtu, "data.protocol": "dtu", "data.views": 3,
                                                        "strategy.name": "none", "init.method": "random",
                                                        "sparse.pseudo_weight": 0.0})
        scenes.append(("dtu-scan24-3v", dtu))
    for name, cfg in scenes:
        for prim in args.primitives.split(","):
            c = override(cfg, primitive=prim, device=args.device)
            r = {"scene": name, "primitive": prim, "device": args.device, **bench(c, args.steps)}
            print(json.dumps(r), flush=True)
            rows.append(r)
    print("\n| scene | primitive | image | primitives | s/it | peak MiB |\n|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['scene']} | {r['primitive']} | {r['size']} | {r['count']} | {r['s_per_it']:.3f} | {r['peak_mib']:.0f} |")


if __name__ == "__main__":
    main()
