"""scripts/bench_repair.py: its CPU clock, stage arithmetic and image grid (the runs themselves are
the benchmark, not a test)."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time

import numpy as np
from PIL import Image

from .scripts import SCRIPTS, load_script

SCRIPT = SCRIPTS / "bench_repair.py"


def _bench():
    return load_script("bench_repair")


def test_cpu_clock_of_a_live_process_matches_its_own_process_time():
    bench = _bench()
    t = time.process_time()
    while time.process_time() - t < 0.3:  # burn CPU so the clock has something to count
        sum(range(1000))
    own, proc = time.process_time(), bench._cpu_s(os.getpid())
    assert abs(own - proc) < 0.05 + 2 / bench.TICK


def test_run_reports_the_lines_and_the_child_cpu_time():
    bench = _bench()
    code = "import time\nt = time.process_time()\nwhile time.process_time() - t < 0.3: pass\nprint('done')"
    seen = []
    rc, cpu, wall, lines = bench.run([sys.executable, "-c", code], 1, lambda line, pid: seen.append(line))
    assert rc == 0 and lines == seen == ["done\n"]
    assert 0.3 <= cpu < wall + 0.1


def test_stages_are_differences_of_the_marks_and_add_up_to_the_total():
    bench = _bench()
    marks = {"setup": 10.0, "pairs_start": 100.0, "fit_start": 160.0, "gate": 260.0, "round_1": 265.0}
    s = bench.stages(marks, 1000.0)
    assert s == {"setup": 10.0, "pairs": 60.0, "fit": 100.0, "round_1": 5.0, "training": 825.0}
    base = bench.stages({"setup": 10.0}, 900.0)  # repair off: no repair stage at all
    assert base == {"setup": 10.0, "training": 890.0}
    assert math.isnan(bench.stages({}, 5.0)["setup"])


def test_grid_puts_truth_both_renders_and_the_pseudo_view_side_by_side(tmp_path):
    bench = _bench()
    rng = np.random.default_rng(0)
    h, w = 30, 40
    gt, off, auto, fixed = (rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for _ in range(4))
    for run, pred in (("off", off), ("auto", auto)):
        (tmp_path / run / "eval").mkdir(parents=True)
        Image.fromarray(np.concatenate([gt, pred], 1)).save(tmp_path / run / "eval" / "view.png")
    (tmp_path / "auto" / "repair" / "round_0").mkdir(parents=True)
    weight = np.zeros_like(fixed)
    Image.fromarray(np.concatenate([fixed, weight], 1)).save(tmp_path / "auto" / "repair" / "round_0" / "view_00.png")
    out = bench.grid(tmp_path / "off", tmp_path / "auto", tmp_path / "grid.png", rows=1, scale=1.0)
    img = np.asarray(Image.open(out))[14:]  # below the label strip
    assert img.shape == (h, 4 * w, 3)
    for k, tile in enumerate((gt, off, auto, fixed)):
        np.testing.assert_array_equal(img[:, k * w : (k + 1) * w], tile)
    post = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)  # the post-pass column goes before the fixer's
    (tmp_path / "post").mkdir()
    Image.fromarray(np.concatenate([gt, post], 1)).save(tmp_path / "post" / "view.png")
    out = bench.grid(tmp_path / "off", tmp_path / "auto", tmp_path / "grid.png", rows=1, scale=1.0,
                     post=tmp_path / "post")  # fmt: skip
    img = np.asarray(Image.open(out))[14:]
    assert img.shape == (h, 5 * w, 3)
    for k, tile in enumerate((gt, off, auto, post, fixed)):
        np.testing.assert_array_equal(img[:, k * w : (k + 1) * w], tile)


def test_table_has_a_row_per_run_and_the_mean_difference():
    bench = _bench()
    off = bench.RunRecord("off", 0, "r/off", psnr=18.0, ssim=0.74, train_cpu_s=900.0, stages_cpu_s={"setup": 10.0})
    auto = bench.RunRecord("auto", 0, "r/auto", psnr=18.25, ssim=0.75, train_cpu_s=1350.0, gate="repair on: x")
    text = bench.table([off, auto])
    assert "| 0 | off | 18.00 | 0.740 | 900 | 10 |" in text and "| repair on: x |" in text
    assert "difference 0.25 dB" in text and "train CPU auto / off 1.50x" in text


def test_help_runs_without_the_optional_parts():
    out = subprocess.run([sys.executable, str(SCRIPT), "--help"], capture_output=True, text=True, check=True)
    assert "--iterations" in out.stdout and "--seeds" in out.stdout


def test_table_reports_the_post_pass_beside_the_plain_scores():
    bench = _bench()
    off = bench.RunRecord("off", 0, "r/off", psnr=18.0, ssim=0.74, train_cpu_s=900.0, psnr_post=18.5, ssim_post=0.75)
    auto = bench.RunRecord("auto", 0, "r/auto", psnr=18.25, ssim=0.75, train_cpu_s=1350.0, psnr_post=19.0,
                           ssim_post=0.76)  # fmt: skip
    text = bench.table([off, auto])
    assert "| 0 | off | 18.00 | 0.740 | 18.50 | 0.750 | 900 |" in text and "post-pass PSNR" in text
    assert "Post-pass: off 0.50 dB over plain off" in text and "auto + post-pass - plain off 1.00 dB" in text
    assert "post-pass" not in bench.table([bench.RunRecord("off", 0, "r", psnr=18.0)])


def test_post_pass_keeps_the_plain_scores_when_the_gate_said_no(tmp_path):
    bench = _bench()
    (tmp_path / "auto" / "repair").mkdir(parents=True)
    (tmp_path / "auto" / "repair" / "gate.json").write_text(json.dumps({"enabled": False, "reason": "repair off: x"}))
    record = bench.RunRecord("off", 0, str(tmp_path / "off"), psnr=18.0, ssim=0.74)
    bench.post_pass(record, None)  # runs nothing
    assert (record.psnr_post, record.ssim_post, record.eval_post_cpu_s) == (18.0, 0.74, 0.0)
    assert not (tmp_path / "post_off").exists()


def test_eval_json_reads_the_last_json_line_and_reports_a_failure(capsys):
    import argparse

    bench, args = _bench(), argparse.Namespace(threads=1)
    res, cpu = bench.eval_json([sys.executable, "-c", "print('note'); print('{\"psnr\": 19.5}')"], args)
    assert res == {"psnr": 19.5} and cpu >= 0
    res, _ = bench.eval_json([sys.executable, "-c", "import sys; print('{\"psnr\": 1}'); sys.exit(2)"], args)
    assert res is None and "failed" in capsys.readouterr().err
