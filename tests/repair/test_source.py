"""Pseudo views: cameras between training cameras, distance weights, repaired views against exact renders."""

from __future__ import annotations

import math

import pytest
import torch

from recon.cameras import Cameras
from recon.data.synthetic import default_world, look_at, make_synthetic_scene, render_world
from recon.render.render import RenderOutput
from recon.repair.source import (
    PseudoViewConfig,
    PseudoViewSource,
    RepairedViews,
    between_cameras,
    distance_weights,
    interpolate_camera,
)

TARGET = torch.tensor([0.0, 0.0, 0.3], dtype=torch.float64)


def _ring(azimuths_deg: list[float], radius: float = 4.0, height: float = 1.0) -> tuple[Cameras, torch.Tensor]:
    a = torch.tensor(azimuths_deg, dtype=torch.float64).deg2rad()
    eyes = torch.stack([radius * a.cos(), radius * a.sin(), torch.full_like(a, height)], -1)
    K = torch.tensor([[40.0, 0, 24], [0, 40.0, 20], [0, 0, 1]]).expand(len(a), 3, 3)
    return Cameras.create(K, look_at(eyes, TARGET), 48, 40), eyes


def test_interpolated_camera_is_the_rotation_midpoint_on_the_chord():
    cams, eyes = _ring([10.0, 70.0])
    mid = interpolate_camera(cams[0], cams[1], 0.5)
    # the geodesic midpoint of two rotations about the vertical axis: the ring camera at 40 degrees
    expected = _ring([40.0])[0].viewmats[0, :3, :3]
    assert torch.allclose(mid.viewmats[0, :3, :3], expected, atol=1e-5)
    assert torch.allclose(mid.centers[0].double(), 0.5 * (eyes[0] + eyes[1]), atol=1e-5)  # on the chord
    assert torch.allclose(interpolate_camera(cams[0], cams[1], 0.0).viewmats, cams.viewmats[:1], atol=1e-5)
    assert torch.allclose(interpolate_camera(cams[0], cams[1], 1.0).viewmats, cams.viewmats[1:], atol=1e-5)
    r = mid.viewmats[0, :3, :3].double()
    assert torch.allclose(r @ r.T, torch.eye(3, dtype=torch.float64), atol=1e-6) and float(torch.det(r)) > 0


def test_between_cameras_and_distance_weights():
    cams, eyes = _ring([0.0, 20.0, 50.0, 100.0])  # nearest pairs: (0, 1), (1, 2), (2, 3)
    pseudo = between_cameras(cams)
    mids = torch.stack([(eyes[i] + eyes[j]) / 2 for i, j in ((0, 1), (1, 2), (2, 3))])
    assert torch.allclose(pseudo.centers.double(), mids, atol=1e-5)
    w = distance_weights(pseudo, cams, gain=2.0)
    chord = lambda deg: 2 * 4.0 * math.sin(math.radians(deg) / 2)
    spread = chord(50)  # the largest nearest-neighbour distance (camera 3 to camera 2)
    expected = torch.tensor([min(1.0, 2 * chord(d) / 2 / (1.2 * spread)) for d in (20, 30, 50)])
    assert torch.allclose(w, expected, atol=1e-5)
    assert float(distance_weights(cams[:1], cams)[0]) == 0.0


class _Channels:
    """A repair model that returns some input channels (a stand-in with a known answer)."""

    def __init__(self, first: int):
        self.first = first

    def repair(self, inputs, **_):
        return inputs[:, self.first : self.first + 3]


@pytest.fixture(scope="module")
def scene():
    return make_synthetic_scene(num_views=6, width=48, height=40)


def _exact_renderer(scene, calls: list[int]):
    world = default_world(tuple(scene.meta["background"]))

    def render_fn(cam: Cameras) -> RenderOutput:
        calls.append(1)
        img, depth, mask = render_world(world, cam, supersample=1)
        empty = torch.zeros(1, 0, 2)
        return RenderOutput(rgb=img, depth=depth[..., None], alpha=mask[..., None], means2d=empty, radii=empty,
                            max_weights=torch.zeros(1, 0))

    return render_fn


