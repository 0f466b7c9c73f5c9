"""Thread count of the CPU kernels and of torch's intra-op pool, chosen from the cores that other
processes leave free.

Why (issue #10, measured on a 2-core machine, ``scripts/bench_train.py --side-by-side``): torch
wheels bundle their own ``libgomp.so.1``; the extension links the system one by the same soname,
so in a process that imported torch first (always) only torch's copy is loaded (checked in
``/proc/<pid>/maps``): one OpenMP runtime and one thread pool, shared by torch's ops and the
kernels. With ``OMP_WAIT_POLICY`` unset, libgomp lets an idle pool thread spin (300k iterations,
its default spin count) before it sleeps, and a team's threads spin at every barrier. Alone on the
machine that costs nothing; beside other busy processes the spinning pool thread and those
processes take turns on the cores, the other thread spins at each barrier until the descheduled
one runs again, and a demo train step burnt 120-270 ms of CPU instead of 13-20 ms (1.9-3.5 it/s
instead of 18-37; 2-core machine at load 5-7). Most of it is torch's own parallel ops: with only
the kernels on one thread a step still burnt 120-160 ms. ``OMP_WAIT_POLICY=passive`` or
``GOMP_SPINCOUNT=1000`` exported before the start cure it too, but libgomp reads them once, when
torch loads it, so a library cannot set them.

The policy here sidesteps the barriers instead: it samples ``/proc/stat`` (busy time of the CPUs
this process may run on) and the process's own CPU time at most every ``interval`` seconds,
counts the cores the *other* processes kept busy, and uses one thread per core that is at least
three quarters free (never fewer than one, never more than the thread count torch had when the
policy first saw the calling thread). With a single thread there is no team, no barrier and no
spinning. Each parallel region of the kernels names its team size (``num_threads`` clause, see
``cuda/src/cpu_threads.cpp``) and runs short loops on the caller alone. Results do not depend on
the thread count.

``RECON_THREADS=<n>`` fixes the count (no sampling, at most torch's count); unset or ``auto``: the
policy above.
"""

from __future__ import annotations

import math
import os
import threading
import time
from collections.abc import Callable

import torch

from recon.errors import ConfigError

ENV = "RECON_THREADS"


def threads_for_free_cores(n_cpus: int, others: float, max_threads: int) -> int:
    """Threads to use when other processes keep ``others`` of ``n_cpus`` cores busy.

    A core counts as free when at most a quarter of it is taken: a team thread that shares its
    core with another process stalls every barrier of the team.
    """
    return max(1, min(max_threads, math.floor(n_cpus - others + 0.25)))


def read_busy_seconds(cpus: set[int], path: str = "/proc/stat") -> float | None:
    """Busy time since boot of the CPUs ``cpus``, in seconds, from ``/proc/stat``.

    Busy is everything but idle and iowait (steal counts: a hypervisor's other guests took it).
    Returns None when the file is missing or lists none of the CPUs.
    """
    try:
        with open(path) as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    ticks, seen = 0, False
    for line in lines:
        name, *fields = line.split()
        if not name.startswith("cpu") or name == "cpu" or int(name[3:]) not in cpus:
            continue
        user, nice, system, _idle, _iowait, irq, softirq, steal = (int(x) for x in fields[:8])
        ticks += user + nice + system + irq + softirq + steal
        seen = True
    return ticks / os.sysconf("SC_CLK_TCK") if seen else None


def _allowed_cpus() -> set[int]:
    if hasattr(os, "sched_getaffinity"):  # Linux
        return os.sched_getaffinity(0)
    return set(range(os.cpu_count() or 1))  # elsewhere there is no /proc/stat to sample either


class ThreadPolicy:
    """Picks the thread count from the recent load of the other processes (module docstring).

    Args:
        max_threads: upper bound (default: the CPUs this process may run on).
        interval: seconds between two samples; the count changes at most that often.
        fixed: a fixed count instead of sampling (``RECON_THREADS``).
        read_busy: busy seconds of a CPU set (``read_busy_seconds``), None when unknown.
        own_cpu: this process's CPU seconds.
        clock: monotonic seconds.
        cpus: the CPUs to watch (default: those this process may run on).
    """

    def __init__(
        self,
        max_threads: int | None = None,
        interval: float = 0.5,
        fixed: int | None = None,
        read_busy: Callable[[set[int]], float | None] = read_busy_seconds,
        own_cpu: Callable[[], float] = time.process_time,
        clock: Callable[[], float] = time.monotonic,
        cpus: set[int] | None = None,
    ):
        self.cpus = set(cpus) if cpus is not None else _allowed_cpus()
        self.max_threads = max(1, max_threads or len(self.cpus))
        self.interval, self.fixed = interval, fixed
        self._read_busy, self._own_cpu, self._clock = read_busy, own_cpu, clock
        self._sample = self._take()
        self._count = self.max_threads if fixed is None else max(1, fixed)
        self.others: float | None = None  # cores the other processes kept busy, last interval

    def _take(self) -> tuple[float, float | None, float]:
        return self._clock(), self._read_busy(self.cpus), self._own_cpu()

    def threads(self) -> int:
        """The thread count for the next parallel work (re-sampled when ``interval`` passed)."""
        if self.fixed is not None:
            return self._count
        t0, busy0, own0 = self._sample
        if self._clock() - t0 < self.interval:
            return self._count
        self._sample = t1, busy1, own1 = self._take()
        if busy0 is None or busy1 is None:
            return self._count
        self.others = max(0.0, (busy1 - busy0) - (own1 - own0)) / (t1 - t0)
        self._count = threads_for_free_cores(len(self.cpus), self.others, self.max_threads)
        return self._count


def policy_from_env(max_threads: int | None = None) -> ThreadPolicy:
    """The policy ``RECON_THREADS`` asks for (unset or ``auto``: sampling)."""
    value = os.environ.get(ENV, "auto").strip().lower()
    if value in ("", "auto"):
        return ThreadPolicy(max_threads)
    if not value.isdigit() or int(value) < 1:
        raise ConfigError(f"{ENV}={value!r} is not a thread count", hint="set a positive integer or 'auto'")
    return ThreadPolicy(max_threads, fixed=int(value))


_lock = threading.Lock()
_policy: ThreadPolicy | None = None
_local = threading.local()  # per calling thread: torch's count before the policy, last one set


def apply(ext) -> int:
    """Sets the kernels' (``ext``) and the calling thread's torch thread count from the policy.

    torch's count is per OpenMP thread; a change made by the caller (``torch.set_num_threads``)
    becomes that thread's new upper bound. Returns the count now in force.
    """
    global _policy
    with _lock:
        if _policy is None:
            _policy = policy_from_env(torch.get_num_threads())
        n = _policy.threads()
    current = torch.get_num_threads()
    if getattr(_local, "applied", None) != current:  # first call here, or the caller changed it
        _local.base = current
    n = min(n, _local.base)
    if n != current:
        torch.set_num_threads(n)
    _local.applied = n
    if getattr(ext, "_recon_threads", None) != n:
        ext.set_cpu_threads(n)
        ext._recon_threads = n
    return n
