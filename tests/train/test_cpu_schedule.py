"""The automatic dense preset on a CPU runs the whole 3DGS schedule scaled to CPU_DENSE_STEPS."""

from __future__ import annotations

import tyro

from recon.config import load_preset, scale_schedule
from recon.train.cli import CPU_DENSE_STEPS, TrainArgs, _config_from_args


def _args(*argv: str) -> TrainArgs:
    return tyro.cli(TrainArgs, args=["--out", "unused", "--data", "synthetic", *argv])


def test_scale_schedule_scales_every_step_option_alike():
    dense = load_preset("dense")
    short = scale_schedule(dense, 3000)
    f = 3000 / dense.iterations
    assert short.iterations == 3000
    for name in ("refine_start", "refine_stop", "refine_every", "reset_every"):
        assert getattr(short.strategy, name) == max(1, round(getattr(dense.strategy, name) * f)), name
    assert short.optim.sh_increase_every == round(dense.optim.sh_increase_every * f)
    assert short.optim == scale_schedule(short, 3000).optim  # scaling to the same length changes nothing
    assert short.loss == dense.loss and short.families == dense.families  # family LRs, regularisers


def test_auto_dense_on_cpu_is_the_scaled_schedule(capsys):
    config = _config_from_args(_args())  # no --views: more than 9 training views -> dense
    assert config.device == "cpu"
    assert config.iterations == CPU_DENSE_STEPS < load_preset("dense").iterations
    assert config.strategy == scale_schedule(load_preset("dense"), CPU_DENSE_STEPS).strategy
    assert f"{CPU_DENSE_STEPS} steps" in capsys.readouterr().err


def test_explicit_choices_keep_their_step_count():
    full = load_preset("dense").iterations
    assert _config_from_args(_args("--preset", "dense")).iterations == full  # named explicitly
    assert _config_from_args(_args("--iterations", "1234")).iterations == 1234
    sparse = _config_from_args(_args("--views", "3"))
    assert sparse.iterations == load_preset("sparse-3view").iterations
