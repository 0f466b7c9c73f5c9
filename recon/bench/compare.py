"""``recon bench compare A B``: the difference of two benchmark result sets, group by group.

Groups (scene, primitive, setting) present in both are compared on one metric: mean over seeds in
A and in B, the difference B - A, and a note from the seed spread. The difference counts as
``significant`` when it exceeds twice its standard error, ``2 * sqrt(sA^2/nA + sB^2/nB)`` with
the sample standard deviations over seeds (about a 95% interval for a normal spread; with 2-3
seeds per side this is a rough guide, not a test). With a single seed on both sides there is no
spread to judge by and the note says so.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import tyro

from recon.bench.report import group_records, mean_std, read_results
from recon.errors import ConfigError

HIGHER_IS_BETTER = {"psnr": True, "ssim": True, "lpips": False}


@dataclass
class CompareArgs:
    """Compare two benchmark runs: recon bench compare runs/bench/a runs/bench/b."""

    a: tyro.conf.Positional[str]
    """The baseline: a benchmark folder or its results.jsonl."""
    b: tyro.conf.Positional[str]
    """The candidate: a benchmark folder or its results.jsonl."""
    metric: Literal["psnr", "ssim", "lpips"] = "psnr"
    """The metric compared."""


@dataclass(frozen=True)
class Difference:
    """One group's comparison (``b - a``); std are sample std over seeds."""

    key: tuple[str, str, str]
    mean_a: float
    std_a: float
    n_a: int
    mean_b: float
    std_b: float
    n_b: int

    @property
    def delta(self) -> float:
        return self.mean_b - self.mean_a

    @property
    def noise(self) -> float | None:
        """Twice the standard error of the difference; None when neither side has a spread."""
        if self.n_a < 2 and self.n_b < 2:
            return None
        return 2 * math.sqrt(self.std_a**2 / self.n_a + self.std_b**2 / self.n_b)

    def note(self, metric: str) -> str:
        noise = self.noise
        if noise is None:
            return "one seed each: no spread to judge by"
        if abs(self.delta) <= noise:
            return f"within seed spread (2 SE = {noise:.3g})"
        better = (self.delta > 0) == HIGHER_IS_BETTER[metric]
        return f"significant, B {'better' if better else 'worse'} (2 SE = {noise:.3g})"


def compare_records(a: list[dict], b: list[dict], metric: str = "psnr") -> list[Difference]:
    """The groups finished in both ``a`` and ``b`` with ``metric`` on every seed, in ``a``'s order."""
    b_groups = {(g.scene, g.primitive, g.setting): g for g in group_records(b)}
    rows = []
    for ga in group_records(a):
        key = (ga.scene, ga.primitive, ga.setting)
        gb = b_groups.get(key)
        va, vb = ga.values(metric), gb.values(metric) if gb else []
        if va and vb:
            rows.append(Difference(key, *mean_std(va), len(va), *mean_std(vb), len(vb)))
    return rows


def _results(path: str) -> list[dict]:
    p = Path(path)
    file = p / "results.jsonl" if p.is_dir() else p
    if not file.is_file():
        raise ConfigError(
            "no benchmark results here (no results.jsonl)",
            path=p,
            hint="pass a folder written by recon bench, or its results.jsonl",
        )
    return read_results(file)


def compare_main(argv: list[str], prog: str = "recon bench compare") -> int:
    args = tyro.cli(CompareArgs, args=list(argv), prog=prog)
    rows = compare_records(_results(args.a), _results(args.b), args.metric)
    if not rows:
        raise ConfigError(
            f"the two result sets share no finished (scene, primitive, setting) with {args.metric}",
            hint="compare runs of the same matrix, e.g. before and after a change",
        )
    print(f"{'scene':<16} {'primitive/setting':<28} {'A':>16} {'B':>16} {'B - A':>8}  note ({args.metric})")
    for d in rows:
        scene, primitive, setting = d.key
        a = f"{d.mean_a:.4g} +- {d.std_a:.2g}"
        b = f"{d.mean_b:.4g} +- {d.std_b:.2g}"
        print(f"{scene:<16} {primitive + '/' + setting:<28} {a:>16} {b:>16} {d.delta:>+8.3f}  {d.note(args.metric)}")
    return 0
