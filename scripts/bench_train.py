"""Training speed: per primitive (seconds per iteration, peak memory), or the demo beside a
competing busy process for several thread settings side by side.

Usage:
  python scripts/bench_train.py [--steps 30] [--dtu PATH] [--device cpu|cuda]
      one JSON line per (scene, primitive) and a markdown table for BENCHMARKS.md.
  python scripts/bench_train.py --side-by-side [--runs 3] [--steps 200]
      the demo scene's train steps (strategy off, 3000 Gaussians) in fresh subprocesses, alone
      and beside one busy Python loop (not pinned), for each thread setting of --envs: "default"
      (the environment as it is: recon/ops/threads.py picks the count), OMP_NUM_THREADS=1 / =2
      exported, and RECON_THREADS=2 (two threads whatever the load: the behaviour before the
      thread policy). Settings are interleaved run by run, so load drifts hit each alike. Prints
      it/s and CPU ms per step (mean +- std over the runs), the mean thread count in force and the
      ratio busy / alone per setting.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

from recon.config import load_preset, override
from recon.run import load_training_scene
from recon.train.setup import depth_prior_maps, initial_cloud, make_split
from recon.train.trainer import Trainer

REPO = Path(__file__).resolve().parents[1]


def make_trainer(config) -> Trainer:
    scene = load_training_scene(config.data, verbose=False)
    split = make_split(scene, config.data)
    tr = Trainer(config, scene, split, None, depth_priors=depth_prior_maps(scene, split.train, "auto"))
    tr.init_from_cloud(initial_cloud(scene, split.train, config.init, config.seed))
    return tr


def bench(config, steps: int, warmup: int = 3) -> dict:
    tr = make_trainer(config)
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
            "size": f"{tr.cameras[0].width}x{tr.cameras[0].height}"}


def per_primitive(args) -> None:
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


# ---- side by side: alone vs beside a busy process ------------------------------------------------


def child(steps: int, warmup_s: float = 1.0) -> None:
    """One measurement (run in a fresh process): ``steps`` train steps of the demo scene, after
    ``warmup_s`` seconds of steps (the thread policy samples the load every 0.5 s)."""
    tr = make_trainer(override(load_preset("demo"), **{"strategy.name": "none"}))
    step, t0 = 0, time.perf_counter()
    while step < 10 or time.perf_counter() - t0 < warmup_s:
        tr.train_step(step)
        step += 1
    w0, c0, used = time.perf_counter(), time.process_time(), 0
    for s in range(step, step + steps):
        tr.train_step(s)
        used += torch.get_num_threads()  # the count the thread policy set for this step
    wall, cpu = time.perf_counter() - w0, time.process_time() - c0
    with open("/proc/self/maps") as f:  # the OpenMP runtimes loaded (torch's bundled libgomp only)
        omp = sorted({line.split()[-1] for line in f if "libgomp" in line or "libiomp" in line})
    print(json.dumps({"its": steps / wall, "cpu_ms": 1e3 * cpu / steps, "wall_ms": 1e3 * wall / steps,
                      "threads": used / steps, "openmp": omp}), flush=True)


BUSY = "import time\nt = time.time() + 900\nwhile time.time() < t: pass\n"  # self-limiting spinner
SETTINGS = "default,OMP_NUM_THREADS=1,OMP_NUM_THREADS=2,RECON_THREADS=2"


def run_child(setting: str, busy: bool, steps: int) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "RECON_THREADS")}
    if setting != "default":
        key, value = setting.split("=")
        env[key] = value
    spinner = subprocess.Popen([sys.executable, "-c", BUSY]) if busy else None
    try:
        out = subprocess.run([sys.executable, __file__, "--child", "--steps", str(steps)], env=env,
                             check=True, capture_output=True, text=True, cwd=REPO).stdout
    finally:
        if spinner is not None:
            spinner.kill()
            spinner.wait()
    return json.loads(out.strip().splitlines()[-1])


def _mean_std(xs: list[float]) -> str:
    return f"{statistics.mean(xs):.1f} +- {statistics.stdev(xs) if len(xs) > 1 else 0.0:.1f}"


def side_by_side(args) -> None:
    envs = args.envs.split(",")
    results = {(e, b): [] for e in envs for b in (False, True)}
    print(f"cpus {len(os.sched_getaffinity(0))}, load {os.getloadavg()[0]:.2f}, torch {torch.__version__}, "
          f"demo scene, {args.steps} steps x {args.runs} runs", flush=True)
    for run in range(args.runs):
        for busy in (False, True):
            for e in envs:
                r = run_child(e, busy, args.steps)
                results[(e, busy)].append(r)
                print(json.dumps({"run": run, "setting": e, "busy": busy, **r}), flush=True)
    print("\n| setting | alone it/s | CPU ms/step | threads | beside busy it/s | CPU ms/step | threads "
          "| busy / alone |\n|---|---|---|---|---|---|---|---|")
    for e in envs:
        cells = []
        for busy in (False, True):
            rs = results[(e, busy)]
            cells += [_mean_std([r[k] for r in rs]) for k in ("its", "cpu_ms")]
            cells.append(f"{statistics.mean(r['threads'] for r in rs):.2f}")
        its = [statistics.mean(r["its"] for r in results[(e, busy)]) for busy in (False, True)]
        print(f"| {e} | {' | '.join(cells)} | {its[1] / its[0]:.2f}x |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=None, help="measured steps (30 per primitive, 200 side by side)")
    ap.add_argument("--dtu", default=str(REPO.parent / "shared/data/dtu/scan24"))
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--primitives", default="gaussian,triangle,convex")
    ap.add_argument("--side-by-side", action="store_true", help="alone vs beside a busy process")
    ap.add_argument("--runs", type=int, default=3, help="side by side: runs per setting")
    ap.add_argument("--envs", default=SETTINGS, help="side by side: thread settings, 'default' or VAR=VALUE")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args.steps)
    elif args.side_by_side:
        args.steps = args.steps or 200
        side_by_side(args)
    else:
        args.steps = args.steps or 30
        per_primitive(args)


if __name__ == "__main__":
    main()
