"""Running benchmark cells: one cell = one ordinary run folder, trained and evaluated.

:func:`run_cell` is the whole job of one cell and needs nothing but its :class:`CellJob` (plain,
picklable data), so any executor can ship it elsewhere: :class:`LocalExecutor` runs cells in this
process or in a process pool; :class:`~recon.bench.ray_executor.RayExecutor` (one Ray task per
cell, retried once) implements the same :class:`Executor` protocol. A cell's state is read from its folder alone
(:func:`cell_state`), so a driver that died can simply be started again:

* ``done``: ``eval/metrics.json`` exists; the cell is not run again;
* ``resume``: a run folder with a checkpoint but no metrics; training resumes from the newest
  checkpoint (``recon train --resume``), then the run is evaluated;
* ``new``: nothing usable yet (a folder a crash left before its first checkpoint is cleared).
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import socket
import time
import traceback
from collections.abc import Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Any, Protocol

from recon.errors import ConfigError, ReconError

CELL_RECORD = "cell.json"  # RUN/cell.json: the bench record of a finished cell
_cells_in_process = 0  # cells this process has run: peak RSS is per cell only for the first


@dataclass(frozen=True)
class CellJob:
    """What a worker needs to run one cell.

    Attributes:
        id: the cell id (folder name under ``BENCH_DIR/cells``).
        run_dir: the cell's run folder.
        config: the resolved training config (``TrainConfig.to_dict()``).
        labels: scene, primitive, setting and seed, copied into the record.
        threads: CPU threads of this job (torch and the kernels).
    """

    id: str
    run_dir: str
    config: dict[str, Any]
    labels: dict[str, Any]
    threads: int = 1


def cell_state(run_dir: Path) -> str:
    """``done``, ``resume`` or ``new`` (module docstring)."""
    from recon.run import checkpoint_steps

    if (run_dir / "eval" / "metrics.json").is_file():
        return "done"
    if (run_dir / "config.json").is_file() and checkpoint_steps(run_dir / "checkpoints"):
        return "resume"
    return "new"


def _versions() -> dict[str, str]:
    import numpy
    import torch

    import recon

    return {
        "recon": recon.__version__,
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "python": platform.python_version(),
    }


def machine() -> dict[str, Any]:
    """Where a cell ran: host, OS, CPU model and count, GPU (if torch sees one)."""
    import torch

    cpu = platform.processor()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), cpu)
    except OSError:
        pass
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return {"host": socket.gethostname(), "os": platform.platform(), "cpu": cpu, "cpus": os.cpu_count(), "gpu": gpu}


def set_threads(threads: int) -> None:
    """Fixes this process's CPU threads (``RECON_THREADS`` for the kernels, torch's intra-op pool)."""
    import torch

    from recon.ops.threads import ENV

    os.environ[ENV] = str(threads)
    torch.set_num_threads(threads)


def _reset_gpu_peak() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()


def _peak_rss_mb() -> float | None:
    """Peak resident memory of this process in MB: the cell's own when it is the first cell the
    process ran (pool workers run one cell each), else None (an earlier cell may have set it)."""
    if _cells_in_process != 1:
        return None
    try:
        import resource
    except ImportError:  # Windows has no resource module
        return None
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def _clear_unstarted(run_dir: Path) -> None:
    """Removes a cell folder that a crash left before its first checkpoint (only one recon made)."""
    from recon.run import is_marked_run

    if run_dir.exists() and any(run_dir.iterdir()):
        if not is_marked_run(run_dir):
            raise ConfigError(
                "a benchmark cell folder holds files recon did not write",
                path=run_dir,
                hint="move it away; recon bench rebuilds the cell",
            )
        shutil.rmtree(run_dir)


def base_record(job: CellJob) -> dict[str, Any]:
    """The fields every record of ``job`` has, finished or failed: id, labels, run folder, config."""
    return {"id": job.id, **job.labels, "run_dir": job.run_dir, "config": job.config}


def write_atomic(path: Path, text: str) -> None:
    """Writes ``path`` whole or not at all (a temporary file beside it, then a rename), so a
    process killed while writing never leaves half a file for the next start to read."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def run_cell(job: CellJob) -> dict[str, Any]:
    """Trains (or resumes) and evaluates one cell; returns its record (also ``RUN/cell.json``).

    A failure of the cell is caught and returned as a record with ``status: failed`` and the
    error, so one bad cell never stops the others.
    """
    run_dir = Path(job.run_dir)
    record = base_record(job)
    state = cell_state(run_dir)
    if state == "done":
        return read_record(job)
    global _cells_in_process
    _cells_in_process += 1
    set_threads(job.threads)
    _reset_gpu_peak()
    wall0, cpu0 = time.perf_counter(), time.process_time()
    try:
        result = _train_and_evaluate(job, run_dir, resume=state == "resume")
    except Exception as err:  # noqa: BLE001 - reported per cell, the matrix goes on
        detail = str(err) if isinstance(err, ReconError) else "".join(traceback.format_exception_only(err)).strip()
        return {**record, "status": "failed", "error": detail}
    record.update(
        status="done",
        resumed=state == "resume",
        **result,
        wall_seconds=time.perf_counter() - wall0,
        cpu_seconds=time.process_time() - cpu0,
        peak_rss_mb=_peak_rss_mb(),
        threads=job.threads,
        versions=_versions(),
        machine=machine(),
    )
    write_atomic(run_dir / CELL_RECORD, json.dumps(record, indent=1))
    return record


