"""Cells as Ray tasks: ``recon bench MATRIX --executor ray [--address ADDR]`` (extra ``recon[cluster]``).

Each cell is one Ray task running :func:`~recon.bench.executors.run_cell`, the function the local
executor calls, in a fresh worker process (``max_calls=1``: its own threads and peak memory), with
the resources of the cell: ``num_cpus`` = its threads, ``num_gpus`` = 1 for a CUDA config. Records
are yielded as tasks finish (``ray.wait``). A failed attempt is retried once, then reported; the
record says how each attempt failed:

* ``cell raised``: the cell's own code failed (:func:`run_cell` returned a ``failed`` record, or
  the task raised);
* ``worker died``: the process or node running it was lost (killed, out of memory, crash); the
  retry resumes the cell's folder from its last checkpoint.

Without ``--address`` a local Ray instance with this machine's cores is started for the run (and
stopped after it); with one, recon joins that cluster. Every node then needs recon installed and
must see the benchmark folder and the scenes at the same paths as the driver (a shared
filesystem): tasks run in the driver's working folder when it exists on their node. The driver
itself keeps no state: started again after a crash, it skips finished cells and resumes the others
from their folders.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Callable, Iterator
from typing import Any

from recon.bench.executors import CellJob, base_record, omp_threads, run_cell
from recon.errors import ConfigError

INSTALL_HINT = "pip install 'recon[cluster]'"
CONNECT_TIMEOUT_S = 5.0  # a TCP probe before ray.init, which otherwise retries an unreachable address for minutes
CELL_RAISED, WORKER_DIED = "cell raised", "worker died"

Runner = Callable[[CellJob], dict[str, Any]]


def import_ray() -> Any:
    """The ``ray`` module.

    Raises:
        ConfigError: Ray is not installed (the hint names the extra).
    """
    try:
        import ray
    except ImportError:
        raise ConfigError("--executor ray needs Ray, which is not installed", hint=INSTALL_HINT) from None
    return ray


def check_reachable(address: str, timeout: float = CONNECT_TIMEOUT_S) -> None:
    """Checks that a Ray address (``HOST:PORT`` or ``ray://HOST:PORT``; ``auto`` is left to Ray)
    accepts connections.

    Raises:
        ConfigError: a malformed address or nothing listening there, in one line.
    """
    if address == "auto":
        return
    host, _, port = address.split("://", 1)[-1].rpartition(":")
    if not host or not port.isdigit():
        raise ConfigError(
            f"--address {address!r}: expected HOST:PORT, ray://HOST:PORT or auto",
            hint="the address `ray start --head` printed, e.g. 10.0.0.5:6379",
        )
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except OSError as err:
        raise ConfigError(
            f"--address {address}: cannot reach the Ray cluster ({err.strerror or err})",
            hint="start it with `ray start --head`, or check the host and port",
        ) from None


def cell_resources(job: CellJob) -> dict[str, int]:
    """The Ray resources of one cell: its CPU threads, and a GPU when its config trains on CUDA."""
    on_gpu = str(job.config.get("device", "cpu")).startswith("cuda")
    return {"num_cpus": job.threads, "num_gpus": int(on_gpu)}


def _cell_task(runner: Runner, job: CellJob, cwd: str) -> dict[str, Any]:
    """The body of a cell's Ray task: the cell run from the driver's folder (relative paths)."""
    if os.path.isdir(cwd):
        os.chdir(cwd)
    return runner(job)


class RayExecutor:
    """Runs cells as Ray tasks (module docstring); the :class:`~recon.bench.executors.Executor` protocol.

    Args:
        jobs: cells meant to run at once; each asks for ``CPUs // jobs`` threads (CPUs of the Ray
            instance, at most one node's, at most ``OMP_NUM_THREADS`` when set).
        address: the cluster to join; None starts a local instance with this machine's cores.
        retries: further attempts of a failed cell before it is reported.
        runner: what a task runs for a cell (a module-level function; :func:`run_cell`).

    Raises:
        ConfigError: ``jobs < 1``, Ray not installed, or the cluster cannot be reached.
    """

    def __init__(self, jobs: int = 1, address: str | None = None, retries: int = 1, runner: Runner = run_cell):
        if jobs < 1:
            raise ConfigError(f"--jobs {jobs}: need at least one job", hint="pass --jobs N with N >= 1")
        self.jobs, self.address, self.retries, self.runner = jobs, address, retries, runner
        self.ray = import_ray()
        self._started = False  # whether this executor started the Ray instance (and stops it)
        if address is not None and not self.ray.is_initialized():
            check_reachable(address)  # fail before anything runs; Ray itself starts when a cell needs it

    def _connect(self) -> None:
        ray = self.ray
        if ray.is_initialized():
            return
        quiet = {"log_to_driver": False, "logging_level": logging.WARNING}
        if self.address is None:
            from recon.bench.executors import available_cores

            ray.init(num_cpus=available_cores(), include_dashboard=False, **quiet)
        else:
            check_reachable(self.address)
            try:
                ray.init(address=self.address, **quiet)
            except (ConnectionError, RuntimeError, ValueError) as err:
                raise ConfigError(
                    f"--address {self.address}: cannot join the Ray cluster ({str(err).splitlines()[0]})",
                    hint="check the address `ray start --head` printed",
                ) from None
        self._started = True

    def close(self) -> None:
        """Stops the Ray instance if this executor started it (a joined cluster keeps running)."""
        if self._started and self.ray.is_initialized():
            self.ray.shutdown()
        self._started = False

    def threads_per_job(self, jobs: int) -> int:
        """Threads (= Ray CPUs) of each cell when ``jobs`` cells are to run (no Ray start for none)."""
        if jobs < 1:
            return 1
        self._connect()
        cpus = [int(n["Resources"].get("CPU", 0)) for n in self.ray.nodes() if n.get("Alive")]
        n = max(1, sum(cpus) // max(1, min(self.jobs, jobs)))
        n = min(n, max(cpus, default=1) or 1)  # a task runs on one node
        cap = omp_threads()
        return min(n, cap) if cap else n

    def run(self, jobs: list[CellJob]) -> Iterator[dict[str, Any]]:
        """Submits every job, yields records as they finish; failed attempts are retried ``retries`` times."""
        if not jobs:
            return
        ray = self.ray
        self._connect()
        # a fresh worker per cell (its threads, its peak memory); max_retries=0: a worker's death is
        # retried here, like a failure of the cell, and counted
        task = ray.remote(max_calls=1, max_retries=0)(_cell_task)
        cwd = os.getcwd()
        pending: dict[Any, tuple[CellJob, list[dict[str, Any]]]] = {}  # ObjectRef -> (job, failures so far)

        def submit(job: CellJob, failures: list[dict[str, Any]]) -> None:
            options = {**cell_resources(job), "name": f"recon-cell-{job.id}"}
            pending[task.options(**options).remote(self.runner, job, cwd)] = (job, failures)

        try:
            for job in jobs:
                submit(job, [])
            while pending:
                [ref], _ = ray.wait(list(pending), num_returns=1)
                job, failures = pending.pop(ref)
                record, failure = self._outcome(ref, job)
                attempts = len(failures) + 1
                if failure is None:
                    yield {**record, "attempts": attempts, **({"failures": failures} if failures else {})}
                    continue
                failures = [*failures, {"attempt": attempts, **failure}]
                if attempts <= self.retries:
                    submit(job, failures)
                    continue
                yield {
                    **record,
                    "status": "failed",
                    "error": f"{failure['error']} ({failure['kind']}, {attempts} attempts)",
                    "attempts": attempts,
                    "failures": failures,
                }
        finally:
            for ref in pending:  # Ctrl-C or an error of the driver: stop what still runs
                ray.cancel(ref)
            self.close()

    def _outcome(self, ref: Any, job: CellJob) -> tuple[dict[str, Any], dict[str, str] | None]:
        """The record of a finished task and, when the attempt failed, ``{"kind", "error"}``."""
        from ray.exceptions import RayError, RayTaskError

        try:
            record = self.ray.get(ref)
        except RayTaskError as err:  # the cell's code raised past run_cell
            cause = err.cause
            if isinstance(cause, KeyboardInterrupt):  # the cell was interrupted: stop the whole benchmark
                raise KeyboardInterrupt(str(cause)) from None
            return base_record(job), {"kind": CELL_RAISED, "error": f"{type(cause).__name__}: {cause}"}
        except RayError as err:  # the worker or its node died (crash, kill, out of memory)
            return base_record(job), {"kind": WORKER_DIED, "error": str(err).strip().splitlines()[0]}
        if record.get("status") != "done":
            return record, {"kind": CELL_RAISED, "error": record.get("error", "failed")}
        return record, None
