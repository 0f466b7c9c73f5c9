"""The wild variants of the demo scene: exact perturbations of the training views, clean test views."""

from __future__ import annotations

import pytest
import torch

from recon.config import DataConfig
from recon.data.synthetic_wild import make_synthetic_variant
from recon.errors import ConfigError
from recon.run import load_training_scene

KW = {"num_views": 6, "width": 32, "height": 24, "test_every": 3}


@pytest.fixture(scope="module")
def clean():
    return make_synthetic_variant("synthetic", **KW)


def test_appearance_variant_is_clean_times_known_gains(clean):
    wild = make_synthetic_variant("synthetic:wild-appearance", **KW)
    gains = wild.meta["wild"]["gains"]
    for i in range(len(clean)):
        assert torch.allclose(wild.images[i], clean.images[i] * gains[i], atol=1e-6)
    for i in clean.split["test"]:
        assert torch.equal(wild.images[i], clean.images[i]) and torch.equal(gains[i], torch.ones(3))
    train = gains[clean.split["train"]]
    assert bool((train <= 1).all()) and bool((train < 0.999).all())


@pytest.mark.parametrize("variant", ["wild-occluders", "wild-occluders-all"])
def test_occluders_change_exactly_their_masked_pixels(clean, variant):
    wild = make_synthetic_variant(f"synthetic:{variant}", **KW)
    occluders = wild.meta["wild"]["occluders"]
    train = {clean.names[i] for i in clean.split["train"]}
    assert occluders and (set(occluders) == train if variant.endswith("-all") else set(occluders) < train)
    for i, name in enumerate(clean.names):
        changed = (wild.images[i] != clean.images[i]).any(-1)
        truth = occluders.get(name, torch.zeros_like(changed))
        assert not bool((changed & ~truth).any())  # nothing outside the occluder moved
        assert int((changed & truth).sum()) >= 0.9 * int(truth.sum())  # (a pixel may match by chance)
        assert 0 <= truth.float().mean() <= 0.13


def test_variant_reachable_from_the_data_option_and_repeatable():
    data = DataConfig(path="synthetic:wild", synthetic_width=32, synthetic_height=24, synthetic_views=6, test_every=3)
    a, b = load_training_scene(data), load_training_scene(data)
    assert a.meta["variant"] == "wild" and set(a.meta["wild"]["kinds"]) == {"appearance", "occluders", "rain"}
    assert all(torch.equal(x, y) for x, y in zip(a.images, b.images))


def test_sfm_points_are_a_sparse_noisy_subset_and_join_other_variants(clean):
    """``sfm-points``: SFM_POINTS of the exact surface samples, moved by SFM_NOISE x extent per axis
    (measured against the exact points they came from), the same draw in every variant of a seed;
    joined with ``+``, the images are those of the other variant."""
    from recon.data.synthetic_wild import SFM_NOISE, SFM_POINTS

    sfm = make_synthetic_variant("synthetic:sfm-points", **KW)
    both = make_synthetic_variant("synthetic:wild-occluders+sfm-points", **KW)
    occ = make_synthetic_variant("synthetic:wild-occluders", **KW)
    assert sfm.points.shape == (SFM_POINTS, 3) and torch.equal(sfm.points, both.points)
    assert all(torch.equal(a, b) for a, b in zip(sfm.images, clean.images))
    assert all(torch.equal(a, b) for a, b in zip(both.images, occ.images))
    exact = clean.points.float()
    # distance to the nearest exact sample: at most the true displacement, so the upper bound is safe
    offset = sfm.points - exact[torch.cdist(sfm.points, exact).argmin(1)]  # [P, 3]
    extent = float((exact.amax(0) - exact.amin(0)).norm())
    assert 0.5 * SFM_NOISE * extent < float(offset.std()) <= 1.1 * SFM_NOISE * extent
    colours = {tuple(c.tolist()) for c in clean.point_colors}
    assert all(tuple(c.tolist()) in colours for c in sfm.point_colors)  # exact colours of kept samples
    with pytest.raises(ConfigError, match="unknown synthetic variant 'rain'"):
        make_synthetic_variant("synthetic:wild-occluders+rain", **KW)


def test_unknown_variant_is_a_config_error():
    with pytest.raises(ConfigError, match="unknown synthetic variant 'wild-snow'"):
        make_synthetic_variant("synthetic:wild-snow", **KW)