def _train_and_evaluate(job: CellJob, run_dir: Path, resume: bool) -> dict[str, Any]:
    """``recon train`` (or ``--resume``) then ``recon eval`` (metrics and side-by-side images) on the cell's folder."""
    from recon.bench.html import write_depth_preview
    from recon.config import config_from_dict, load_config
    from recon.run import prepare_out, removed_if_start_fails
    from recon.train.cli import _evaluate, run_training

    if resume:
        config = load_config(run_dir / "config.json")
        _, result = run_training(config, run_dir, resume=True, quiet=True)
    else:
        _clear_unstarted(run_dir)
        config = config_from_dict(job.config)
        folder = prepare_out(run_dir)
        with removed_if_start_fails(folder):
            _, result = run_training(config, run_dir, quiet=True)
    if result.interrupted:  # Ctrl-C: the checkpoint is written; stop the whole benchmark, not just this cell
        raise KeyboardInterrupt(f"{run_dir}: stopped at step {result.step}; run recon bench again to resume")
    metrics = _evaluate(run_dir, images=True).to_dict()
    write_depth_preview(run_dir)
    import torch

    gpu = torch.cuda.max_memory_allocated() / 2**20 if torch.cuda.is_available() else None
    return {
        "metrics": metrics,
        "steps": result.step,
        "num_primitives": result.num_primitives,
        "train_seconds": result.seconds,
        "peak_gpu_mb": gpu,
    }


def read_record(job: CellJob) -> dict[str, Any]:
    """The record of a finished cell: its ``cell.json``, or one rebuilt from ``eval/metrics.json``
    when the cell was finished by hand (``recon train`` + ``recon eval``; times then unknown)."""
    run_dir = Path(job.run_dir)
    path = run_dir / CELL_RECORD
    if path.is_file():
        return {**json.loads(path.read_text()), "skipped": True}
    metrics = json.loads((run_dir / "eval" / "metrics.json").read_text())
    return {**base_record(job), "status": "done", "metrics": metrics, "skipped": True}


class Executor(Protocol):
    """Runs cell jobs and yields their records as they finish (in any order).

    A job never raises for a bad cell (:func:`run_cell` returns a ``failed`` record), so an
    executor only handles its own failures: a cluster executor retries a job whose worker died
    (its folder then resumes from the last checkpoint) and gives each job the resources its
    config asks for (``job.config["device"]``, ``job.threads``).
    """

    def run(self, jobs: list[CellJob]) -> Iterator[dict[str, Any]]: ...

    def threads_per_job(self, jobs: int) -> int: ...


def available_cores() -> int:
    """CPU cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def omp_threads() -> int | None:
    """``OMP_NUM_THREADS`` when set to a positive integer: the most threads a job may take."""
    omp = os.environ.get("OMP_NUM_THREADS", "")
    return int(omp) if omp.isdigit() and int(omp) > 0 else None


def _worker_init(threads: int) -> None:
    set_threads(threads)


class LocalExecutor:
    """Cells on this machine: in this process (``jobs=1``) or in a pool of ``jobs`` processes.

    Each job gets ``cores // jobs`` threads (at least one), so jobs x threads <= cores, and no
    more than ``max_threads`` (default: ``OMP_NUM_THREADS`` when set).
    """

    def __init__(self, jobs: int = 1, cores: int | None = None, max_threads: int | None = None):
        if jobs < 1:
            raise ConfigError(f"--jobs {jobs}: need at least one job", hint="pass --jobs N with N >= 1")
        self.jobs = jobs
        self.cores = cores or available_cores()
        self.max_threads = max_threads or omp_threads()

    def threads_per_job(self, jobs: int) -> int:
        """Threads of each job when ``jobs`` cells are to run."""
        n = max(1, self.cores // max(1, min(self.jobs, jobs)))
        return min(n, self.max_threads) if self.max_threads else n

    def run(self, jobs: list[CellJob]) -> Iterator[dict[str, Any]]:
        if self.jobs == 1 or len(jobs) <= 1:
            yield from _sequential(jobs)
            return
        workers = min(self.jobs, len(jobs))
        # spawn, not fork: a forked child inherits torch's thread pools mid-state; one cell per
        # worker process: a fresh start for each cell and its own peak memory (~2 s of imports)
        with ProcessPoolExecutor(
            workers,
            mp_context=get_context("spawn"),
            initializer=_worker_init,
            initargs=(jobs[0].threads,),
            max_tasks_per_child=1,
        ) as pool:
            futures = [pool.submit(run_cell, job) for job in jobs]
            for future in as_completed(futures):
                yield future.result()


EXECUTORS = ("local", "ray")


def make_executor(name: str, jobs: int = 1, address: str | None = None) -> Executor:
    """The executor ``--executor NAME`` asks for; ``address``: the Ray cluster to join (``ray`` only).

    Raises:
        ConfigError: an unknown name, an address for the local executor, Ray not installed or its
            cluster out of reach.
    """
    if name == "ray":
        from recon.bench.ray_executor import RayExecutor

        return RayExecutor(jobs, address=address)
    if address is not None:
        raise ConfigError(f"--address {address}: only --executor ray joins a cluster", hint="add --executor ray")
    if name == "local":
        return LocalExecutor(jobs)
    raise ConfigError(f"--executor {name!r} is not available", hint=f"use one of {', '.join(EXECUTORS)}")


def _sequential(jobs: Iterable[CellJob]) -> Iterator[dict[str, Any]]:
    """Cells in this process; its thread settings are restored afterwards."""
    import torch

    from recon.ops.threads import ENV

    before, env = torch.get_num_threads(), os.environ.get(ENV)
    try:
        for job in jobs:
            yield run_cell(job)
    finally:
        torch.set_num_threads(before)
        if env is None:
            os.environ.pop(ENV, None)
        else:
            os.environ[ENV] = env
