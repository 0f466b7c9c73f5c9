"""Trainer: learns, is reproducible, resumes bit-for-bit, stops on NaN keeping the checkpoint."""

from __future__ import annotations

import pytest
import torch

from recon.config import TrainConfig, override
from recon.errors import ReconError
from recon.run import latest_checkpoint, load_checkpoint, load_training_scene
from recon.train.setup import depth_prior_maps, initial_cloud, make_split
from recon.train.trainer import Trainer


def _config(primitive: str = "gaussian", iterations: int = 12, **kw) -> TrainConfig:
    base = {
        "data.path": "synthetic", "data.synthetic_width": 32, "data.synthetic_height": 24,
        "data.synthetic_views": 6, "data.test_every": 3, "primitive": primitive, "iterations": iterations,
        "init.max_points": 200, "optim.sh_degree": 1, "optim.sh_increase_every": 5,
        "strategy.refine_start": 3, "strategy.refine_every": 4, "checkpoint_every": 0,
        "sparse.enabled": True, "sparse.pseudo_start": 2, "sparse.pseudo_every": 3, "sparse.floater_every": 5,
    }  # fmt: skip
    base.update(kw)
    return override(TrainConfig(), **base)


@pytest.fixture(scope="module")
def scene():
    return load_training_scene(_config().data)


def _trainer(cfg, scene, run_dir=None) -> Trainer:
    split = make_split(scene, cfg.data)
    tr = Trainer(cfg, scene, split, run_dir, depth_priors=depth_prior_maps(scene, split.train, "auto"))
    tr.init_from_cloud(initial_cloud(scene, split.train, cfg.init, cfg.seed))
    return tr


def _params(tr):
    return {k: v.detach().clone() for k, v in tr.params.items()}


def test_two_runs_same_seed_identical(scene):
    a = _trainer(_config(), scene)
    ra = a.train(install_sigint=False)
    b = _trainer(_config(), scene)
    b.train(install_sigint=False)
    pa, pb = _params(a), _params(b)
    assert pa.keys() == pb.keys()
    for k in pa:
        assert torch.equal(pa[k], pb[k]), k
    assert ra.step == 12 and {"pearson", "ranking"} <= set(ra.log[-1] if ra.log else {"pearson": 0, "ranking": 0})


def test_training_reduces_loss(scene):
    cfg = _config(iterations=40, **{"sparse.enabled": False, "data.synthetic_views": 6})
    tr = _trainer(cfg, scene)
    res = tr.train(install_sigint=False)
    first = [r["l1"] for r in res.log[:1]]
    assert res.log[-1]["l1"] < first[0]


def test_resume_is_bit_for_bit(scene, tmp_path):
    full = _trainer(_config(iterations=12), scene)
    full.train(install_sigint=False)
    part = _trainer(_config(iterations=12), scene, tmp_path)
    # stop after step 7 the way Ctrl-C does: the loop ends and writes a checkpoint
    res = part.train(lambda step, *_: step == 7 and part.request_stop(), install_sigint=False)
    assert res.interrupted
    resumed = Trainer(_config(iterations=12), scene, part.split, tmp_path, depth_priors=part.depth_priors)
    resumed.load(load_checkpoint(latest_checkpoint(tmp_path / "checkpoints")))
    assert resumed.step == 7
    resumed.train(install_sigint=False)
    for k, v in _params(full).items():
        assert torch.equal(v, resumed.params[k].detach()), k


@pytest.mark.parametrize("primitive", ["triangle", "convex"])
def test_other_primitives_train_and_refine(scene, primitive):
    cfg = _config(primitive, iterations=5, **{"init.max_points": 60, "data.synthetic_views": 6})
    tr = _trainer(cfg, scene)
    res = tr.train(install_sigint=False)
    assert res.step == 5 and all(torch.isfinite(p).all() for p in tr.params.values())
    n = tr.num_primitives
    for p in tr.params.values():
        assert p.shape[0] == n


def test_nan_loss_stops_and_keeps_checkpoint(scene, tmp_path):
    cfg = _config(iterations=6, checkpoint_every=2)
    tr = _trainer(cfg, scene, tmp_path)
    tr.train(install_sigint=False)
    good = load_checkpoint(latest_checkpoint(tmp_path / "checkpoints"))
    tr2 = Trainer(override(cfg, iterations=10), scene, tr.split, tmp_path, depth_priors=tr.depth_priors)
    tr2.load(good)
    with torch.no_grad():
        tr2.params["sh0"].fill_(float("nan"))
    with pytest.raises(ReconError, match="became nan at step 7.*last good checkpoint"):
        tr2.train(install_sigint=False)
    assert load_checkpoint(latest_checkpoint(tmp_path / "checkpoints")).step == 6


