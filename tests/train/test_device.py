"""Training follows the parameters' device: nothing is made on torch's default device.

No test trains on a GPU, so this guards the CUDA path on the CPU: the parameters, images, masks and
depth priors live on the CPU while the default device is "meta". A tensor created without an
explicit device (strategy state, random draws, backgrounds, windows...) lands on "meta", and mixing
it with the real tensors or reading it back fails; the state left behind is checked device by device.
"""

from __future__ import annotations

import math

import pytest
import torch

from recon.config import TrainConfig, override
from recon.ops import kernels
from recon.run import latest_checkpoint, load_checkpoint, load_training_scene
from recon.train.setup import depth_prior_maps, initial_cloud, make_split
from recon.train.trainer import Trainer

STEPS = 6
CASES = [("gaussian", "default"), ("gaussian", "mcmc"), ("triangle", "auto"), ("convex", "auto")]


def _config(primitive: str, strategy: str, backend: str) -> TrainConfig:
    return override(TrainConfig(), **{
        "data.path": "synthetic", "data.synthetic_width": 32, "data.synthetic_height": 24,
        "data.synthetic_views": 6, "data.test_every": 3, "primitive": primitive, "iterations": STEPS,
        "backend": backend, "init.max_points": 80, "optim.sh_degree": 1, "optim.sh_increase_every": 2,
        "strategy.name": strategy, "strategy.refine_start": 1, "strategy.refine_every": 2, "checkpoint_every": 0,
        "loss.background": "random", "loss.opacity_reg": 0.01, "loss.scale_reg": 0.01, "loss.aniso_reg": 0.01,
        "loss.triangle_opacity_reg": 0.01, "loss.convex_mask_reg": 0.01,
        "sparse.enabled": True, "sparse.warp_weight": 0.1, "sparse.warp_start": 0, "sparse.depth_weight": 0.1,
        "sparse.pearson_weight": 0.1, "sparse.ranking_weight": 0.1, "sparse.pseudo_weight": 0.1,
        "sparse.pseudo_start": 0, "sparse.pseudo_every": 2, "sparse.floater_every": 3,
    })  # fmt: skip


@pytest.fixture(scope="module")
def scene():
    return load_training_scene(_config("gaussian", "default", "reference").data)


def _tensors_off(device: torch.device, tr: Trainer) -> list[str]:
    """Names of the trainer's tensors (state, moments, images, priors) that are not on ``device``."""
    found = {f"strategy_state[{k}]": v for k, v in tr.strategy_state.items()}
    for name, opt in tr.optimizers.items():
        for st in opt.state.values():
            found.update({f"adam[{name}][{k}]": v for k, v in st.items() if k != "step"})
    found.update({f"images[{i}]": v for i, v in enumerate(tr.images)})
    found.update({f"depth_priors[{i}]": v for i, v in enumerate(tr.depth_priors or [])})
    found["cameras.Ks"] = tr.cameras.Ks
    return [k for k, v in found.items() if isinstance(v, torch.Tensor) and v.device != device]


def _train_and_resume(scene, run_dir, cfg: TrainConfig) -> None:
    """STEPS training steps, a checkpoint, a resumed trainer and 2 more steps, all under the
    "meta" default device; then every tensor of both trainers must be on ``cfg.device``."""
    device = torch.device(cfg.device)
    split = make_split(scene, cfg.data)
    tr = Trainer(cfg, scene, split, run_dir, depth_priors=depth_prior_maps(scene, split.train, "auto"))
    tr.init_from_cloud(initial_cloud(scene, split.train, cfg.init, cfg.seed))
    assert tr.background is None and tr.masks is not None and tr.depth_priors is not None
    n0 = tr.num_primitives
    with torch.device("meta"):
        rows = [tr.train_step(step) for step in range(STEPS)]
    assert all(math.isfinite(r["loss"]) for r in rows)
    assert {"warp", "depth", "pearson", "ranking", "pseudo", "opacity_reg"} <= set().union(*rows)
    assert tr.num_primitives != n0  # the strategy refined
    assert _tensors_off(device, tr) == []

    tr.step = STEPS
    tr.save()
    resumed = Trainer(override(cfg, iterations=STEPS + 2), scene, split, run_dir, depth_priors=tr.depth_priors)
    ckpt = load_checkpoint(latest_checkpoint(run_dir / "checkpoints"))
    with torch.device("meta"):
        resumed.load(ckpt)
        rows = [resumed.train_step(step) for step in range(STEPS, STEPS + 2)]
    assert all(math.isfinite(r["loss"]) for r in rows)
    assert _tensors_off(device, resumed) == []


