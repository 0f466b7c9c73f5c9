"""Divergence and collapse stop a run keeping the last good checkpoint; the ETA line."""

from __future__ import annotations

import math

import pytest
import torch

from recon.config import TrainConfig, override
from recon.run import checkpoint_steps, find_checkpoint, load_training_scene
from recon.train.health import CollapseMonitor, EtaEstimate, format_duration, suspicious_lrs
from recon.train.setup import initial_cloud, make_split
from recon.train.trainer import Trainer, TrainingDiverged


def _config(**kw) -> TrainConfig:
    base = {
        "data.path": "synthetic", "data.synthetic_width": 32, "data.synthetic_height": 24,
        "data.synthetic_views": 6, "data.test_every": 3, "iterations": 10, "init.max_points": 200,
        "optim.sh_degree": 0, "strategy.name": "none", "sparse.enabled": False, "checkpoint_every": 5,
    }  # fmt: skip
    base.update(kw)
    return override(TrainConfig(), **base)


@pytest.fixture(scope="module")
def scene():
    return load_training_scene(_config().data)


def _good_run(scene, run_dir) -> Trainer:
    """A healthy run of 10 steps with checkpoints at 5 and 10."""
    cfg = _config()
    tr = Trainer(cfg, scene, make_split(scene, cfg.data), run_dir)
    tr.init_from_cloud(initial_cloud(scene, tr.split.train, cfg.init, cfg.seed))
    tr.train(install_sigint=False)
    return tr


def _resume_with(scene, run_dir, window: int | None = None, **changes) -> Trainer:
    cfg = _config(**changes)
    tr = Trainer(cfg, scene, make_split(scene, cfg.data), run_dir)
    tr.load(find_checkpoint(run_dir / "checkpoints"))
    if window is not None:
        tr.health = CollapseMonitor(window=window)
    return tr


@pytest.mark.parametrize("lr", [math.inf, 1e6])
def test_a_huge_learning_rate_never_becomes_the_latest_checkpoint(scene, tmp_path, lr):
    good = _good_run(scene, tmp_path)
    expected = {k: v.detach().clone() for k, v in good.params.items()}
    tr = _resume_with(scene, tmp_path, window=20, iterations=1000, **{"optim.means_lr": lr, "optim.scales_lr": lr})
    with pytest.raises(TrainingDiverged) as err:
        tr.train(install_sigint=False)
    msg = str(err.value)
    assert "last good checkpoint (step 10)" in msg
    assert f"gaussian.means_lr={lr:g} (default 0.00016)" in msg and "gaussian.scales_lr" in msg
    assert "gaussian.quats_lr" not in msg  # only the suspicious ones are named
    assert checkpoint_steps(tmp_path / "checkpoints") == [10, 5]
    latest = find_checkpoint(tmp_path / "checkpoints")
    assert latest.step == 10
    for k, v in expected.items():
        assert torch.equal(latest.params[k], v), k


def test_a_collapsed_fit_stops_without_replacing_the_last_good_checkpoint(scene, tmp_path, caplog):
    """means_lr 3.0 (20,000x the default) flings the Gaussians out of view: finite but destroyed."""
    _good_run(scene, tmp_path)
    tr = _resume_with(scene, tmp_path, window=20, iterations=1000, **{"optim.means_lr": 3.0})
    with pytest.raises(TrainingDiverged, match=r"training collapsed by step 30: the training PSNR fell .*"
                                                r"last good checkpoint \(step 10\).*gaussian.means_lr=3"):
        tr.train(install_sigint=False)
    assert find_checkpoint(tmp_path / "checkpoints").step == 10
    assert checkpoint_steps(tmp_path / "checkpoints") == [10, 5]  # steps 15..30 were not saved
    assert "checkpoint at step 15 not written" in caplog.text and "step 10 stays the latest" in caplog.text


def test_the_same_resume_at_default_learning_rates_trains_on(scene, tmp_path):
    _good_run(scene, tmp_path)
    tr = _resume_with(scene, tmp_path, window=20, iterations=40)
    assert tr.train(install_sigint=False).step == 40
    assert find_checkpoint(tmp_path / "checkpoints").step == 40


def test_collapse_monitor_ignores_a_short_dip_and_flags_a_sustained_fall():
    rising = [15 + 10 * (1 - math.exp(-i / 50)) for i in range(400)]
    # an opacity reset: the fit drops by ~19 dB at once and recovers over ~40 steps (measured on the demo)
    dip = [r - 19 * max(0.0, 1 - (i - 300) / 40) if i >= 300 else r for i, r in enumerate(rising)]
    mon = CollapseMonitor(window=200, drop_db=5)
    for p in dip:
        mon.update(p)
        assert not mon.collapsed
    mon = CollapseMonitor(window=200, drop_db=5)
    mon.update(16.0)  # the initial fit, then 6 dB below it for good
    flagged = []
    for _ in range(250):
        mon.update(10.0)
        flagged.append(mon.collapsed)
    assert flagged.index(True) == 198 and all(flagged[198:])  # a full window (incl. the first reading)
    assert mon.suspect


def test_suspicious_lrs_compares_with_the_defaults():
    assert suspicious_lrs(TrainConfig()) == []
    cfg = override(TrainConfig(), **{"optim.opacities_lr": 0.4, "optim.sh0_lr": 0.03})
    assert suspicious_lrs(cfg) == ["optim.sh0_lr=0.03 (default 0.0025)"]  # 8x opacity lr is fine


class FakeClock:
    def __init__(self, seconds_per_step: float):
        self.t, self.dt = 0.0, seconds_per_step

    def __call__(self) -> float:
        return self.t

    def tick(self) -> None:
        self.t += self.dt


def _eta_lines(total: int, seconds_per_step: float, start: int = 0, device: str = "cpu") -> list[tuple[int, str]]:
    clock = FakeClock(seconds_per_step)
    eta = EtaEstimate(total, start=start, device=device, skip=2, steps=20, clock=clock)
    clock.dt *= 5  # first steps are slow (warm-up) and must not count
    lines = []
    for step in range(start + 1, total + 1):
        clock.tick()
        if step == start + 2:
            clock.dt /= 5
        line = eta.update(step)
        if line:
            lines.append((step, line))
    return lines


def test_eta_line_times_the_first_steps_and_warns_on_long_cpu_runs():
    [(step, line)] = _eta_lines(30000, 0.24)
    assert step == 22
    assert line.startswith("estimated time: at least 2 h 00 min for the remaining 29978 steps (0.24 s/step")
    assert "warning: that is long on a CPU; shorten it with --iterations N (about 7500 steps take 30 min)" in line
    [(_, line)] = _eta_lines(3000, 0.24)
    assert "12 min" in line and "warning" not in line
    [(_, line)] = _eta_lines(30000, 0.24, device="cuda")
    assert "warning" not in line
    [(step, _)] = _eta_lines(2000, 0.1, start=1000)  # after a resume the timing starts at the checkpoint
    assert step == 1022
    assert _eta_lines(20, 0.1) == []  # too short to estimate


def test_format_duration():
    assert [format_duration(s) for s in (40, 720, 7500)] == ["40 s", "12 min", "2 h 05 min"]
