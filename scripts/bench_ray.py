"""The cost of running a benchmark matrix through Ray instead of the local process pool.

    OMP_NUM_THREADS=1 python scripts/bench_ray.py [--matrix smoke] [--jobs 2] [--noop-cells 8] [--out DIR]

Measures, back to back on this machine:

1. ``recon bench MATRIX --jobs N`` (local executor) and the same with ``--executor ray`` (a local
   Ray instance started and stopped by the run): wall and CPU seconds of the whole command (the
   processes reaped: driver and pool workers, or driver, GCS and raylet; Ray's workers are the
   raylet's children and are not counted), the sum of the cells' own CPU time (``cpu_seconds`` of
   each record, both executors), each in a fresh ``--out`` folder;
2. Ray's own costs: starting a local instance (``ray.init``) and running no-op cells through
   :class:`~recon.bench.ray_executor.RayExecutor` (a fresh worker process per cell, as real cells
   get), so per-cell overhead = (wall of K no-op cells x CPUs per cell / CPUs) / K, and the CPU a
   fresh worker spends before its cell starts;
3. whether both executors gave the same metrics per cell.

Prints one JSON object (also ``OUT/bench_ray.json``).
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from recon.bench.executors import CellJob, base_record


def noop_cell(job: CellJob) -> dict[str, Any]:
    """A cell that does nothing: what Ray costs around a cell. Its worker process is fresh (one
    cell per worker), so the worker's own CPU time so far is the start-up cost of a cell."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return {**base_record(job), "status": "done", "worker_cpu_s": usage.ru_utime + usage.ru_stime}


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed_bench(matrix: str, jobs: int, out: Path, extra: list[str]) -> dict[str, Any]:
    """Runs ``recon bench`` in a child process; its wall and CPU seconds and metrics per cell."""
    cmd = [shutil.which("recon") or "recon", "bench", matrix, "--jobs", str(jobs), "--out", str(out), *extra]
    cpu0, wall0 = _children_cpu(), time.perf_counter()
    proc = subprocess.run(cmd, check=False, capture_output=True, text=True)
    wall, cpu = time.perf_counter() - wall0, _children_cpu() - cpu0
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
    records = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    return {
        "command": " ".join(["recon", *cmd[1:]]),
        "wall_s": round(wall, 2),
        "cpu_s": round(cpu, 2),
        "cells": len(records),
        "cell_wall_s": [round(r["wall_seconds"], 2) for r in records],
        "cells_cpu_s": round(sum(r["cpu_seconds"] for r in records), 2),  # each cell's own process time
        "psnr": {_label(r): r["metrics"]["psnr"] for r in records},
    }


def _label(record: dict[str, Any]) -> str:
    """scene/primitive/setting/seed: cell ids change with any config field (recon version)."""
    return "/".join(str(record[k]) for k in ("scene", "primitive", "setting", "seed"))


def ray_overhead(cells: int, cpus: int) -> dict[str, Any]:
    """``ray.init`` of a local instance and ``cells`` no-op cells (1 CPU each) through RayExecutor."""
    import ray

    from recon.bench.ray_executor import RayExecutor

    cpu0, wall0 = time.process_time(), time.perf_counter()
    ray.init(num_cpus=cpus, include_dashboard=False, log_to_driver=False, logging_level="WARNING")
    init_s = time.perf_counter() - wall0
    jobs = [CellJob(f"noop-{i}", f"/tmp/noop-{i}", {"device": "cpu"}, {"seed": i}, 1) for i in range(cells)]
    executor = RayExecutor(jobs=cpus, runner=noop_cell)
    wall1 = time.perf_counter()
    done = list(executor.run(jobs))
    tasks_s = time.perf_counter() - wall1
    ray.shutdown()
    assert len(done) == cells and all(r["status"] == "done" for r in done)
    worker_cpu = sorted(r["worker_cpu_s"] for r in done)
    return {
        "ray_init_s": round(init_s, 2),
        "noop_cells": cells,
        "noop_cells_wall_s": round(tasks_s, 2),
        "per_cell_overhead_s": round(tasks_s * min(cpus, cells) / cells, 2),
        "driver_cpu_s": round(time.process_time() - cpu0, 2),
        "worker_start_cpu_s_median": round(worker_cpu[len(worker_cpu) // 2], 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--matrix", default="smoke")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--noop-cells", type=int, default=8)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    out = args.out or Path(tempfile.mkdtemp(prefix="bench_ray-"))
    out.mkdir(parents=True, exist_ok=True)
    local = timed_bench(args.matrix, args.jobs, out / "local", [])
    via_ray = timed_bench(args.matrix, args.jobs, out / "ray", ["--executor", "ray"])
    cpu_before = _children_cpu()
    overhead = ray_overhead(args.noop_cells, args.jobs)
    # Ray's GCS and raylet are this process's children, reaped at ray.shutdown
    overhead["cpu_s_with_ray_processes"] = round(overhead["driver_cpu_s"] + _children_cpu() - cpu_before, 2)
    same = {k: via_ray["psnr"].get(k) == v for k, v in local["psnr"].items()}
    result = {
        "local": local,
        "ray": via_ray,
        "ray_minus_local_wall_s": round(via_ray["wall_s"] - local["wall_s"], 2),
        "ray_minus_local_per_cell_s": round((via_ray["wall_s"] - local["wall_s"]) / max(local["cells"], 1), 2),
        "ray_minus_local_cpu_s": round(via_ray["cpu_s"] - local["cpu_s"], 2),
        "same_psnr_per_cell": all(same.values()),
        "noop": overhead,
    }
    (out / "bench_ray.json").write_text(json.dumps(result, indent=1))
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
