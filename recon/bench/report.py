"""Benchmark reports: ``results.jsonl`` (one record per cell) and ``report.md``.

Every figure is a mean +- sample standard deviation over the seeds of a (scene, primitive,
setting) group; the ranking orders the (primitive, setting) pairs by their mean rank over the
scenes (rank 1 = highest mean PSNR of that scene), so one easy scene cannot dominate it.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from recon.bench.executors import write_atomic

# record key -> (column title, format); metrics come from record["metrics"]
COLUMNS: dict[str, tuple[str, str]] = {
    "psnr": ("PSNR", "{:.2f}"),
    "ssim": ("SSIM", "{:.4f}"),
    "lpips": ("LPIPS", "{:.4f}"),
    "train_seconds": ("train s", "{:.1f}"),
    "cpu_seconds": ("CPU s", "{:.1f}"),
    "num_primitives": ("primitives", "{:.0f}"),
    "peak_rss_mb": ("peak RSS MB", "{:.0f}"),
    "peak_gpu_mb": ("peak GPU MB", "{:.0f}"),
}
METRICS = ("psnr", "ssim", "lpips")


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (n - 1 in the denominator; 0 for a single value).

    Raises:
        ValueError: no values.
    """
    if not values:
        raise ValueError("mean_std of no values")
    n = len(values)
    mean = math.fsum(values) / n
    if n == 1:
        return mean, 0.0
    return mean, math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (n - 1))


def format_mean_std(values: Sequence[float], fmt: str) -> str:
    """``"m +- s"`` (``"m"`` alone for one value, ``"n/a"`` for none)."""
    if not values:
        return "n/a"
    m, s = mean_std(values)
    return fmt.format(m) if len(values) == 1 else f"{fmt.format(m)} +- {fmt.format(s)}"


def _value(record: dict[str, Any], key: str) -> float | None:
    value = record.get("metrics", {}).get(key) if key in METRICS else record.get(key)
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else float(value)


@dataclass
class Group:
    """The finished cells of one (scene, primitive, setting), one per seed."""

    scene: str
    primitive: str
    setting: str
    records: list[dict[str, Any]]

    def values(self, key: str) -> list[float]:
        """The non-missing values of ``key`` over the seeds (all or nothing: a partial set would
        average different seeds than the other columns)."""
        vals = [_value(r, key) for r in self.records]
        return [v for v in vals if v is not None] if all(v is not None for v in vals) else []

    @property
    def seeds(self) -> list[int]:
        return sorted(r["seed"] for r in self.records)


def group_records(records: Sequence[dict[str, Any]]) -> list[Group]:
    """Finished records grouped by (scene, primitive, setting), in first-seen order."""
    groups: dict[tuple[str, str, str], Group] = {}
    for r in records:
        if r.get("status") != "done":
            continue
        key = (r["scene"], r["primitive"], r["setting"])
        groups.setdefault(key, Group(*key, records=[])).records.append(r)
    return list(groups.values())


def ranking(groups: Sequence[Group], key: str = "psnr") -> list[tuple[str, float, float, int]]:
    """(primitive/setting, mean rank over scenes, mean of ``key`` over scenes, scenes) rows, best first.

    Within a scene the pairs are ranked by the mean of ``key`` over seeds (higher is better);
    ties share the better rank.
    """
    by_scene: dict[str, list[tuple[str, float]]] = defaultdict(list)
    for g in groups:
        vals = g.values(key)
        if vals:
            by_scene[g.scene].append((f"{g.primitive}/{g.setting}", mean_std(vals)[0]))
    ranks: dict[str, list[int]] = defaultdict(list)
    means: dict[str, list[float]] = defaultdict(list)
    for entries in by_scene.values():
        for name, value in entries:
            ranks[name].append(1 + sum(other > value for _, other in entries))
            means[name].append(value)
    rows = [(name, math.fsum(r) / len(r), math.fsum(means[name]) / len(r), len(r)) for name, r in ranks.items()]
    return sorted(rows, key=lambda row: (row[1], -row[2]))


Table = tuple[list[str], list[list[str]]]  # header, rows of cell text


def scene_table(groups: Sequence[Group], scene: str) -> Table:
    """The per-scene table: one row per (primitive, setting), mean +- std over seeds per column.

    Columns other than the metrics that no group of the scene has (peak GPU memory on a CPU) are left out.
    """
    mine = [g for g in groups if g.scene == scene]
    keys = [k for k in COLUMNS if k in METRICS or any(g.values(k) for g in mine)]
    header = ["primitive", "setting", "seeds", *(COLUMNS[k][0] for k in keys)]
    rows = [
        [
            g.primitive,
            g.setting,
            ",".join(map(str, g.seeds)),
            *(format_mean_std(g.values(k), COLUMNS[k][1]) for k in keys),
        ]
        for g in mine
    ]
    return header, rows


def ranking_table(groups: Sequence[Group]) -> Table:
    """The ranking as a table (:func:`ranking`); no rows when nothing finished."""
    rows = [
        [str(i + 1), name, f"{rank:.2f}", f"{psnr:.2f}", str(n)]
        for i, (name, rank, psnr, n) in enumerate(ranking(groups))
    ]
    return ["#", "primitive/setting", "mean rank", "mean PSNR", "scenes"], rows


def summary_line(records: Sequence[dict[str, Any]], total: int | None) -> str:
    done = sum(r.get("status") == "done" for r in records)
    return f"{done} of {total or len(records)} cells finished; figures are mean +- sample std over seeds."


def _markdown_table(table: Table) -> list[str]:
    header, rows = table
    return [
        "| " + " | ".join(header) + " |",
        "|" + "|".join("---" for _ in header) + "|",
        *("| " + " | ".join(row) + " |" for row in rows),
    ]


def render_markdown(
    name: str,
    records: Sequence[dict[str, Any]],
    skipped: Sequence[str] = (),
    command: str = "",
    total: int | None = None,
) -> str:
    """The report: per-scene tables (mean +- std over seeds), the ranking, failed and skipped cells.

    Args:
        name: the matrix name.
        records: the cells' records (finished and failed).
        skipped: one line per scene that was not on this machine.
        command: the command that regenerates the report.
        total: cells in the matrix (default: the records).
    """
    groups = group_records(records)
    lines = [f"# Benchmark {name}", ""]
    if command:
        lines += [f"Regenerate: `{command}`", ""]
    lines += [summary_line(records, total), ""]
    for scene in dict.fromkeys(g.scene for g in groups):
        lines += [f"## {scene}", "", *_markdown_table(scene_table(groups, scene)), ""]
    ranked = ranking_table(groups)
    if ranked[1]:
        lines += ["## Ranking (mean PSNR rank over scenes)", "", *_markdown_table(ranked), ""]
    failed = [r for r in records if r.get("status") == "failed"]
    if failed:
        lines += ["## Failed cells", "", *(f"- `{r['id']}`: {r.get('error', '?')}" for r in failed), ""]
    if skipped:
        lines += ["## Skipped (scene not on this machine)", "", *(f"- {line}" for line in skipped), ""]
    return "\n".join(lines)


def write_results(path: Path, records: Sequence[dict[str, Any]]) -> None:
    """One JSON object per line, per cell, in matrix order; the file is replaced whole (never half written)."""
    write_atomic(path, "".join(json.dumps({k: v for k, v in r.items() if k != "skipped"}) + "\n" for r in records))


def read_results(path: Path) -> list[dict[str, Any]]:
    """The records of a ``results.jsonl``."""
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]
