"""The mask view (viewer.masks): training photos with their masks tinted, in `recon view RUN` and live."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image

from recon.run import load_run_scene
from recon.train.cli import run_training
from tests.wild.conftest import wild_config
from viewer.loading import load_viewable
from viewer.masks import MASK_COLOURS, MaskSource, live_mask_source, overlay_masks, run_mask_source

from .conftest import free_port, wait_until

RAIN_RUN = {  # 64x48: at 32x24 warping errors of whole pixels swamp the streaks and the median replaces nothing
    "data.synthetic_views": 12, "data.synthetic_width": 64, "data.synthetic_height": 48,
    "wild.mode": "on", "wild.robust_start": 0.0, "wild.weather": "median",
}  # fmt: skip


def _zeros(path: Path) -> np.ndarray:
    """[H, W] bool pixels a mask PNG holds 0 on, read with PIL alone."""
    return np.asarray(Image.open(path).convert("L")) == 0


def _expected(photo: np.ndarray, masks: dict[str, np.ndarray], strength: float = 0.6) -> np.ndarray:
    out = photo.astype(np.float64)
    for kind in ("user", "replaced", "left out", "robust"):  # the documented painting order
        if kind in masks:
            m = masks[kind]
            out[m] = (1 - strength) * out[m] + strength * np.array(MASK_COLOURS[kind], np.float64)
    return np.clip(np.round(out), 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def rain_run(tmp_path_factory) -> Path:
    """A tiny run on the rain variant (8 training views): robust loss from step 0, the median weather filter."""
    out = tmp_path_factory.mktemp("masks") / "run"
    out.mkdir()
    run_training(wild_config("synthetic:wild-rain", iterations=8, **RAIN_RUN), out, quiet=True)  # every view once
    return out


def test_overlay_tints_each_kind_in_order():
    photo = np.full((2, 2, 3), 100, np.uint8)
    robust = np.array([[True, False], [False, True]])
    user = np.array([[True, True], [False, False]])
    out = overlay_masks(photo, {"robust": robust, "user": user})
    assert out[1, 0].tolist() == [100, 100, 100]  # in no mask
    assert out[0, 1].tolist() == [190, 160, 52]  # user only: 0.4 x 100 + 0.6 x (250, 200, 20)
    assert out[1, 1].tolist() == [181, 58, 58]  # robust only: 0.4 x 100 + 0.6 x (235, 30, 30)
    assert out[0, 0].tolist() == [217, 82, 39]  # user, then robust over it: 0.4 x (190, 160, 52) + 0.6 x red
    with pytest.raises(ValueError, match="robust mask"):
        overlay_masks(photo, {"robust": np.zeros((3, 2), bool)})


def test_run_mask_source_matches_the_saved_mask_files(rain_run):
    run = load_viewable(rain_run).run
    source = run_mask_source(run)
    train = list(run.split.train)
    assert source is not None and source.names == [run.names[i] for i in train]
    photos = load_run_scene(run).images
    wild = rain_run / "wild"
    assert any((wild / "median_replaced").glob("*.png")) and any(wild.glob("*.png"))
    for v, i in enumerate(train):
        stem = Path(run.names[i]).stem
        truth = {"robust": _zeros(wild / f"{stem}.png"), "replaced": _zeros(wild / "median_replaced" / f"{stem}.png"),
                 "left out": _zeros(wild / "median_valid" / f"{stem}.png")}  # fmt: skip
        masks = source.masks(v)
        assert set(masks) == set(truth) and all(np.array_equal(masks[k], truth[k]) for k in truth)
        photo = (np.clip(photos[i].numpy(), 0, 1) * 255 + 0.5).astype(np.uint8)  # the photo as trained on
        assert np.array_equal(source.photo(v), photo)
        assert np.array_equal(overlay_masks(source.photo(v), masks), _expected(photo, truth))
    assert sum(int(source.masks(v)["replaced"].sum()) for v in range(len(train))) > 500  # the streaks
    from viewer.cli import scene_context  # what `recon view RUN` hands the app

    assert scene_context(load_viewable(rain_run), with_thumbnails=False).masks.names == source.names


def test_runs_without_masks_have_no_mask_view(tmp_path):
    from .conftest import write_tiny_run

    assert run_mask_source(load_viewable(write_tiny_run(tmp_path / "tiny")).run) is None
    assert run_mask_source(None) is None
    assert live_mask_source(["a.png"], [torch.zeros(2, 2, 3)], None, None) is None


def test_gui_shows_the_chosen_photo_and_follows_live_masks():
    """The "Masks" folder through a real viser server (no browser): tick Show, pick a photo; the live
    viewer redraws when the step advances and the robust mask has changed."""
    pytest.importorskip("viser")
    from viewer.app import SceneContext
    from viewer.live import start_live_viewer

    photos = [np.full((6, 8, 3), 40 * (v + 1), np.uint8) for v in range(3)]
    robust = {v: np.zeros((6, 8), bool) for v in range(3)}
    source = MaskSource(["a.png", "b.png", "c.png"], lambda v: photos[v], lambda v: {"robust": robust[v].copy()})
    state = SimpleNamespace(step=0, losses={}, paused=False)
    live = start_live_viewer(lambda cam, s: np.zeros((cam.height, cam.width, 3), np.uint8), state,
                             port=free_port(), scene=SceneContext(masks=source), refresh_seconds=0.05, verbose=False)  # fmt: skip
    try:
        view = live.app.masks
        assert view is not None and not view._image.visible  # nothing drawn until Show is ticked
        view._show.value = True
        assert wait_until(lambda: view._image.visible)
        assert np.array_equal(view._image.image, photos[0])
        view._photo.value = "b.png"
        assert wait_until(lambda: np.array_equal(view._image.image, photos[1]))
        robust[1][2:4, 3:6] = True  # training dropped a blob in view b
        state.step = 1
        assert wait_until(lambda: np.array_equal(view._image.image, _expected(photos[1], {"robust": robust[1]})))
        assert "robust 12.5 %" in view._legend.content
        view._show.value = False
        assert wait_until(lambda: not view._image.visible)
    finally:
        live.close()


def test_training_viewer_gets_the_live_masks(tmp_path, monkeypatch):
    """`recon train --viewer` hands the viewer the training's own robust masks, as they are now."""
    pytest.importorskip("viser")
    import viewer.live
    from recon.app.train import attach_live_viewer

    calls = {}
    monkeypatch.setattr(viewer.live, "start_live_viewer", lambda render_fn, state, **kw: calls.update(kw))
    out = tmp_path / "run"
    out.mkdir()
    config = wild_config("synthetic:wild-rain", iterations=3, **RAIN_RUN)
    trainer, _ = run_training(config, out, quiet=True, on_start=[attach_live_viewer])
    source = calls["scene"].masks
    assert source.names == [trainer.scene.names[i] for i in trainer.split.train]
    for v, weights in trainer.wild.last_masks.items():
        assert np.array_equal(source.masks(v)["robust"], weights.numpy() < 0.5)
        assert np.array_equal(source.photo(v), (trainer.images[v].numpy() * 255 + 0.5).astype(np.uint8))
    assert trainer.wild.last_masks
