"""Per-image appearance: identity is a no-op, known gains are recovered, resume restores it, NeRF-W halves."""

from __future__ import annotations

import pytest
import torch

from recon.config import WildConfig
from recon.data.synthetic_wild import make_synthetic_variant
from recon.errors import ConfigError
from recon.run import find_checkpoint
from recon.wild.appearance import IDENTITY, AffineAppearance, apply_affine, fit_affine
from recon.wild.protocol import nerfw_halves, reference_transform
from recon.wild.terms import WildTerms, make_appearance
from tests.wild.conftest import make_trainer, wild_config


@pytest.fixture(scope="module")
def appearance_scene():
    """The wild-appearance variant and the clean scene it was made from (32x24, 6 views)."""
    kw = {"num_views": 6, "width": 32, "height": 24, "test_every": 3}
    return make_synthetic_variant("synthetic:wild-appearance", **kw), make_synthetic_variant("synthetic", **kw)


def test_identity_transform_is_bitwise_noop():
    rgb = torch.rand(2, 5, 7, 3)
    assert torch.equal(apply_affine(rgb, IDENTITY), rgb)


def test_first_step_with_appearance_at_identity_equals_plain_training():
    """Step 0 (Adam fit: before any appearance update, robust loss still in warm-up): same loss, same parameters."""
    plain = make_trainer(wild_config(**{"wild.mode": "off"}))
    wild = make_trainer(wild_config(**{"wild.mode": "on", "wild.robust_start": 0.5, "wild.appearance_fit": "adam"}))
    assert plain.wild is None and wild.wild is not None and wild.wild.appearance is not None
    a, b = plain.train_step(0), wild.train_step(0)
    assert a["loss"] == b["loss"] and a["l1"] == b["l1"] and b["appearance_reg"] == 0.0
    for k, p in plain.params.items():
        assert torch.equal(p, wild.params[k]), k


def test_fit_affine_recovers_known_gains(appearance_scene):
    """Closed form: each perturbed training view against its clean image gives the gains within 2 % (0.2 % here)."""
    wild, clean = appearance_scene
    gains = wild.meta["wild"]["gains"]  # [V, 3], ground truth
    for i in wild.split["train"]:
        t = fit_affine(clean.images[i], wild.images[i])
        assert torch.allclose(torch.diagonal(t[:, :3]), gains[i], rtol=2e-3)
        assert t[:, 3].abs().max() < 1e-3


def test_weighted_fit_equals_the_fit_on_the_kept_pixels():
    """0/1 weights: the same transform as the plain fit on the kept pixels alone (ridge per unit of weight)."""
    gen = torch.Generator().manual_seed(3)
    src, dst = torch.rand(6, 8, 3, generator=gen), torch.rand(6, 8, 3, generator=gen)
    keep = torch.rand(6, 8, generator=gen) > 0.4
    weighted = fit_affine(src, dst, 1e-2, keep.float())
    assert torch.allclose(weighted, fit_affine(src[keep], dst[keep], 1e-2), atol=1e-6)
    assert not torch.allclose(weighted, fit_affine(src, dst, 1e-2), atol=1e-3)


def test_closed_fit_recovers_known_gains_through_the_wild_terms(appearance_scene):
    """Default fit (closed): ``in_view(v, render, photo)`` refits view v's transform and returns the render in
    it; with the clean image as the render the known gains come back within 2 %. The trainer hands it the photo."""
    wild, clean = appearance_scene
    train = wild.split["train"]
    gains = wild.meta["wild"]["gains"]
    terms = WildTerms(WildConfig(mode="on"), 10, [wild.names[i] for i in train], None, appearance=True, robust=False)
    for v, i in enumerate(train):
        out = terms.in_view(v, clean.images[i][None], wild.images[i][None])  # [1, H, W, 3]
        transform = terms.appearance.transforms[v]
        assert ((apply_affine(torch.ones(3), transform) / gains[i]) - 1).abs().max() < 0.02
        assert torch.equal(out[0], apply_affine(clean.images[i], transform))
    trainer = make_trainer(wild_config("synthetic:wild-appearance", **{"wild.mode": "on"}))
    v = trainer.view_index(0)
    trainer.train_step(0)
    assert not torch.equal(trainer.wild.appearance.transforms[v], IDENTITY)


def test_adam_training_of_transforms_recovers_known_gains(appearance_scene):
    """The adam fit: transforms optimised by Adam on L1 against the photos, scene fixed at the truth."""
    wild, clean = appearance_scene
    train = wild.split["train"]
    model = AffineAppearance(len(train), lr=5e-3)
    for step in range(400):
        v = step % len(train)
        loss = (model(v, clean.images[train[v]]) - wild.images[train[v]]).abs().mean()
        loss.backward()
        model.step()
    for v, i in enumerate(train):  # the gain is the transform's response to white (grey photos leave A's
        ratio = apply_affine(torch.ones(3), model.transforms[v]) / wild.meta["wild"]["gains"][i]  # rows ill-posed)
        assert (ratio - 1).abs().max() < 0.02, (i, ratio)


@pytest.mark.parametrize("model", ["affine", "bilateral"])
def test_resume_restores_appearance_bit_for_bit(tmp_path, model):
    grid = {"wild.bilateral_cells": 4, "wild.bilateral_bins": 2}
    cfg = wild_config(iterations=6, checkpoint_every=3, **{"wild.mode": "on", "wild.appearance": model, **grid})
    full = make_trainer(cfg)
    full.train(install_sigint=False)
    run = tmp_path / "run"
    first = make_trainer(cfg, run_dir=run)
    first.config = cfg  # stop at 3 like an interrupted run
    for step in range(3):
        first.train_step(step)
    first.step = 3
    first.save()
    resumed = make_trainer(cfg, run_dir=run)
    resumed.load(find_checkpoint(run / "checkpoints"))
    assert torch.equal(resumed.wild.appearance.transforms, first.wild.appearance.transforms)
    assert not torch.equal(resumed.wild.appearance.transforms[0], make_appearance(cfg.wild, 1).transforms[0])
    resumed.train(install_sigint=False)
    assert torch.equal(resumed.wild.appearance.transforms, full.wild.appearance.transforms)
    for k, p in full.params.items():
        assert torch.equal(p, resumed.params[k]), k


def test_nerfw_halves_undo_a_known_transform():
    gt = torch.rand(8, 10, 3) * 0.5 + 0.2
    known = torch.tensor([[0.8, 0.1, 0.0, 0.05], [0.0, 0.9, 0.0, 0.0], [0.05, 0.0, 0.7, 0.02]])
    inverse = torch.linalg.inv(known[:, :3])
    render = (gt - known[:, 3]) @ inverse.T  # apply_affine(render, known) == gt
    pred, photo = nerfw_halves(render, gt)
    assert pred.shape == (8, 5, 3) and torch.equal(photo, gt[:, 5:])
    assert torch.allclose(pred, photo, atol=1e-4)


def test_reference_transform_mean_name_and_error():
    state = {"names": ["a.png", "b.png"], "appearance": {"transforms": [IDENTITY.tolist(), (2 * IDENTITY).tolist()]}}
    assert torch.allclose(reference_transform(state, "mean"), 1.5 * IDENTITY)
    assert torch.equal(reference_transform(state, "b.png"), 2 * IDENTITY)
    assert reference_transform(None, "mean") is None
    with pytest.raises(ConfigError, match="'c.png' is not a training image"):
        reference_transform(state, "c.png")
