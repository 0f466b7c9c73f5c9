"""User masks: read and checked (errors name the file), honoured in the loss with zero gradient."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from recon.errors import DataError
from recon.run import load_training_scene
from recon.train.losses import photometric_loss
from recon.wild.masks import read_user_masks
from tests.wild.conftest import make_trainer, wild_config


def _write(path, arr, fmt=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr.astype(np.uint8)).save(path, format=fmt)


def test_reads_0_1_and_0_255_masks_by_photo_name(tmp_path):
    a = np.zeros((4, 6))
    a[1:3, 2:4] = 1
    _write(tmp_path / "a.png", a)
    _write(tmp_path / "b.jpg.png", 255 * a)
    masks = read_user_masks(tmp_path, ["a.jpg", "b.jpg"], [(4, 6), (4, 6)])
    for m in masks:
        assert torch.equal(m, torch.from_numpy(a).float())


def test_missing_mask_names_the_photo_and_folder(tmp_path):
    _write(tmp_path / "a.png", np.ones((4, 6)))
    with pytest.raises(DataError, match=r"no mask for photo b\.jpg") as err:
        read_user_masks(tmp_path, ["a.jpg", "b.jpg"], [(4, 6), (4, 6)])
    assert str(tmp_path) in str(err.value)


def test_wrong_size_mask_names_the_file(tmp_path):
    _write(tmp_path / "a.png", np.ones((5, 6)))
    with pytest.raises(DataError, match=r"a\.png: mask is 6x5 but photo a\.jpg is 6x4"):
        read_user_masks(tmp_path, ["a.jpg"], [(4, 6)])


def test_non_binary_mask_names_the_file(tmp_path):
    grey = np.zeros((4, 6))
    grey[0, 0] = 128
    _write(tmp_path / "a.png", grey)
    with pytest.raises(DataError, match=r"a\.png: mask is not binary .*128"):
        read_user_masks(tmp_path, ["a.jpg"], [(4, 6)])


@pytest.mark.parametrize("ssim_lambda", [0.0, 0.2])
def test_weighted_loss_has_zero_gradient_under_the_mask(ssim_lambda):
    render = torch.rand(1, 20, 24, 3, requires_grad=True)
    target = torch.rand(1, 20, 24, 3)
    weight = torch.ones(20, 24)
    weight[5:12, 6:15] = 0
    loss, _ = photometric_loss(render, target, ssim_lambda, weight)
    loss.backward()
    assert torch.all(render.grad[0][weight == 0] == 0)
    assert torch.all(render.grad[0][weight == 1].abs().sum(-1) > 0)


def test_weighted_loss_with_unit_weights_is_the_plain_loss():
    render, target = torch.rand(1, 20, 24, 3), torch.rand(1, 20, 24, 3)
    plain, _ = photometric_loss(render, target, 0.2)
    weighted, _ = photometric_loss(render, target, 0.2, torch.ones(20, 24))
    assert torch.allclose(plain, weighted, rtol=1e-6)


def test_trainer_ignores_photo_pixels_under_user_masks(tmp_path):
    """--masks DIR: with a photo scribbled over under its mask, training takes exactly the same step."""
    cfg = wild_config(**{"wild.mode": "off", "wild.masks": str(tmp_path), "loss.ssim_lambda": 0.0})
    scene = load_training_scene(cfg.data)
    mask = np.ones((24, 32))
    mask[4:14, 8:20] = 0
    for name in scene.names:
        _write(tmp_path / name, 255 * mask)
    a = make_trainer(cfg, scene)
    scribbled = [im.clone() for im in scene.images]
    for im in scribbled:
        im[4:14, 8:20] = torch.rand(10, 12, 3)
    b = make_trainer(cfg, type(scene)(**{**scene.__dict__, "images": scribbled}))
    assert a.wild is not None and a.wild.appearance is None and not a.wild.robust
    ra, rb = a.train_step(0), b.train_step(0)
    assert ra["loss"] == rb["loss"]
    for k, p in a.params.items():
        assert torch.equal(p, b.params[k]), k
    changed = make_trainer(
        wild_config(**{"wild.mode": "off", "loss.ssim_lambda": 0.0}),
        type(scene)(**{**scene.__dict__, "images": scribbled}),
    )
    assert changed.train_step(0)["loss"] != ra["loss"]  # without the masks the scribble counts
