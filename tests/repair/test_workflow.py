"""Repair on a real run folder: pairs -> fit -> gate -> the model training would use."""

from __future__ import annotations

import json
import math

import pytest
import torch

pytest.importorskip("diffusers")

from recon.errors import ConfigError
from recon.repair.fixer import Fixer, FixerConfig
from recon.repair.pairs import PairConfig
from recon.repair.workflow import fit_for_run, pairs_for_run, repair_model_for_run
from tests.repair.tiny_run import train_tiny_run

PAIRS = PairConfig(held_out=2, min_iterations=12, render_at=(1.0,), noise_per_view=1, noise_strength=0.2,
                   downscale=1.0)
TINY = FixerConfig(channels=(16, 32), norm_groups=8, crop=16, batch=2, steps=3, ema_decay=0.0)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    return train_tiny_run(tmp_path_factory.mktemp("run"), width=32, height=24)


def test_pairs_fit_gate_on_a_run_folder(run_dir):
    cams = json.loads((run_dir / "cameras.json").read_text())
    train, test = cams["split"]["train"], cams["split"]["test"]
    with pytest.raises(ConfigError, match="no fitted repair model"):
        repair_model_for_run(run_dir)
    pair_set = pairs_for_run(run_dir, PAIRS)
    manifest = json.loads((run_dir / "repair" / "pairs" / "manifest.json").read_text())
    assert manifest["train_views"] == train and manifest["test_views"] == test
    assert {r["view"] for r in manifest["pairs"]} <= set(train) and not {r["view"] for r in manifest["pairs"]} & set(test)
    assert len(pair_set.pairs) == 2 + len(train)  # 2 held-out renders + one noise render per training view

    _, gate = fit_for_run(run_dir, TINY, progress=False)
    assert (run_dir / "repair" / "model" / "recon_fixer.json").is_file()
    saved = json.loads((run_dir / "repair" / "gate.json").read_text())
    assert saved["enabled"] == gate.enabled and saved["views"] == gate.views == [max(r["view"] for r in manifest["pairs"]
                                                                                     if r["kind"] == "loo")]
    model, verdict = repair_model_for_run(run_dir)
    assert verdict.reason == gate.reason and (model is not None) == gate.enabled
    assert not math.isnan(verdict.psnr_identity)


def test_a_pretrained_model_is_gated_on_the_runs_pairs(run_dir, tmp_path):
    if not (run_dir / "repair" / "pairs" / "manifest.json").is_file():
        pairs_for_run(run_dir, PAIRS)
    bad = Fixer.create(TINY)
    torch.nn.init.normal_(bad.unet.conv_out.weight, std=0.5)  # worse than doing nothing
    bad.save_pretrained(tmp_path / "bad")
    model, gate = repair_model_for_run(run_dir, tmp_path / "bad")
    assert model is None and not gate.enabled and "repair off" in gate.reason
    with pytest.raises(ConfigError, match="not found"):
        repair_model_for_run(run_dir, tmp_path / "missing")
