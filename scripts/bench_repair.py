"""Diffusion repair on a real scene (issue #11): the same run with and without ``--repair auto``.

Per seed, ``recon train`` runs twice side by side (``--repair off`` and ``--repair auto``, one
torch thread each, everything else identical), then ``recon eval RUN --json`` scores both. The
CPU time of each repair stage is read off the training process while it runs: its stdout lines
mark the stages (``repair: leave-one-out pairs`` -> ``repair: fitting`` -> the gate's verdict ->
``repair round k/K``) and the process's own CPU time (``/proc/PID/stat``) is sampled at each
line. Writes under ``--out``: the run folders (``seed_S/off``, ``seed_S/auto``), ``results.json``,
``table.md`` and ``grid_seed_S.png`` (ground truth | without repair | with repair | the fixer's
output on a pseudo view, or on the gate's held-out view when the gate turned repair off).
``--post-pass`` also scores both runs through the per-frame post-pass with the auto run's model
(``recon eval RUN --repair MODEL``, Difix3D+'s second half), when its gate turned repair on; the
scores go to ``seed_S/post_off`` and ``seed_S/post_auto``, so the off run's folder is not written::

    python scripts/bench_repair.py --data ../shared/data/dtu/scan24 --protocol dtu --views 3 \\
        --seeds 0 1 2 --out /tmp/bench_repair

Numbers go to BENCHMARKS.md ("Diffusion repair, first figures").
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

MODES = ("off", "auto")
# stdout line prefix -> stage boundary (recon/repair/training.py and rounds.py print them)
MARKS = (
    ("init:", "setup"),
    ("repair: leave-one-out pairs", "pairs_start"),
    ("repair: fitting", "fit_start"),
    ("repair on:", "gate"),
    ("repair off:", "gate"),
)
ROUND = re.compile(r"^repair round (\d+)/\d+ at step")
TICK = os.sysconf("SC_CLK_TCK")
# `recon train` whose new run folder starts with a copy of FIXER_RUN/repair's pairs, model and gate
# (sys.argv: FIXER_RUN, then recon train's arguments): --repair auto then skips pairs and fit.
PREFILLED = """
import shutil, sys
from pathlib import Path
import recon.train.cli as cli
from recon.cli import main
src, prepare = Path(sys.argv[1]) / "repair", cli.prepare_out
def prefilled(out, **kw):
    folder = prepare(out, **kw)
    for name in ("pairs", "model"):
        shutil.copytree(src / name, Path(out) / "repair" / name)
    shutil.copy(src / "gate.json", Path(out) / "repair" / "gate.json")
    return folder
cli.prepare_out = prefilled
sys.exit(main(["train", *sys.argv[2:]]))
"""


@dataclass
class RunRecord:
    """One training run: its scores, CPU times (s) and what the repair printed."""

    mode: str
    seed: int
    run: str
    psnr: float = math.nan
    ssim: float = math.nan
    train_cpu_s: float = math.nan
    train_wall_s: float = math.nan
    eval_cpu_s: float = math.nan
    stages_cpu_s: dict[str, float] = field(default_factory=dict)
    marks_cpu_s: dict[str, float] = field(default_factory=dict)
    gate: str = ""
    returncode: int = 0
    psnr_post: float = math.nan
    """Through the post-pass with the auto run's model (``--post-pass``); the plain score when its gate said no."""
    ssim_post: float = math.nan
    eval_post_cpu_s: float = math.nan


