"""User masks in stereo: no depth under a transient mask, the rest of the view unchanged in kind."""

from __future__ import annotations

import torch

from recon.data.scene import SceneData
from recon.priors.init import mvs_prior
from recon.priors.stereo import MVSConfig, run_mvs
from tests.priors.synthetic_views import make_views

BOX = (slice(10, 40), slice(20, 60))


def _views():
    images, cams, _, _ = make_views(3, 80, 60)
    ignore = [torch.ones(60, 80) for _ in range(3)]
    ignore[0][BOX] = 0
    return images, cams, ignore


def test_run_mvs_keeps_no_depth_under_user_masks():
    images, cams, ignore = _views()
    bounds = torch.tensor([[2.0, 8.0]] * 3)
    plain = run_mvs(list(images), cams.Ks, cams.viewmats, bounds, MVSConfig(), progress=False)
    masked = run_mvs(list(images), cams.Ks, cams.viewmats, bounds, MVSConfig(), progress=False, ignore=ignore)
    assert int((plain.depths[0][BOX] > 0).sum()) > 100  # stereo does see the box's content
    assert int((masked.depths[0][BOX] > 0).sum()) == 0
    outside = torch.ones(60, 80, dtype=torch.bool)
    outside[BOX] = False
    assert int((masked.depths[0][outside] > 0).sum()) > 0.5 * int((plain.depths[0][outside] > 0).sum())


def test_mvs_prior_passes_the_scenes_user_masks():
    images, cams, ignore = _views()
    scene = SceneData(
        list(images),
        cams,
        [f"{i}.png" for i in range(3)],
        "synthetic",
        root=".",
        user_masks=ignore,
        meta={"near": 2.0, "far": 8.0},
    )
    res = mvs_prior(scene, [0, 1, 2])
    assert int((res.depths[0][BOX] > 0).sum()) == 0 and int((res.depths[1] > 0).sum()) > 100
