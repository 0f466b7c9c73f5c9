"""`recon train/demo/eval` end to end on tiny scenes, bad input, and resume after kill -9."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from recon.cli import main
from recon.config import SCHEMA_VERSION
from tests.train.test_cli_safety import _scene as tiny_scene

REPO = Path(__file__).resolve().parents[2]


def test_unknown_preset(tmp_path, capsys):
    assert main(["train", "--data", "synthetic", "--out", str(tmp_path / "r"), "--preset", "nope"]) == 2
    assert "unknown preset 'nope'" in capsys.readouterr().err


def test_too_many_views(tmp_path, capsys):
    scene = tiny_scene(tmp_path / "s")
    code = main(["train", "--data", str(scene), "--views", "3", "--out", str(tmp_path / "r")])
    assert code == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "--views 3" in errors[0]


def test_existing_run_dir_refused_and_resume_needs_run(tmp_path, capsys):
    out = tmp_path / "r"
    out.mkdir()
    (out / "something").write_text("x")
    assert main(["train", "--data", "synthetic", "--out", str(out)]) == 2
    assert "--resume" in capsys.readouterr().err and (out / "something").exists()
    assert main(["train", "--resume", str(tmp_path / "missing")]) == 2
    assert "no run to resume" in capsys.readouterr().err


def test_demo_then_eval_json(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--iterations", "4"]) == 0
    capsys.readouterr()
    assert main(["eval", str(out), "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert {"psnr", "ssim", "lpips", "views"} <= set(res)
    assert len(res["views"]) == 3 and np.isfinite(res["psnr"])
    assert abs(res["psnr"] - np.mean([v["psnr"] for v in res["views"]])) < 1e-9
    assert (out / "eval" / "metrics.json").is_file() and len(list((out / "eval").glob("*.png"))) == 3
    assert json.loads((out / "config.json").read_text())["schema_version"] == SCHEMA_VERSION
    assert all(json.loads(line)["step"] for line in (out / "log.jsonl").read_text().splitlines())


def test_resume_after_sigkill_loses_at_most_one_interval(tmp_path):
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "recon.cli", "train", "--data", "synthetic", "--preset", "demo", "--out", str(out),
           "--iterations", "400", "--checkpoint-every", "5"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=REPO)
    latest = out / "checkpoints" / "latest.json"
    deadline = time.time() + 240
    try:
        while time.time() < deadline:
            if latest.is_file() and json.loads(latest.read_text())["step"] >= 20:
                break
            time.sleep(0.2)
        else:
            pytest.fail("no checkpoint at step 20 within 240 s")
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    logged = [json.loads(line)["step"] for line in (out / "log.jsonl").read_text().splitlines() if line.strip()]
    saved = json.loads(latest.read_text())["step"]
    assert saved >= max(logged) - 5  # the newest checkpoint is at most one interval behind
    assert main(["train", "--resume", str(out), "--iterations", str(saved + 3)]) == 0
    assert json.loads(latest.read_text())["step"] == saved + 3


def test_training_keeps_its_init_cloud_and_depth_priors(tmp_path):
    """RUN/priors holds the cloud the primitives started from and the training views' depth priors."""
    import torch

    from recon.config import load_preset, override
    from recon.priors.init import load_priors
    from recon.train import cli as train_cli

    config = override(load_preset("demo"), **{"data.path": train_cli.SYNTHETIC, "iterations": 1})
    out = tmp_path / "run"
    out.mkdir()
    trainer, _ = train_cli.run_training(config, out, quiet=True)
    cloud, depths = load_priors(out)
    assert cloud is not None and cloud.source == "scene" and 0 < cloud.points.shape[0] <= trainer.scene.num_points
    # every saved point is one of the scene's surface samples (a subset, after max_points)
    nearest = torch.cdist(cloud.points, trainer.scene.points, compute_mode="donot_use_mm_for_euclid_dist").min(dim=1).values
    assert nearest.max() < 1e-5
    if depths:  # the synthetic scene's exact depth is the prior: 16-bit quantisation only
        exact = trainer.scene.depths[trainer.split.train[0]]
        assert (depths[0] - exact).abs().max() <= exact.max() / 65535 + 1e-5
