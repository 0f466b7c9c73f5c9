"""`recon train --repair auto|PATH` end to end on the demo scene: rounds, resume mid-round, the
gate turning repair off, bad model folders and dense captures refused before training."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

pytest.importorskip("diffusers")

from recon.cli import main
from recon.repair.fixer import Fixer, FixerConfig
from recon.repair.rounds import load_round
from recon.run import latest_checkpoint, load_checkpoint

PRESET = """
data: {synthetic_width: 48, synthetic_height: 40, synthetic_views: 8, protocol: generic}
iterations: 200
checkpoint_every: 50
init: {method: scene, max_points: 300}
optim: {sh_degree: 0}
sparse: {enabled: false}
strategy: {refine_start: 50, refine_stop: 150, refine_every: 50, reset_every: 100000}
repair: {rounds: 2, first: 0.3, last: 0.6, orbit_tilt: 0, held_out: 2, fit_steps: 20, fit_channels: 8}
"""  # rounds start at steps 60 and 120; the leave-one-out sub-runs take 100 steps each


def _train(tmp_path, out, *extra: str) -> int:
    (tmp_path / "p.yaml").write_text(PRESET)
    return main(["train", "--data", "synthetic", "--views", "4", "--preset", str(tmp_path / "p.yaml"),
                 "--out", str(out), *extra])


def _logged(out) -> list[dict]:
    return [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines() if line.strip()]


def _final_params(out) -> dict[str, torch.Tensor]:
    return load_checkpoint(latest_checkpoint(out / "checkpoints")).params


def test_repair_auto_end_to_end_and_resume_in_the_middle_of_a_round(tmp_path, capsys):
    a = tmp_path / "a"
    assert _train(tmp_path, a, "--repair", "auto", "--checkpoint-every", "100") == 0  # kept: 100, 200
    err = capsys.readouterr().err
    gate = json.loads((a / "repair" / "gate.json").read_text())
    assert gate["enabled"], gate["reason"]  # this scene's fixer beats the renders on the held-out view
    assert "repair on:" in err and "repair round 1/2 at step 60" in err and "repair round 2/2 at step 120" in err
    manifest = json.loads((a / "repair" / "pairs" / "manifest.json").read_text())
    assert {p["view"] for p in manifest["pairs"]} <= set(manifest["train_views"])  # no test view was read
    first, second = load_round(a / "repair" / "round_0"), load_round(a / "repair" / "round_1")
    assert len(first) == 2 * len(second)  # both ends of each pair, then the midpoints
    for view in first + second:
        assert bool(torch.isfinite(view.image).all()) and 0 <= float(view.weight.min()) <= float(view.weight.max()) <= 1
    rows = _logged(a)
    assert any("repair" in r for r in rows) and not any("repair" in r for r in rows if r["step"] <= 60)
    assert rows[-1]["step"] == 200

    # a run stopped at step 100 (in round 1) and resumed: the round comes back from RUN/repair/round_0
    b = tmp_path / "b"
    shutil.copytree(a, b)
    shutil.rmtree(b / "repair" / "round_1")
    assert main(["train", "--resume", str(b), "--checkpoint", "100"]) == 0
    assert "repair: round 1 restored" in capsys.readouterr().err
    expected, got = _final_params(a), _final_params(b)
    for name in expected:  # bit for bit, like a run that was never stopped
        assert torch.equal(expected[name], got[name]), name
    again = load_round(b / "repair" / "round_1")
    for x, y in zip(second, again, strict=True):
        assert torch.equal(x.image, y.image) and torch.equal(x.weight, y.weight)
        assert torch.equal(x.camera.viewmats, y.camera.viewmats)


def test_the_gate_turns_repair_off_says_why_and_training_goes_on(tmp_path, capsys, monkeypatch):
    from recon.repair import pretrained

    bad = Fixer.create(FixerConfig(channels=(8, 16), norm_groups=8))
    torch.nn.init.normal_(bad.unet.conv_out.weight, std=0.5)  # much worse than doing nothing
    bad.save_pretrained(tmp_path / "bad")
    loads, load = [], pretrained.load_repair_model
    monkeypatch.setattr(pretrained, "load_repair_model", lambda *a, **k: loads.append(a) or load(*a, **k))
    out = tmp_path / "r"
    assert _train(tmp_path, out, "--repair", str(tmp_path / "bad"), "--iterations", "100") == 0
    assert len(loads) == 1  # loaded at startup (a bad folder fails there), gated at the first round
    err = " ".join(capsys.readouterr().err.split())  # rich wraps long lines
    assert "repair off: the repair model gives" in err and "training goes on without it" in err
    assert not json.loads((out / "repair" / "gate.json").read_text())["enabled"]
    assert not list((out / "repair").glob("round_*"))
    rows = _logged(out)
    assert rows[-1]["step"] == 100 and not any("repair" in r for r in rows)


def test_a_bad_repair_folder_is_one_line_before_training(tmp_path, capsys):
    out = tmp_path / "r"
    assert _train(tmp_path, out, "--repair", str(tmp_path / "missing")) == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(errors) == 1 and errors[0].startswith("error: repair.model (--repair)") and "not found" in errors[0]
    assert not out.exists()
    (tmp_path / "empty").mkdir()
    assert _train(tmp_path, out, "--repair", str(tmp_path / "empty")) == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "not a diffusers folder" in errors[0]
    assert not (out / "checkpoints").exists() and not (out / "log.jsonl").exists()


def test_auto_on_a_dense_capture_says_why_and_trains(tmp_path, capsys):
    out = tmp_path / "r"
    assert main(["train", "--data", "synthetic", "--preset", "demo", "--iterations", "3", "--out", str(out),
                 "--repair", "auto"]) == 0
    err = " ".join(capsys.readouterr().err.split())
    assert "repair off: --repair auto fits a fixer for sparse captures (<= 9 training views) and this run trains on 21" in err
    assert _logged(out)[-1]["step"] == 3 and not (out / "repair").exists()