def _cpu_s(pid: int) -> float:
    """CPU time (user + system, all threads) of a live process."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return math.nan
    return (int(fields[11]) + int(fields[12])) / TICK  # utime, stime (fields 14, 15 of proc(5))


def run(cmd: list[str], threads: int, on_line=None) -> tuple[int, float, float, list[str]]:
    """Runs ``cmd`` (stderr into stdout), calling ``on_line(text, pid)`` per line: (exit code, CPU s
    from the kernel's rusage, wall s, the lines)."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=_env(threads), text=True)
    lines = []
    for line in proc.stdout:
        lines.append(line)
        if on_line is not None:
            on_line(line, proc.pid)
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return proc.returncode, usage.ru_utime + usage.ru_stime, time.perf_counter() - t0, lines


def _env(threads: int) -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": str(threads), "RECON_THREADS": str(threads), "PYTHONUNBUFFERED": "1"}


def train(record: RunRecord, args: argparse.Namespace) -> None:
    """Runs ``recon train`` for ``record`` and fills its CPU times, stage marks and gate verdict."""
    cmd = ["recon", "train", "--data", args.data, "--protocol", args.protocol, "--seed", str(record.seed),
           "--repair", record.mode, "--out", record.run, "--overwrite"]
    if args.fixer_from and record.mode == "auto":
        fixer_run = Path(args.fixer_from) / f"seed_{record.seed}" / "auto"
        cmd = [sys.executable, "-c", PREFILLED, str(fixer_run.resolve()), *cmd[2:]]
    for flag, value in (("--views", args.views), ("--iterations", args.iterations),
                        ("--downscale", args.downscale), ("--preset", args.preset)):
        if value is not None:
            cmd += [flag, str(value)]
    Path(record.run).parent.mkdir(parents=True, exist_ok=True)
    log = Path(record.run).parent / f"train_{record.mode}.log"
    log.write_text("")

    def on_line(line: str, pid: int) -> None:
        with log.open("a") as f:
            f.write(line)
        text = line.strip()
        mark = next((name for prefix, name in MARKS if text.startswith(prefix)), None)
        if m := ROUND.match(text):
            mark = f"round_{m.group(1)}"
        if mark is not None and mark not in record.marks_cpu_s:
            record.marks_cpu_s[mark] = _cpu_s(pid)
            if mark == "gate":
                record.gate = text

    record.returncode, record.train_cpu_s, record.train_wall_s, _ = run(cmd, args.threads, on_line)
    gate = Path(record.run) / "repair" / "gate.json"
    if gate.is_file():  # the verdict unwrapped (the console wraps long stdout lines)
        record.gate = json.loads(gate.read_text())["reason"]
    record.stages_cpu_s = stages(record.marks_cpu_s, record.train_cpu_s)


def stages(marks: dict[str, float], total: float) -> dict[str, float]:
    """CPU seconds per stage from the cumulative CPU time at each mark.

    setup = scene, priors and init; pairs = the leave-one-out sub-runs and noise renders; fit =
    fitting the fixer + its gate; round_1 = rendering and repairing the first round's views;
    training = everything else (the training steps, the pseudo-view loss, later rounds).
    """
    out = {"setup": marks.get("setup", math.nan)}
    spans = (("pairs", "pairs_start", "fit_start"), ("fit", "fit_start", "gate"), ("round_1", "gate", "round_1"))
    for name, a, b in spans:
        if a in marks and b in marks:
            out[name] = marks[b] - marks[a]
    out["training"] = total - sum(v for v in out.values() if not math.isnan(v))
    return out


def eval_json(cmd: list[str], args: argparse.Namespace) -> tuple[dict | None, float]:
    """Runs a ``recon eval ... --json`` command: (its JSON result, None when it failed; its CPU s)."""
    rc, cpu, _, lines = run(cmd, args.threads)
    found = [s for s in lines if s.startswith("{")]
    if rc != 0 or not found:
        print(f"{' '.join(cmd[:3])} failed: {''.join(lines)[-400:]}", file=sys.stderr)
        return None, cpu
    return json.loads(found[-1]), cpu


def evaluate(record: RunRecord, args: argparse.Namespace) -> None:
    """``recon eval RUN --json``: masked PSNR / SSIM on the protocol's test views, and its CPU time."""
    res, record.eval_cpu_s = eval_json(["recon", "eval", record.run, "--json"], args)
    if res is not None:
        record.psnr, record.ssim = res["psnr"], res["ssim"]


def gate_enabled(auto_run: Path) -> bool:
    """Whether the auto run's gate turned repair on (its ``repair/gate.json``)."""
    gate = auto_run / "repair" / "gate.json"
    return gate.is_file() and bool(json.loads(gate.read_text())["enabled"])


def post_pass(record: RunRecord, args: argparse.Namespace) -> None:
    """``recon eval RUN --repair MODEL --json --out seed_S/post_MODE``: the run's test views through the
    model of its seed's auto run (``seed_S/auto``); the plain scores when that run's gate turned repair
    off (training did without it too)."""
    seed_dir = Path(record.run).parent
    auto_run, dest = seed_dir / "auto", seed_dir / f"post_{record.mode}"
    if not gate_enabled(auto_run):
        record.psnr_post, record.ssim_post, record.eval_post_cpu_s = record.psnr, record.ssim, 0.0
        return
    cmd = ["recon", "eval", record.run, "--repair", str(auto_run / "repair" / "model"), "--json", "--out", str(dest)]
    res, record.eval_post_cpu_s = eval_json(cmd, args)
    if res is not None:
        record.psnr_post, record.ssim_post = res["psnr"], res["ssim"]


def reused_off(earlier: Path, seed: int, out: Path) -> RunRecord:
    """The ``--repair off`` record of ``seed`` from an earlier benchmark, its run linked under ``out``."""
    record = RunRecord(**json.loads((earlier / f"seed_{seed}" / "record_off.json").read_text()))
    link = out / f"seed_{seed}" / "off"
    link.parent.mkdir(parents=True, exist_ok=True)
    if not link.exists():
        link.symlink_to(Path(record.run).resolve(), target_is_directory=True)
    record.run = str(link)
    return record


def in_parallel(fn, records: list[RunRecord], args: argparse.Namespace) -> None:
    threads = [threading.Thread(target=fn, args=(r, args)) for r in records]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def _half(path: Path, right: bool) -> np.ndarray:
    """Left or right half of a side-by-side PNG ([H, 2W, 3])."""
    a = np.asarray(Image.open(path).convert("RGB"))
    w = a.shape[1] // 2
    return a[:, w:] if right else a[:, :w]


def fixer_tiles(run: Path, count: int) -> tuple[list[np.ndarray], str]:
    """Up to ``count`` repaired pseudo views of the first round, or, when the gate turned repair off
    (no rounds), the fixer's output on the gate's held-out leave-one-out view."""
    views = sorted((run / "repair" / "round_0").glob("view_*.png"))
    if views:
        return [_half(views[i % len(views)], right=False) for i in range(count)], "fixer: pseudo view (round 1)"
    if not (run / "repair" / "model").is_dir():
        return [], "no fixer"
    import torch

    from recon.repair.dataset import load_pairs
    from recon.repair.fixer import repair_pairs, split_held_out
    from recon.repair.pretrained import load_repair_model

    _, held = split_held_out(load_pairs(run / "repair" / "pairs").pairs)
    with torch.no_grad():
        fixed = repair_pairs(load_repair_model(run / "repair" / "model"), held[:1])
    tile = (fixed[0].clamp(0, 1) * 255).round().byte().numpy()
    return [tile] * count, f"fixer: held-out view {held[0].view} (gate off)"


def grid(off: Path, auto: Path, dest: Path, rows: int = 2, scale: float = 0.5, post: Path | None = None) -> Path:
    """ground truth | without repair | with repair | (with repair + post-pass) | the fixer's output,
    one row per test view (evenly spaced over the test views), from the runs' ``eval/*.png`` and
    the auto run's post-pass images in ``post`` (``--post-pass``; left out when None)."""
    names = sorted(p.name for p in (off / "eval").glob("*.png"))
    picks = [names[round(i * (len(names) - 1) / max(rows - 1, 1))] for i in range(rows)]
    fixes, fix_label = fixer_tiles(auto, rows)
    labels = ["ground truth", "without repair", "with repair", *(["+ post-pass"] if post else []), fix_label]
    lines = []
    for i, name in enumerate(picks):
        tiles = [_half(off / "eval" / name, right=False), _half(off / "eval" / name, right=True),
                 _half(auto / "eval" / name, right=True)]
        if post is not None:
            tiles.append(_half(post / name, right=True))
        if fixes:
            tiles.append(fixes[i])
        h = tiles[0].shape[0]
        tiles = [np.asarray(Image.fromarray(t).resize((round(t.shape[1] * h / t.shape[0]), h))) for t in tiles]
        lines.append(np.concatenate(tiles, 1))
    width = max(r.shape[1] for r in lines)
    img = np.concatenate([np.pad(r, ((0, 0), (0, width - r.shape[1]), (0, 0)), constant_values=255) for r in lines])
    pil = Image.fromarray(img)
    pil = pil.resize((round(pil.width * scale), round(pil.height * scale)), Image.LANCZOS)
    head = Image.new("RGB", (pil.width, 14), "white")
    draw = ImageDraw.Draw(head)
    shown = labels[: len(labels) - (not fixes)]
    for k, label in enumerate(shown):
        draw.text((k * pil.width // len(shown) + 3, 1), label, fill="black")
    out = Image.new("RGB", (pil.width, pil.height + 14), "white")
    out.paste(head, (0, 0))
    out.paste(pil, (0, 14))
    out.save(dest, optimize=True)
    return dest


def _mean_std(values: list[float]) -> str:
    v = np.asarray(values, dtype=float)
    return f"{v.mean():.2f}" if len(v) == 1 else f"{v.mean():.2f} +- {v.std(ddof=1):.2f}"


def table(records: list[RunRecord]) -> str:
    """Markdown: one row per run, then the mean (+- std over seeds) per mode and the differences;
    with post-pass scores, their columns and the difference of auto + post-pass from plain off."""
    post = any(not math.isnan(r.psnr_post) for r in records)
    head = ("| seed | repair | masked PSNR (dB) | SSIM | " + ("post-pass PSNR | post-pass SSIM | " if post else "")
            + "train CPU s | setup | pairs | fit + gate | round 1 | training | train wall s | eval CPU s | gate |")
    rows = [head, "|" + "---|" * (13 + 2 * post)]
    for r in records:
        cells = [f"{r.stages_cpu_s[k]:.0f}" if not math.isnan(r.stages_cpu_s.get(k, math.nan)) else "-"
                 for k in ("setup", "pairs", "fit", "round_1", "training")]
        extra = f"{r.psnr_post:.2f} | {r.ssim_post:.3f} | " if post else ""
        rows.append(f"| {r.seed} | {r.mode} | {r.psnr:.2f} | {r.ssim:.3f} | {extra}{r.train_cpu_s:.0f} | "
                    f"{' | '.join(cells)} | {r.train_wall_s:.0f} | {r.eval_cpu_s:.0f} | {r.gate or '-'} |")
    by = {m: [r for r in records if r.mode == m] for m in MODES}
    if all(by.values()):
        pairs = list(zip(by["auto"], by["off"], strict=True))
        d_psnr = [a.psnr - b.psnr for a, b in pairs]
        d_ssim = [a.ssim - b.ssim for a, b in pairs]
        ratio = [a.train_cpu_s / b.train_cpu_s for a, b in pairs]
        summary = (f"Mean over {len(d_psnr)} seed(s): PSNR off {_mean_std([r.psnr for r in by['off']])} dB, "
                   f"auto {_mean_std([r.psnr for r in by['auto']])} dB, difference {_mean_std(d_psnr)} dB; "
                   f"SSIM difference {_mean_std([x * 100 for x in d_ssim])} x 1e-2; "
                   f"train CPU auto / off {_mean_std(ratio)}x.")
        rows += ["", summary]
        if post:
            rows.append(f"Post-pass: off {_mean_std([b.psnr_post - b.psnr for _, b in pairs])} dB over plain off, "
                        f"auto {_mean_std([a.psnr_post for a, _ in pairs])} dB, auto + post-pass - plain off "
                        f"{_mean_std([a.psnr_post - b.psnr for a, b in pairs])} dB (SSIM "
                        f"{_mean_std([(a.ssim_post - b.ssim) * 100 for a, b in pairs])} x 1e-2).")
    return "\n".join(rows) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", required=True, help="scene folder")
    p.add_argument("--protocol", default="auto")
    p.add_argument("--views", type=int, default=None, help="training views (protocol default when unset)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--iterations", type=int, default=None, help="training steps (preset's when unset)")
    p.add_argument("--downscale", type=float, default=None)
    p.add_argument("--preset", default=None, help="preset name or YAML (e.g. tuned repair options), both runs")
    p.add_argument("--threads", type=int, default=1, help="torch threads per run (the two runs go side by side)")
    p.add_argument("--reuse", action="store_true", help="keep finished runs of an earlier call (their record.json)")
    p.add_argument("--off-from", default=None,
                   help="an earlier --out with the same data, seeds and schedule: its --repair off runs are reused "
                        "(a repair candidate then trains only --repair auto, e.g. with --preset)")  # fmt: skip
    p.add_argument("--fixer-from", default=None,
                   help="an earlier --out with the same data, seeds and schedule: each --repair auto run starts with a "
                        "copy of its pairs, fixer and gate (no pairs, no fit: a candidate's rounds and loss compared "
                        "on the same fixer; their CPU time is not in the train CPU s)")  # fmt: skip
    p.add_argument("--post-pass", action="store_true",
                   help="also score both runs through the post-pass with the auto run's model (reused runs too)")
    p.add_argument("--out", required=True)
    args = p.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    records = []
    for seed in args.seeds:
        batch = [RunRecord(m, seed, str(out / f"seed_{seed}" / m)) for m in MODES]
        saved = [Path(r.run).parent / f"record_{r.mode}.json" for r in batch]
        if args.reuse and all(s.is_file() for s in saved):
            batch = [RunRecord(**json.loads(s.read_text())) for s in saved]
            todo = []
        else:
            todo = batch
            if args.off_from:
                batch[0] = reused_off(Path(args.off_from), seed, out)
                todo = batch[1:]
        in_parallel(train, todo, args)
        in_parallel(evaluate, todo, args)
        if args.post_pass and all(r.returncode == 0 for r in batch):
            in_parallel(post_pass, [r for r in batch if math.isnan(r.psnr_post)], args)
        for r, s in zip(batch, saved, strict=True):
            s.write_text(json.dumps(asdict(r), indent=1))
        records += batch
        if all(r.returncode == 0 for r in batch):
            post = out / f"seed_{seed}" / "post_auto"
            grid(Path(batch[0].run), Path(batch[1].run), out / f"grid_seed_{seed}.png",
                 post=post if post.is_dir() else None)
    (out / "results.json").write_text(json.dumps([asdict(r) for r in records], indent=1))
    (out / "table.md").write_text(table(records))
    print(table(records))


if __name__ == "__main__":
    main()
