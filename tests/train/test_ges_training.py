"""Training GES (``--primitive ges``): learns the demo scene, learns its shape, densifies like Gaussians."""

from __future__ import annotations

import pytest
import torch

from recon.config import TrainConfig, override
from recon.errors import ConfigError
from recon.primitives import spec
from recon.render import render_views
from recon.run import load_training_scene
from recon.train.losses import psnr
from recon.train.optim import base_lrs
from recon.train.setup import initial_cloud, make_split
from recon.train.trainer import Trainer

# Measured on this scene (seed 0, 60 steps, reference backend): GES 18.66 dB, Gaussians 18.75 dB on
# the 2 test views, from 14.49 dB at step 0.
MIN_TEST_PSNR = 17.5


def _config(primitive: str = "ges", **kw) -> TrainConfig:
    base = {
        "data.path": "synthetic", "data.synthetic_width": 32, "data.synthetic_height": 24,
        "data.synthetic_views": 8, "data.test_every": 4, "data.protocol": "generic", "primitive": primitive,
        "iterations": 60, "init.method": "scene", "init.max_points": 300, "optim.sh_degree": 0,
        "strategy.refine_start": 20, "strategy.refine_every": 20, "strategy.reset_every": 100000,
        "checkpoint_every": 0, "sparse.enabled": False, "backend": "reference",
    }  # fmt: skip
    return override(TrainConfig(), **{**base, **kw})


def test_ges_trains_on_the_demo_scene_and_learns_its_shape():
    cfg = _config()
    scene = load_training_scene(cfg.data)
    split = make_split(scene, cfg.data)
    tr = Trainer(cfg, scene, split, None)
    tr.init_from_cloud(initial_cloud(scene, split.train, cfg.init, cfg.seed))
    n0 = tr.num_primitives
    assert tr.optimizers["shape"].param_groups[0]["lr"] == pytest.approx(1e-3)
    res = tr.train(install_sigint=False)
    assert "frequency" in res.log[-1]  # the frequency-modulated L1 is on by default
    outs = render_views("ges", tr.params, scene.cameras[list(split.test)], sh_degree=0, background=tr.background,
                        backend="reference")  # fmt: skip
    test_psnr = sum(psnr(o.rgb[0].clamp(0, 1), scene.images[i]) for o, i in zip(outs, split.test)) / len(outs)
    assert test_psnr >= MIN_TEST_PSNR
    beta = spec("ges").activate_one("shape", tr.params["shape"].detach())
    assert (beta != 2.0).all() and beta.std() > 1e-3  # every shape was trained
    assert tr.num_primitives > n0  # the Gaussian strategy densified, the shape rows followed
    assert all(p.shape[0] == tr.num_primitives for p in tr.params.values())


def test_ges_takes_the_gaussian_learning_rates_plus_its_shape():
    o, g = TrainConfig().optim, TrainConfig().section("gaussian")
    expected = {"means": g.means_lr * 2.5, "quats": g.quats_lr, "scales": g.scales_lr, "opacities": g.opacities_lr,
                "sh0": o.sh0_lr, "shN": o.shN_lr}  # fmt: skip
    assert base_lrs(_config("gaussian"), 2.5) == expected
    assert base_lrs(_config(), 2.5) == {**expected, "shape": 1e-3}
    tri = base_lrs(_config("triangle"), 2.5)
    t = TrainConfig().section("triangle")
    assert tri["vertices"] == t.vertices_lr * 2.5 and tri["opacities"] == t.opacities_lr


def test_a_strategy_of_another_family_is_a_config_error():
    cfg = _config(**{"strategy.name": "triangle"})
    scene = load_training_scene(cfg.data)
    with pytest.raises(ConfigError, match="not made for ges"):
        Trainer(cfg, scene, make_split(scene, cfg.data), None)
    Trainer(_config(**{"strategy.name": "mcmc"}), scene, make_split(scene, cfg.data), None)


def test_shape_parameter_survives_a_split():
    cfg = _config()
    scene = load_training_scene(cfg.data)
    tr = Trainer(cfg, scene, make_split(scene, cfg.data), None)
    tr.init_from_cloud(initial_cloud(scene, tr.train_ids, cfg.init, cfg.seed))
    with torch.no_grad():
        tr.params["shape"].copy_(torch.linspace(-1, 1, tr.num_primitives))
    from recon.strategy.default import split_gaussians

    mask = torch.zeros(tr.num_primitives, dtype=torch.bool)
    mask[:3] = True
    kept = tr.params["shape"][3:].detach().clone()
    split_gaussians(tr.params, tr.optimizers, tr.strategy_state, mask)
    shape = tr.params["shape"].detach()
    assert torch.equal(shape[: len(kept)], kept)
    assert torch.equal(shape[len(kept) :], torch.linspace(-1, 1, len(kept) + 3)[:3].repeat(2))