@pytest.mark.parametrize("backend", ["reference", "cpu"])
@pytest.mark.parametrize(("primitive", "strategy"), CASES)
def test_training_and_resume_make_nothing_on_the_default_device(scene, tmp_path, primitive, strategy, backend):
    if backend == "cpu":
        ok, why = kernels.available("cpu")  # built (or loaded) before the default device changes
        if not ok:
            pytest.skip(why)
    _train_and_resume(scene, tmp_path, _config(primitive, strategy, backend))


@pytest.mark.cuda
@pytest.mark.parametrize(("primitive", "strategy"), CASES)
def test_training_and_resume_on_cuda(scene, tmp_path, primitive, strategy):
    ok, why = kernels.available("cuda")
    assert ok, why
    _train_and_resume(scene, tmp_path, override(_config(primitive, strategy, "cuda"), device="cuda"))


@pytest.mark.parametrize(("primitive", "strategy"), CASES)
def test_trainer_puts_parameters_data_and_state_on_the_configured_device(scene, primitive, strategy):
    meta = torch.device("meta")  # a device other than the scene's (CPU); building needs no values
    cfg = override(_config(primitive, strategy, "reference"), device="meta")
    split = make_split(scene, cfg.data)
    tr = Trainer(cfg, scene, split, None, depth_priors=depth_prior_maps(scene, split.train, "auto"))
    tr.init_from_cloud(initial_cloud(scene, split.train, cfg.init, cfg.seed))
    assert {p.device for p in tr.params.values()} == {meta}
    assert _tensors_off(meta, tr) == [] and {m.device for m in tr.masks} == {meta}


def test_render_takes_the_background_to_the_parameters_device_and_dtype(scene):
    from recon.render import render

    cfg = _config("gaussian", "default", "reference")
    split = make_split(scene, cfg.data)
    tr = Trainer(cfg, scene, split, None)
    tr.init_from_cloud(initial_cloud(scene, split.train, cfg.init, cfg.seed))
    cam = scene.cameras[split.train[:1]]
    bg32 = torch.tensor([[0.2, 0.4, 0.6]])
    ref = render("gaussian", tr.params, cam, sh_degree=0, backgrounds=bg32, backend="reference")
    out = render("gaussian", tr.params, cam, sh_degree=0, backgrounds=bg32.double(), backend="reference")
    torch.testing.assert_close(out.rgb, ref.rgb, rtol=0, atol=0)
    empty = {k: v[:0] for k, v in tr.params.items()}  # nothing drawn: the image is the background
    out = render("gaussian", empty, cam, sh_degree=0, backgrounds=bg32.double(), backend="reference")
    torch.testing.assert_close(out.rgb, bg32.expand_as(out.rgb.reshape(-1, 3)).reshape(out.rgb.shape))


def test_cli_device_follows_a_gpu_backend_and_is_checked(tmp_path, capsys, monkeypatch):
    from recon.cli import main
    from recon.train.cli import TrainArgs, _config_from_args

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)  # resolution only; nothing runs
    args = dict(out=str(tmp_path / "r"), data="synthetic")
    assert _config_from_args(TrainArgs(**args, backend="cuda")).device == "cuda"
    assert _config_from_args(TrainArgs(**args, device="cuda")).device == "cuda"
    assert _config_from_args(TrainArgs(**args)).device == "cpu"
    assert "pass --device cuda" in capsys.readouterr().err  # a GPU left unused is pointed out
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    for extra, message in (
        (["--backend", "cuda"], "device (--device) cuda: torch sees no CUDA GPU here"),
        (["--device", "cpu", "--backend", "gsplat"], "renders on a GPU but device is cpu"),
    ):
        assert main(["train", "--data", "synthetic", "--out", str(tmp_path / "r"), *extra]) == 2
        err = capsys.readouterr().err.strip()
        assert message in err and len(err.splitlines()) == 1
        assert not (tmp_path / "r").exists()


def test_a_gpu_run_evaluates_on_a_cpu_machine(tmp_path, monkeypatch):
    """Checkpoints are read onto the CPU: eval renders on the run's device, or on the CPU when it is absent."""
    import json

    from recon.config import load_preset
    from recon.train.cli import SYNTHETIC, _evaluate, run_training

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    config = override(load_preset("demo"), **{"data.path": SYNTHETIC, "iterations": 2, "data.synthetic_width": 32,
                                              "data.synthetic_height": 24, "init.max_points": 100})  # fmt: skip
    out = tmp_path / "run"
    out.mkdir()
    run_training(config, out, quiet=True)
    on_cpu = _evaluate(out, images=False)
    saved = json.loads((out / "config.json").read_text())
    (out / "config.json").write_text(json.dumps({**saved, "device": "cuda", "backend": "cuda"}))
    on_gpu_run = _evaluate(out, images=False)
    assert [v["psnr"] for v in on_gpu_run.views] == [v["psnr"] for v in on_cpu.views]
    assert on_gpu_run.ssim == on_cpu.ssim
