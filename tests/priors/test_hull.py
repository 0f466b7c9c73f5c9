"""Visual hull by voxel carving: it must contain the object and honour projection validity."""

from __future__ import annotations

import pytest
import torch

from recon.errors import DataError
from recon.priors.hull import carve, hull_silhouette, visual_hull

from .synthetic_views import make_views


def _sphere_points(n: int = 2000) -> torch.Tensor:
    gen = torch.Generator().manual_seed(0)
    p = torch.randn(n, 3, generator=gen, dtype=torch.float64)
    return p / p.norm(dim=-1, keepdim=True) * 0.9  # clear of mask pixel aliasing


def test_hull_contains_the_sphere_and_hugs_it():
    images, cams, _, masks = make_views(8, 64, 48, arc_deg=315)
    cloud = visual_hull(list(masks), cams.Ks, cams.viewmats, list(images), resolution=64)
    keep, _ = carve(_sphere_points(), list(masks), cams.Ks, cams.viewmats, min_views=7)
    assert bool(keep.all())  # every point of the object survives carving
    r = cloud.points.norm(dim=-1)
    assert float(r.min()) > 0.85  # shell only, and nothing carved inside the sphere's interior
    assert float(r.median()) < 1.2  # a ring of 8 views leaves the hull close to the sphere
    # Colours come from the images: mean colour near the sphere's mean image colour.
    fg = masks.bool()
    assert (cloud.colors.mean(0) - images[fg].mean(0)).abs().max() < 0.1


def test_out_of_image_projection_counts_as_outside():
    # The pitfall of METHODS.md 5.4: validity must not be ignored. A point behind camera 0 and a
    # point far outside its image are inside no mask, even with an all-ones mask.
    _, cams, _, _ = make_views(2, 32, 24)
    ones = [torch.ones(24, 32), torch.ones(24, 32)]
    c2w = torch.linalg.inv(cams.viewmats[0].double())
    behind = c2w[:3, 3] - 2 * c2w[:3, 2]
    aside = c2w[:3, 3] + 3 * c2w[:3, 2] + 50 * c2w[:3, 0]
    front = torch.zeros(3, dtype=torch.float64)
    _, inside = carve(torch.stack([behind, aside, front]), ones, cams.Ks, cams.viewmats, min_views=1)
    assert inside[0].tolist() == [False, False, True]


def test_masks_that_do_not_match_raise():
    _, cams, _, masks = make_views(3, 32, 24)
    bad = [masks[0], torch.roll(masks[1], 12, dims=1) * 0, masks[2]]
    with pytest.raises(DataError, match="mask"):
        visual_hull(bad, cams.Ks, cams.viewmats, min_views=3, resolution=16,
                    bounds=(torch.full((3,), -1.5), torch.full((3,), 1.5)))


def test_hull_silhouette_is_the_mask_at_a_carving_view_and_contains_the_object_elsewhere():
    from recon.data.synthetic import make_synthetic_scene

    scene = make_synthetic_scene(num_views=8, width=48, height=40)  # exact object masks
    train = [0, 2, 4, 6]
    masks, cams = [scene.masks[i] for i in train], scene.cameras
    near, far = scene.meta["near"], scene.meta["far"]
    own = hull_silhouette(cams[2], masks, cams.Ks[train], cams.viewmats[train], near, far, 96)
    assert torch.equal(own, scene.masks[2] > 0.5)  # the hull lies inside this view's own cone
    for v in (1, 3, 5):  # views that carved nothing: the hull's shadow covers the object, and more
        sil = hull_silhouette(cams[v], masks, cams.Ks[train], cams.viewmats[train], near, far, 96)
        obj = scene.masks[v] > 0.5
        assert int((obj & ~sil).sum()) <= 0.02 * int(obj.sum())  # a few rim pixels between depth samples
        assert int(sil.sum()) > int(obj.sum())
    empty = hull_silhouette(cams[1], masks, cams.Ks[train], cams.viewmats[train], far * 3, far * 4, 16)
    assert not bool(empty.any())  # nothing of the hull that far behind the object
