"""Streak masks: synthetic rain is caught, edges and clean images are not."""

from __future__ import annotations

import math

import torch

from recon.data.synthetic_wild import make_synthetic_variant
from recon.wild.weather import line_kernel, streak_mask
from tests.wild.conftest import imperfect_render


def test_line_kernel_is_a_centred_line_of_the_given_euclidean_length():
    assert torch.equal(line_kernel(5, 0.0)[2], torch.ones(5)) and int(line_kernel(5, 0.0).sum()) == 5
    assert torch.equal(line_kernel(5, math.pi / 2)[:, 2], torch.ones(5))
    diagonal = line_kernel(5, math.pi / 4)
    assert torch.equal(diagonal, torch.diag(torch.tensor([0.0, 1, 1, 1, 0])))  # 5 px long: 3 pixels
    for angle in (0.3, 1.83, 2.5):
        k = line_kernel(5, angle)
        assert k.shape == (5, 5) and k[2, 2] == 1 and torch.equal(k, k.flip(0, 1))


def test_parallel_streaks_are_masked_and_edges_across_them_are_not():
    residual = torch.zeros(40, 40)
    for x0 in range(3, 37, 6):
        residual[5:15, x0] = 0.5  # vertical streaks
    residual[30, 2:38] = 0.5  # one horizontal edge
    mask = streak_mask(residual)
    assert bool(mask[5:15, 3:37:6].all()) and int(mask[:20].sum()) == 60
    assert int(mask[30].sum()) == 0


def test_rain_variant_recall_and_false_drops():
    """Measured on the 64x48 rain variant against a 30 dB stand-in render: recall 0.62, false drops 1.1 %."""
    kw = {"num_views": 24, "width": 64, "height": 48, "test_every": 8}
    clean = make_synthetic_variant("synthetic", **kw)
    wild = make_synthetic_variant("synthetic:wild-rain", **kw)
    recall, false_drop, clean_drop = [], [], []
    for i, name in enumerate(wild.names):
        if i in wild.split["test"]:
            continue
        render, rain = imperfect_render(clean.images[i]), wild.meta["wild"]["rain"][name]
        mask = streak_mask((render - wild.images[i]).abs().mean(-1))
        recall.append(float((mask & rain).sum() / rain.sum()))
        false_drop.append(float((mask & ~rain).sum() / (~rain).sum()))
        clean_drop.append(float(streak_mask((render - clean.images[i]).abs().mean(-1)).float().mean()))
    assert sum(recall) / len(recall) > 0.55
    assert sum(false_drop) / len(false_drop) < 0.02 and sum(clean_drop) / len(clean_drop) < 0.02
