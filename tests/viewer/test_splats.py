"""Browser splats: the arrays sent to the page against an independent conversion, viser's buffer
decoded back, the View toggle and the low-rate resend during training."""

from __future__ import annotations

import threading
import time
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from .conftest import free_port, wait_until
from .fakes import FakeClient

pytest.importorskip("viser")

from viewer.app import SceneContext, ViewerApp
from viewer.render import PrimitiveSet
from viewer.splats import SERVER_VIEW, SplatSource, float16_scale, gaussian_splats, splat_source


def _params(n: int, seed: int = 0, log_scale: float = -2.0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {
        "means": torch.randn(n, 3, generator=g),
        "quats": torch.randn(n, 4, generator=g) * 3.0,  # not normalised: the conversion must do it
        "scales": log_scale + torch.randn(n, 3, generator=g),
        "opacities": torch.randn(n, generator=g) * 4.0,
        "sh0": torch.randn(n, 1, 3, generator=g) * 2.0,
        "shN": torch.randn(n, 3, 3, generator=g),
    }


def _expected(params: dict[str, torch.Tensor]) -> dict[str, np.ndarray]:
    """The 3DGS conversion written out with scipy's rotations (scalar-last quaternions)."""
    q = params["quats"].double().numpy()
    R = Rotation.from_quat(np.concatenate([q[:, 1:], q[:, :1]], axis=1)).as_matrix()  # [N, 3, 3]
    S2 = np.stack([np.diag(s) for s in np.exp(2.0 * params["scales"].double().numpy())])  # [N, 3, 3]
    return {
        "centers": params["means"].double().numpy(),
        "covariances": R @ S2 @ R.transpose(0, 2, 1),
        "rgbs": np.clip(0.5 + 0.28209479177387814 * params["sh0"].double().numpy()[:, 0], 0.0, 1.0),
        "opacities": 1.0 / (1.0 + np.exp(-params["opacities"].double().numpy()))[:, None],
    }


def test_conversion_matches_independent_computation():
    params = _params(500)
    splats = gaussian_splats(params)
    expected = _expected(params)
    keep = expected["opacities"][:, 0] >= 0.5 / 255
    assert 0 < keep.sum() < len(keep)  # some Gaussians are invisible and left out
    assert len(splats) == keep.sum()
    for key, value in expected.items():
        got = getattr(splats, key)
        assert got.dtype == np.float32
        np.testing.assert_allclose(got, value[keep], rtol=1e-5, atol=1e-6, err_msg=key)
    assert splats.rgbs.min() == 0.0 and splats.rgbs.max() == 1.0  # clamped, not wrapped


def _decode(buffer: np.ndarray, scale: float) -> dict[str, np.ndarray]:
    """viser's 32-byte splat layout back to world arrays: xyz f32, pad, 6 x f16 covariance, rgba u8."""
    raw = np.ascontiguousarray(buffer).view(np.uint8).reshape(len(buffer), 32)
    triu = raw[:, 16:28].copy().view(np.float16).astype(np.float64)  # [N, 6]: 00 01 02 11 12 22
    cov = np.empty((len(buffer), 3, 3))
    for k, (i, j) in enumerate([(0, 0), (0, 1), (0, 2), (1, 1), (1, 2), (2, 2)]):
        cov[:, i, j] = cov[:, j, i] = triu[:, k]
    return {
        "centers": raw[:, :12].copy().view(np.float32).astype(np.float64) * scale,
        "covariances": cov * scale**2,
        "rgba": raw[:, 28:32],
    }


@pytest.mark.parametrize("log_scale", [-7.0, 0.0, 3.0])  # std ~1e-3 (float16 underflow), ~1, ~20
def test_sent_buffer_decodes_to_the_splats(log_scale):
    params = _params(300, seed=1, log_scale=log_scale)
    params["scales"] = params["scales"].clamp(log_scale - 1.5, log_scale + 1.5)
    source = SplatSource(lambda: params, background=(0.2, 0.4, 0.6))
    app = ViewerApp(lambda cam, settings: None, SceneContext(splats=source), port=free_port(), verbose=False)
    try:
        handle = app.splats.handle
        got = _decode(handle.buffer, float(np.asarray(handle.scale).reshape(-1)[0]))
        np.testing.assert_array_equal(app.splats.background_image()[0, 0], [51, 102, 153])
    finally:
        app.stop()
    expected = _expected(params)
    keep = expected["opacities"][:, 0] >= 0.5 / 255
    np.testing.assert_allclose(got["centers"], expected["centers"][keep], rtol=1e-6, atol=1e-6)
    # float16 keeps ~3 significant digits of each entry, relative to the Gaussian's size.
    cov = expected["covariances"][keep]
    size = np.abs(cov).max(axis=(1, 2))[:, None, None]  # [M, 1, 1]
    err = np.abs(got["covariances"] - cov) / size
    assert err.max() < 2e-3, err.max()
    rgba = np.concatenate([expected["rgbs"], expected["opacities"]], axis=1)[keep]
    diff = np.abs(got["rgba"].astype(int) - np.floor(rgba * 255 + 0.5))  # float32 vs float64 at .5 ties
    assert diff.max() <= 1 and (diff == 0).mean() > 0.99
    if log_scale == -7.0:  # without the node scale these covariances would not survive float16
        naive = np.abs(cov.astype(np.float16).astype(np.float64) - cov) / size
        assert naive.max() > 2e-3


def test_float16_scale_is_a_power_of_two_centring_the_range():
    for std in (1e-4, 1e-2, 1.0, 300.0):
        cov = np.eye(3)[None] * np.array([0.5, 1.0, 2.0])[:, None, None] * std**2
        s = float16_scale(cov)
        assert np.log2(s) == round(np.log2(s))
        scaled = np.diagonal(cov, axis1=1, axis2=2) / s**2
        assert scaled.min() > 2.0**-14 and scaled.max() < 2.0**15
    assert float16_scale(np.zeros((0, 3, 3))) == 1.0


def test_splat_source_of_saved_sets():
    gauss = PrimitiveSet("gaussian", _params(10), background=(1.0, 1.0, 1.0))
    tri = PrimitiveSet("triangle", {"vertices": torch.zeros(4, 3, 3)})
    assert splat_source({"triangle": tri}) is None
    source = splat_source({"triangle": tri, "gaussian": gauss})
    assert source is not None and source.version is None and source.background == (1.0, 1.0, 1.0)
    np.testing.assert_array_equal(source.read().centers, gaussian_splats(gauss.params).centers)


def test_view_toggle_between_splats_and_server_render(sphere_render_fn):
    source = SplatSource(lambda: _params(50), background=(0.0, 0.0, 1.0))
    app = ViewerApp(sphere_render_fn, SceneContext(splats=source), port=free_port(), verbose=False)
    try:
        assert app.splats.active and app.splats.handle.visible  # the default for Gaussian scenes
        client = FakeClient()
        app._on_connect(client)
        client.move((0.0, 1.0, -4.0))
        time.sleep(0.5)
        # The page draws the splats: only the flat scene background comes from the server.
        assert app.renderers[client.client_id].renders == 0
        assert len(client.scene.images) == 1 and (client.scene.images[0] == [0, 0, 255]).all()
        assert "browser splats" in client.markdown[0].content
        app.splats.active = False  # the View dropdown
        assert wait_until(lambda: app.renderers[client.client_id].renders >= 1)
        assert not app.splats.handle.visible and client.scene.images[-1].shape == (384, 512, 3)
        app.splats.active = True
        assert app.splats.handle.visible and (client.scene.images[-1] == [0, 0, 255]).all()
        assert app.splats.sends == 1  # a saved scene is sent once
        renders = app.renderers[client.client_id].renders
        app._mode.value = "depth"  # the page cannot draw depth: the server render takes over
        assert wait_until(lambda: app.renderers[client.client_id].renders > renders)
        assert not app.splats.active and not app.splats.handle.visible
        assert SERVER_VIEW in app.splats._view.options
    finally:
        app.stop()


def test_live_splats_resend_at_a_low_rate_only_when_training_moved(sphere_render_fn):
    state = SimpleNamespace(step=0, lock=threading.Lock())
    trainer = SimpleNamespace(params=_params(20))
    source = SplatSource(lambda: trainer.params, lock=state.lock, version=lambda: state.step, refresh_seconds=0.3)
    app = ViewerApp(sphere_render_fn, SceneContext(splats=source), port=free_port(), verbose=False)
    try:
        assert app.splats.sends == 1
        time.sleep(0.8)
        assert app.splats.sends == 1  # nobody watches: no resend
        app._on_connect(FakeClient())
        for step in range(1, 40):  # training steps every 10 ms: resends follow the interval, not the steps
            with state.lock:
                state.step, trainer.params = step, _params(20 + step)
            time.sleep(0.01)
        assert wait_until(lambda: app.splats.sends >= 2, 5)
        time.sleep(0.4)
        sends = app.splats.sends
        assert 2 <= sends <= 4
        time.sleep(0.8)  # training paused: nothing new to send
        assert app.splats.sends == sends
        handle = app.splats.handle  # updated in place: the page keeps its node
        got = _decode(handle.buffer, float(np.asarray(handle.scale).reshape(-1)[0]))["centers"]
        np.testing.assert_allclose(got, gaussian_splats(trainer.params).centers, rtol=1e-6, atol=1e-6)
        app.splats._refresh.value = 0.0  # 0 = on demand only
        state.step += 1
        time.sleep(0.6)
        assert app.splats.sends == sends
        for callback in app.splats._send_now._impl.update_cb:  # the "Send splats now" button
            callback(None)
        assert app.splats.sends == sends + 1
    finally:
        app.stop()


def test_live_training_hands_the_viewer_its_gaussians(monkeypatch):
    """`recon train --viewer` on Gaussians: the splat source reads the trainer's current parameters
    under the training lock, its version is the step, and the page background is the training one."""
    import viewer.live
    from recon.app.train import attach_live_viewer

    calls = {}
    monkeypatch.setattr(viewer.live, "start_live_viewer", lambda render_fn, state, **kw: calls.update(kw))
    state = SimpleNamespace(step=7, lock=threading.Lock())
    trainer = SimpleNamespace(
        config=SimpleNamespace(primitive="gaussian", backend="reference"),
        params=_params(30),
        state=state,
        scene=SimpleNamespace(cameras=None, names=[], images=[]),
        split=SimpleNamespace(train=[], test=[]),
        background=torch.tensor([0.1, 0.2, 0.3]),
        sh_degree=lambda step: 0,
        images=[], wild=None, run_dir=None,  # no masks
    )
    attach_live_viewer(trainer, None)
    source = calls["scene"].splats
    assert source.lock is state.lock and source.version() == 7
    trainer.params = _params(40, seed=5)  # densification replaces the dict: the source follows
    np.testing.assert_array_equal(source.read().centers, gaussian_splats(trainer.params).centers)
    np.testing.assert_allclose(source.background, (0.1, 0.2, 0.3))
    trainer.config.primitive = "triangle"
    attach_live_viewer(trainer, None)
    assert calls["scene"].splats is None


def test_view_splats_on_a_run_without_gaussians_is_a_clear_error(tiny_run, monkeypatch, capsys):
    import viewer.cli
    from recon.cli import main
    from viewer.loading import Viewable

    triangles = Viewable(sets={"triangle": PrimitiveSet("triangle", {"vertices": torch.zeros(4, 3, 3)})})
    monkeypatch.setattr(viewer.cli, "load_viewable", lambda path, checkpoint=None: triangles)
    assert main(["view", str(tiny_run), "--view", "splats", "--port", str(free_port())]) == 2
    err = capsys.readouterr().err
    assert "--view splats needs Gaussians" in err and "triangle" in err and len(err.strip().splitlines()) == 1
