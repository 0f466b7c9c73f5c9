"""``recon bench MATRIX.yaml``: train and evaluate every cell of a benchmark matrix, then report.

Layout of ``BENCH_DIR`` (default ``runs/bench/<name>``)::

    BENCH_DIR/matrix.yaml          copy of the matrix file of the last start
    BENCH_DIR/cells/<cell-id>/     an ordinary run folder (recon eval / view / render work on it)
                   .../cell.json   the cell's record once finished
    BENCH_DIR/results.jsonl        one record per finished or failed cell, in matrix order
    BENCH_DIR/report.md            per-scene tables (mean +- std over seeds) and the ranking
    BENCH_DIR/report.html          the same, self-contained, with image grids and training curves

Starting it again skips finished cells and resumes interrupted ones (see
:mod:`recon.bench.executors`); ``--only`` and ``--dry-run`` never touch finished cells.
"""

from __future__ import annotations

import shlex
import sys
from dataclasses import dataclass
from fnmatch import fnmatch
from pathlib import Path
from typing import Literal

import tyro

from recon.bench.executors import CellJob, cell_state, make_executor, read_record
from recon.bench.html import render_html
from recon.bench.matrix import DATASETS_GUIDE, BenchSpec, Cell, expand, load_bench
from recon.bench.report import render_markdown, write_results
from recon.errors import ConfigError


@dataclass
class BenchArgs:
    """Run a benchmark matrix: recon bench configs/bench/smoke.yaml --jobs 2."""

    config: tyro.conf.Positional[str]
    """The matrix: a YAML file, or the name of a shipped one (smoke, dtu-3view, llff-3view, ...)."""
    out: str | None = None
    """Benchmark folder (default: runs/bench/<matrix name>)."""
    dry_run: bool = False
    """List the cells and their state (done, resume, new, missing) without running anything."""
    only: str | None = None
    """Run only the cells whose id matches this glob, e.g. '*triangle*' or 'synthetic-gaussian-*'."""
    jobs: int = 1
    """Cells run at once; each gets cores // jobs CPU threads."""
    executor: Literal["local", "ray"] = "local"
    """Where cells run: local (this machine; a process pool when --jobs > 1) or ray (one Ray task per
    cell, retried once; a local Ray instance, or the cluster at --address; pip install 'recon[cluster]')."""
    address: str | None = None
    """With --executor ray: the Ray cluster to join (HOST:PORT, ray://HOST:PORT or auto)."""


def _job(cell: Cell, out: Path, threads: int) -> CellJob:
    labels = {"scene": cell.scene.name, "primitive": cell.primitive, "setting": cell.setting, "seed": cell.seed}
    return CellJob(cell.id, str(out / "cells" / cell.id), cell.config.to_dict(), labels, threads)


def missing_scenes(cells: list[Cell], guide: str = DATASETS_GUIDE) -> list[str]:
    """One line per scene that is not on this machine, with the number of cells it skips and the
    page (``guide``) that says how to obtain it."""
    counts: dict[tuple[str, str], int] = {}
    for cell in cells:
        if not cell.available:
            key = (cell.scene.name, cell.scene.path)
            counts[key] = counts.get(key, 0) + 1
    return [
        f"scene {name}: {path} not found, {n} cell{'s' if n > 1 else ''} skipped (see {guide} for how to obtain it, or fix its path in the matrix)"
        for (name, path), n in counts.items()
    ]


def _say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def bench_main(argv: list[str], prog: str = "recon bench") -> int:
    args = tyro.cli(BenchArgs, args=list(argv), prog=prog)
    spec = load_bench(args.config)
    matrix = expand(spec)
    cells = [c for c in matrix if fnmatch(c.id, args.only)] if args.only else matrix
    if not cells:
        raise ConfigError(
            f"--only {args.only!r} matches no cell",
            path=spec.source,
            hint="recon bench MATRIX --dry-run lists the cell ids",
        )
    out = Path(args.out or f"runs/bench/{spec.name}")
    skipped = missing_scenes(cells, spec.datasets)
    for line in skipped:
        _say(line)
    ready = [c for c in cells if c.available]
    states = {c.id: cell_state(out / "cells" / c.id) for c in ready}
    if args.dry_run:
        for cell in cells:
            print(f"{cell.id:<56} {states.get(cell.id, 'missing')}")
        return 0
    executor = make_executor(args.executor, args.jobs, address=args.address)
    pending = [c for c in ready if states[c.id] != "done"]
    pending_ids = {c.id for c in pending}
    threads = executor.threads_per_job(len(pending))
    _say(
        f"bench {spec.name}: {len(ready)} cells, {len(ready) - len(pending)} done, {len(pending)} to run "
        f"({min(args.jobs, max(len(pending), 1))} at a time, {threads} thread(s) each) in {out}"
    )
    (out / "cells").mkdir(parents=True, exist_ok=True)
    if spec.source is not None:
        (out / "matrix.yaml").write_text(spec.source.read_text())
    # the report covers the whole matrix: finished cells outside --only are read back too
    records = {
        c.id: read_record(_job(c, out, threads))
        for c in matrix
        if c.available and cell_state(out / "cells" / c.id) == "done" and c.id not in pending_ids
    }
    for record in executor.run([_job(c, out, threads) for c in pending]):
        records[record["id"]] = record
        write_results(out / "results.jsonl", _ordered(matrix, records))  # whole, after every cell
        if record["status"] == "done":
            m = record["metrics"]
            _say(
                f"  done   {record['id']}: PSNR {m['psnr']:.2f} dB, SSIM {m['ssim']:.4f}, "
                f"{record['train_seconds']:.1f} s train{' (resumed)' if record.get('resumed') else ''}"
            )
        else:
            _say(f"  FAILED {record['id']}: {record['error']}")
    return _write_reports(
        out,
        spec,
        matrix,
        records,
        command=shlex.join(["recon", "bench", args.config, *(["--out", args.out] if args.out else [])]),
    )


def _ordered(matrix: list[Cell], records: dict[str, dict]) -> list[dict]:
    return [records[c.id] for c in matrix if c.id in records]


def _write_reports(out: Path, spec: BenchSpec, matrix: list[Cell], records: dict[str, dict], command: str) -> int:
    """results.jsonl, report.md and report.html over every recorded cell of the matrix; the exit status."""
    ordered = _ordered(matrix, records)
    write_results(out / "results.jsonl", ordered)
    name, skipped = spec.name, missing_scenes(matrix, spec.datasets)
    for path, render in ((out / "report.md", render_markdown), (out / "report.html", render_html)):
        path.write_text(render(name, ordered, skipped, command=command, total=len(matrix)))
    failed = sum(r["status"] != "done" for r in ordered)
    _say(
        f"bench {name}: {len(ordered) - failed} of {len(matrix)} cells done, {failed} failed, "
        f"{len(skipped)} scene(s) missing; report in {out / 'report.md'}"
    )
    return 1 if failed else 0