def test_auto_init_never_uses_a_datasets_points_built_with_test_views(scene, monkeypatch):
    """A COLMAP-like scene's own points saw the test views: with a sparse split, auto asks the
    priors (training views only); with every view training, the scene's points are fine."""
    import dataclasses

    import recon.priors.init as priors_init
    from recon.config import InitConfig
    from recon.priors.init import PointCloud

    asked = []

    def fake_prior(scene_, train_ids, method, workdir=None):
        asked.append(list(train_ids))
        return PointCloud(torch.zeros(7, 3), torch.zeros(7, 3), "mvs")

    monkeypatch.setattr(priors_init, "initial_point_cloud", fake_prior)
    colmap_like = dataclasses.replace(scene, format="colmap")
    sparse = initial_cloud(colmap_like, [0, 1], InitConfig(), seed=0)
    assert sparse.source == "mvs" and asked == [[0, 1]]
    every = initial_cloud(colmap_like, list(range(len(scene))), InitConfig(), seed=0)
    assert every.source == "scene" and len(asked) == 1


def test_mcmc_trains_within_budget_and_resumes_bit_for_bit(scene, tmp_path):
    """MCMC end to end: the loss drops, the count grows to the budget and never passes it, and a
    run stopped mid-way (noise RNG, relocation state and Adam moments in the checkpoint) resumes
    to exactly the parameters of an uninterrupted run."""
    kw = {"strategy.name": "mcmc", "strategy.cap_max": 260, "strategy.refine_start": 4, "strategy.refine_every": 4,
          "sparse.enabled": False, "init.max_points": 200}
    full = _trainer(_config(iterations=30, **kw), scene)
    res = full.train(install_sigint=False)
    counts = [r["count"] for r in res.log]
    assert max(counts) <= 260 and counts[-1] > 200  # grew towards the cap, never above it
    assert res.log[-1]["l1"] < res.log[0]["l1"]
    part = _trainer(_config(iterations=30, **kw), scene, tmp_path)
    part.train(lambda step, *_: step == 13 and part.request_stop(), install_sigint=False)
    resumed = Trainer(_config(iterations=30, **kw), scene, part.split, tmp_path)
    resumed.load(load_checkpoint(latest_checkpoint(tmp_path / "checkpoints")))
    assert resumed.step == 13
    resumed.train(install_sigint=False)
    for k, v in _params(full).items():
        assert torch.equal(v, resumed.params[k].detach()), k


def test_anisotropy_penalty_counts_only_ratios_above_the_limit(scene):
    """aniso_reg * mean(max(s_max / s_min - aniso_max, 0)) on hand-set scales."""
    tr = _trainer(_config(**{"loss.aniso_reg": 0.5, "loss.aniso_max": 10.0, "init.max_points": 3}), scene)
    scales = torch.log(torch.tensor([[1.0, 2.0, 4.0], [0.01, 1.0, 1.0], [2.0, 0.1, 3.0]]))  # ratios 4, 100, 30
    with torch.no_grad():
        tr.params["scales"].data = scales.clone()
    term = tr._regularisers()["aniso_reg"]
    assert torch.allclose(term, torch.tensor(0.5 * (0.0 + 90.0 + 20.0) / 3), rtol=1e-5)
    term.backward()  # flows into the scales of the penalised Gaussians only
    assert tr.params["scales"].grad[0].abs().max() == 0 and tr.params["scales"].grad[1].abs().max() > 0


def test_warp_and_metric_depth_terms_train_and_are_off_by_default(scene):
    on = _trainer(_config(iterations=10, **{"sparse.warp_weight": 0.5, "sparse.warp_start": 2,
                                            "sparse.depth_weight": 0.1}), scene)
    res = on.train(install_sigint=False)
    assert "warp" in res.log[-1] and 0 < res.log[-1]["warp"] < 0.5  # weighted mean L1 of colours in [0, 1]
    assert 0 < res.log[-1]["depth"] < 0.1  # weighted relative error against the scene's exact depth
    off = _trainer(_config(iterations=10), scene).train(install_sigint=False)
    assert "warp" not in off.log[-1] and "depth" not in off.log[-1]


def test_masked_protocols_train_the_object_alone_on_random_backgrounds(scene):
    """auto background: random on DTU-like protocols (targets composited with the masks, as the
    metrics are masked there), the scene's own colour elsewhere."""
    from recon.train.setup import background_color

    assert scene.masks is not None
    cfg = TrainConfig()
    assert background_color(cfg, scene, "dtu") is None
    own = scene.meta.get("background")
    expected = torch.zeros(3) if own is None else torch.tensor(own, dtype=torch.float32)
    assert torch.equal(background_color(cfg, scene, "generic"), expected)
    assert torch.equal(background_color(override(cfg, **{"loss.background": "white"}), scene, "dtu"), torch.ones(3))
    tr = _trainer(_config(), scene)
    tr.background = None  # what a dtu split gets
    bg = torch.tensor([0.2, 0.4, 0.6])
    m = tr.masks[0][..., None]
    torch.testing.assert_close(tr._target(0, bg), tr.images[0] * m + bg * (1 - m))
