"""The render-function contract: validation, modes, colour maps, and the engine adapter."""

from __future__ import annotations

import threading
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from recon.primitives.sh import sh_params
from viewer.cameras import look_at_pose, pose_to_cameras
from viewer.render import (
    PrimitiveSet,
    RenderSettings,
    check_image,
    colorize_depth,
    density_map,
    make_live_render_fn,
    make_render_fn,
    turbo,
)


def _camera(w=32, h=24, pos=(0.0, 0.0, -4.0)):
    return pose_to_cameras(look_at_pose(np.array(pos), np.zeros(3), np.array([0.0, -1.0, 0.0]), 0.8), w, h)


def test_check_image():
    assert check_image(np.zeros((2, 3, 3), np.uint8), 3, 2).shape == (2, 3, 3)
    converted = check_image(np.full((2, 3, 3), 0.5, np.float32), 3, 2)
    assert converted.dtype == np.uint8 and int(converted[0, 0, 0]) == 128
    assert check_image(torch.ones(2, 3, 3), 3, 2)[0, 0, 0] == 255
    with pytest.raises(ValueError, match=r"\[2, 3, 3\] uint8"):
        check_image(np.zeros((3, 2, 3), np.uint8), 3, 2)
    with pytest.raises(TypeError):
        check_image([[0]], 3, 2)


def _fake_engine(calls):
    """An engine stand-in whose outputs are known in closed form."""

    def render(primitive, params, cameras, *, sh_degree, backgrounds, backend):
        calls.append(dict(primitive=primitive, sh_degree=sh_degree, bg=backgrounds, backend=backend))
        H, W = cameras.height, cameras.width
        x = torch.linspace(0, 1, W).expand(1, H, W)
        rgb = torch.stack([x, 1 - x, torch.full_like(x, 0.25)], -1)  # [1, H, W, 3]
        alpha = (x > 0.5).float()[..., None]  # right half covered
        depth = (1.0 + x)[..., None] * alpha  # nearer on the left
        return SimpleNamespace(rgb=rgb, alpha=alpha, depth=depth)

    return render


def test_modes_through_the_engine_adapter():
    calls = []
    sets = {"g": PrimitiveSet("gaussian", {"means": torch.zeros(2, 3)}, 1, background=(1.0, 1.0, 1.0)),
            "t": PrimitiveSet("triangle", {"vertices": torch.zeros(1, 3, 3)}, 0)}
    fn = make_render_fn(sets, backend="reference", render=_fake_engine(calls))
    cam = _camera(8, 4)
    rgb = fn(cam, RenderSettings())
    assert calls[-1]["primitive"] == "gaussian" and calls[-1]["sh_degree"] == 1
    assert calls[-1]["bg"].tolist() == [[1.0, 1.0, 1.0]] and calls[-1]["backend"] == "reference"
    assert rgb.dtype == np.uint8 and rgb.shape == (4, 8, 3)
    np.testing.assert_array_equal(rgb[0, :, 0], np.round(np.linspace(0, 255, 8)).astype(np.uint8))
    fn(cam, RenderSettings(primitive="t", background=(0.0, 0.5, 0.0)))
    assert calls[-1]["primitive"] == "triangle" and calls[-1]["bg"].tolist() == [[0.0, 0.5, 0.0]]
    alpha = fn(cam, RenderSettings(mode="alpha"))
    assert set(alpha[0, :4, 0]) == {0} and set(alpha[0, 4:, 0]) == {255}
    depth = fn(cam, RenderSettings(mode="depth"))
    assert (depth[:, :4] == 0).all()  # uncovered: black
    near, far = depth[0, 4].astype(int), depth[0, 7].astype(int)
    assert near[0] - near[2] > far[0] - far[2]  # nearer is warmer (Turbo: red end)


def test_colour_maps():
    ends = turbo(np.array([0.15, 0.5, 0.9]))
    assert ends[0, 2] > 2 * ends[0, 0] and ends[2, 0] > 2 * ends[2, 2]  # blue low, red high
    assert ends[1, 1] > 0.8  # green in the middle
    d = np.array([[1.0, 2.0, 4.0, 0.0]])
    a = np.array([[1.0, 1.0, 1.0, 0.0]])
    c = colorize_depth(d, a)
    assert (c[0, 3] == 0).all() and c[0, 0, 0] > c[0, 2, 0] and c[0, 2, 2] > c[0, 0, 2]


def test_density_map_counts_projected_centres():
    cam = _camera(40, 30)
    # Five centres on the optical axis (one pixel) and three behind the camera (ignored).
    pts = torch.tensor([[0.0, 0.0, z] for z in (-1.0, -0.5, 0.0, 0.5, 1.0)] + [[0.0, 0.0, -9.0]] * 3)
    counts = density_map(pts, cam)
    assert counts.sum() == pytest.approx(5.0)
    assert counts[15, 20] == pytest.approx(counts.max()) and counts[15, 20] == pytest.approx(5 / 25)
    img = make_render_fn({"g": PrimitiveSet("gaussian", {"means": pts}, 0)})(cam, RenderSettings(mode="density"))
    assert img[15, 20].sum() > 0 and img[0, 0].sum() == 0


def test_single_gaussian_colour_matches_closed_form():
    """Real engine (reference backend): one big opaque Gaussian facing the camera."""
    colour = torch.tensor([[0.8, 0.3, 0.1]])
    sh0, shN = sh_params(colour, 0)
    params = {"means": torch.zeros(1, 3), "quats": torch.tensor([[1.0, 0, 0, 0]]),
              "scales": torch.full((1, 3), float(np.log(0.5))), "opacities": torch.tensor([2.0]),
              "sh0": sh0, "shN": shN}
    fn = make_render_fn({"g": PrimitiveSet("gaussian", params, 0, background=(0.0, 0.0, 1.0))},
                        backend="reference")
    img = fn(_camera(32, 24), RenderSettings()).astype(float) / 255
    a = float(torch.sigmoid(torch.tensor(2.0)))  # peak alpha at the centre
    expected = colour[0].numpy() * a + np.array([0.0, 0.0, 1.0]) * (1 - a)
    centre = img[11:13, 15:17].mean((0, 1))  # pixel centres are 0.5 px from the peak
    np.testing.assert_allclose(centre, expected, atol=0.02)
    np.testing.assert_allclose(img[0, 0], [0.0, 0.0, 1.0], atol=0.02)  # far corner: background


def test_live_render_fn_holds_the_lock_and_reads_current_params():
    lock = threading.Lock()
    seen = []

    def engine(primitive, params, cameras, **kw):
        seen.append((lock.locked(), params["means"].shape[0], kw["sh_degree"]))
        return _fake_engine([])(primitive, params, cameras, **kw)

    state = {"params": {"means": torch.zeros(3, 3)}, "deg": 0}
    fn = make_live_render_fn("gaussian", lambda: state["params"], lambda: state["deg"], lock=lock,
                             render=engine)
    fn(_camera(8, 4), RenderSettings())
    state["params"], state["deg"] = {"means": torch.zeros(7, 3)}, 2  # densified, SH raised
    fn(_camera(8, 4), RenderSettings())
    assert seen == [(True, 3, 0), (True, 7, 2)] and not lock.locked()
