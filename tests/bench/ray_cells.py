"""Cell runners for the Ray executor tests, importable by Ray's worker processes.

Each fails the first attempt of a cell in its own way, then runs the real cell; a marker file in
the benchmark's ``cells/`` folder remembers the first attempt across worker processes.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from recon.bench.executors import CellJob, run_cell


def _first_attempt(job: CellJob) -> bool:
    marker = Path(job.run_dir).parent / f".attempted-{job.id}"
    if marker.exists():
        return False
    marker.touch()
    return True


def flaky_cell(job: CellJob) -> dict[str, Any]:
    """Synthetic-scene cells fail their first attempt: seed 0 raises, seed 1's worker process dies.
    Other cells run as they are."""
    if job.labels["scene"] == "synthetic" and _first_attempt(job):
        if job.labels["seed"] == 0:
            raise RuntimeError("injected failure")
        os._exit(3)
    return run_cell(job)
