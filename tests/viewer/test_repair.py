"""The ``repaired`` render mode: each frame through a repair model, the nearest training photo as reference."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from recon.primitives.gaussian import init_from_points
from recon.repair.postpass import FrameRepair
from viewer.cameras import look_at_pose, pose_to_cameras
from viewer.render import PrimitiveSet, RenderSettings, make_render_fn, to_uint8

W, H = 64, 48


def _cameras(angles):
    poses = [look_at_pose(np.array([3 * np.cos(a), 3 * np.sin(a), 1.0]), np.zeros(3), np.array([0.0, 0.0, 1.0]), 0.8)
             for a in angles]
    return pose_to_cameras(poses, W, H)


@pytest.fixture(scope="module")
def scene():
    g = torch.Generator().manual_seed(0)
    params = init_from_points(torch.randn(300, 3, generator=g) * 0.5, torch.rand(300, 3, generator=g),
                              sh_degree=1, opacity=0.8)
    prim = PrimitiveSet("gaussian", {k: v.detach() for k, v in params.items()}, sh_degree=1)
    cameras = _cameras(np.linspace(0, 2 * np.pi, 4, endpoint=False))
    photos = [torch.full((H, W, 3), 0.2 * (k + 1)) for k in range(4)]  # one flat colour per training view
    return prim, cameras, photos


class Recorder:
    """A repair model that returns the warped photo it was given and keeps its inputs."""

    def __init__(self):
        self.inputs = []

    def repair(self, inputs, **_):
        self.inputs.append(inputs)
        return inputs[:, 4:7]


def _render_pair(prim, repair, camera, backend="reference"):
    render_fn = make_render_fn({"gaussian": prim}, backend=backend, repair=repair)
    return render_fn(camera, RenderSettings("rgb")), render_fn(camera, RenderSettings("repaired"))


def test_the_reference_is_the_nearest_photo_warped_by_the_rendered_depth(scene):
    prim, cameras, photos = scene
    model = Recorder()
    near_2 = _cameras([np.pi + 0.15])[0]  # training camera 2 sits at angle pi
    rgb, repaired = _render_pair(prim, FrameRepair(model, cameras, photos), near_2)
    inputs = model.inputs[-1][0]  # [8, H, W]: render, alpha, warped photo, validity
    valid = inputs[7] > 0.5
    assert 0.2 < float(valid.float().mean()) < 1.0  # the object covers part of the frame
    assert torch.allclose(inputs[4:7][:, valid], torch.full((3, int(valid.sum())), 0.6))  # photo 2's colour
    assert float(inputs[4:7][:, ~valid].abs().max()) == 0.0
    assert np.abs(to_uint8(inputs[:3].permute(1, 2, 0)).astype(int) - rgb).max() <= 1  # the frame's own render
    assert np.array_equal(repaired, to_uint8(inputs[4:7].permute(1, 2, 0)))  # what the model returned

    # at a training camera itself the warp lands on the same pixels: the photo, wherever the depth is valid
    photos = [torch.rand(H, W, 3, generator=torch.Generator().manual_seed(k)) for k in range(4)]
    FrameRepair(model, cameras, photos)(*_rendered(prim, cameras[1]))
    inputs = model.inputs[-1][0]
    valid = inputs[7] > 0.5
    assert float(valid.float().mean()) > 0.2
    assert torch.allclose(inputs[4:7].permute(1, 2, 0)[valid], photos[1][valid], atol=1e-4)


def _rendered(prim, camera):
    from recon.render import render

    def render_view(view):
        with torch.no_grad():
            return render("gaussian", prim.params, view, sh_degree=1, backgrounds=torch.zeros(1, 3), backend="reference")

    return render_view(camera), camera, render_view


def test_identity_fixer_leaves_the_frame_and_a_known_bias_shifts_it(scene):
    pytest.importorskip("diffusers")
    from recon.repair.fixer import Fixer, FixerConfig

    prim, cameras, photos = scene
    fixer = Fixer.create(FixerConfig(channels=(8, 16), norm_groups=8))  # zero output convolution = identity
    camera = _cameras([0.7])[0]
    rgb, repaired = _render_pair(prim, FrameRepair(fixer, cameras, photos), camera)
    assert np.abs(repaired.astype(int) - rgb.astype(int)).max() <= 1
    bias = torch.tensor([0.2, -0.4, 0.1])  # in the fixer's [-1, 1] space: +0.1, -0.2, +0.05 in [0, 1]
    with torch.no_grad():
        fixer.unet.conv_out.bias.copy_(bias)
    out, _, _ = _rendered(prim, camera)
    expected = to_uint8((out.rgb[0].clamp(0, 1) + bias / 2).clamp(0, 1))
    _, shifted = _render_pair(prim, FrameRepair(fixer, cameras, photos), camera)
    assert np.abs(shifted.astype(int) - expected.astype(int)).max() <= 1
    assert np.abs(shifted.astype(int) - rgb.astype(int)).mean() > 10  # it did change


def test_the_repaired_mode_needs_a_model(scene):
    prim, cameras, _ = scene
    with pytest.raises(ValueError, match="repaired mode needs a repair model"):
        make_render_fn({"gaussian": prim}, backend="reference")(cameras[0], RenderSettings("repaired"))
    with pytest.raises(ValueError, match="one photo per training camera"):
        FrameRepair(Recorder(), cameras, [])