def test_repaired_views_refresh_cache_and_weights(scene):
    train = [1, 2, 3, 4]
    cams = scene.cameras[train]
    calls: list[int] = []
    pseudo = between_cameras(cams)
    source = RepairedViews(_Channels(0), _exact_renderer(scene, calls), cams, [scene.images[i] for i in train],
                           pseudo, PseudoViewConfig(refresh_every=10))
    assert isinstance(source, PseudoViewSource)
    views = source.views(0)
    assert len(views) == len(pseudo) and len(calls) == 2 * len(pseudo)  # the view and its nearest training view
    assert source.views(9) is views and len(calls) == 2 * len(pseudo)
    assert source.views(10) is not views and len(calls) == 4 * len(pseudo)
    world = default_world(tuple(scene.meta["background"]))
    for k, v in enumerate(views):
        img, _, mask = render_world(world, v.camera, supersample=1)
        assert torch.allclose(v.image, img[0], atol=1e-6)  # identity repair: the render itself
        assert torch.equal(v.weight, (mask[0] > 0.5).float() * source.distance[k])
    assert any(bool((v.weight == 0).any()) for v in views)  # the sky: no loss at the default threshold
    every = RepairedViews(_Channels(0), _exact_renderer(scene, []), cams, [scene.images[i] for i in train], pseudo,
                          PseudoViewConfig(alpha_threshold=0.0)).views(0)  # fmt: skip
    for k, v in enumerate(every):  # threshold 0: every pixel, the empty ones too
        assert torch.equal(v.weight, torch.full_like(v.weight, float(source.distance[k])))


def test_repaired_views_see_the_warped_nearest_photo(scene):
    """A model returning the warped channel: where valid, it must look like the true pseudo view."""
    train = [1, 2, 3, 4]
    cams = scene.cameras[train]
    source = RepairedViews(_Channels(4), _exact_renderer(scene, []), cams, [scene.images[i] for i in train],
                           between_cameras(cams))
    world = default_world(tuple(scene.meta["background"]))
    for v in source.views(0):
        truth = render_world(world, v.camera, supersample=2)[0][0]
        seen = v.image.abs().sum(-1) > 0
        assert int(seen.sum()) > 200
        assert float((v.image - truth).abs().mean(-1)[seen].mean()) < 0.06


def test_masks_put_loss_on_the_holes_inside_the_visual_hull(scene):
    """A render with a hole (no opacity over its left half): the hole gets no weight from the render,
    but with the training masks every pixel of the hull's silhouette does, the object's included."""
    train = [1, 2, 3, 4]
    cams, photos, masks = scene.cameras[train], [scene.images[i] for i in train], [scene.masks[i] for i in train]
    exact = _exact_renderer(scene, [])

    def holed(cam: Cameras) -> RenderOutput:
        out = exact(cam)
        out.alpha = out.alpha.clone()
        out.alpha[:, :, : out.alpha.shape[2] // 2] = 0
        return out

    pseudo = between_cameras(cams)
    plain = RepairedViews(_Channels(0), holed, cams, photos, pseudo).views(0)
    hulled = RepairedViews(_Channels(0), holed, cams, photos, pseudo, masks=masks).views(0)
    world = default_world(tuple(scene.meta["background"]))
    for k, (a, b) in enumerate(zip(plain, hulled, strict=True)):
        obj = render_world(world, a.camera, supersample=1)[2][0] > 0.5  # [H, W] the true silhouette
        hole = obj.clone()
        hole[:, hole.shape[1] // 2 :] = False
        assert int(hole.sum()) > 20 and bool((a.weight[hole] == 0).all())
        inside = hole & (b.weight > 0)
        assert int(inside.sum()) >= 0.95 * int(hole.sum())  # the hole inside the hull: weighted now
        assert bool((b.weight >= a.weight).all())  # the render's own coverage is kept
