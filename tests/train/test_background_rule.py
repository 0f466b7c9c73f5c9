"""One background rule for RGBA (Blender) scenes: training renders on the colour the loader
composited the targets on (white, the NeRF-synthetic convention), so transparent pixels are
reachable and evaluation (which renders on the training background) agrees."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from recon.config import DataConfig, TrainConfig, override
from recon.data.formats import load_scene
from recon.run import load_training_scene
from recon.train.setup import background_color

from ..data.conftest import ring_cameras


def _write_rgba_blender(root: Path, n: int = 4, width: int = 16, height: int = 12) -> None:
    """A Blender scene whose RGBA images are transparent on their left half."""
    rng = np.random.default_rng(0)
    (root / "train").mkdir(parents=True)
    cams = ring_cameras(n, width, height)
    c2w = cams.opengl_c2w().double().numpy()
    frames = []
    for i in range(n):
        rgba = rng.integers(0, 256, (height, width, 4), dtype=np.uint8)
        rgba[:, : width // 2, 3] = 0
        rgba[:, width // 2 :, 3] = 255
        Image.fromarray(rgba, "RGBA").save(root / "train" / f"r_{i}.png")
        frames.append({"file_path": f"./train/r_{i}", "transform_matrix": c2w[i].tolist()})
    for split in ("train", "test"):
        (root / f"transforms_{split}.json").write_text(json.dumps({"camera_angle_x": 0.8, "frames": frames}))


@pytest.mark.parametrize("composite", [(1.0, 1.0, 1.0), (0.0, 0.0, 0.0), (0.2, 0.4, 0.6)])
def test_training_background_is_the_compositing_colour(tmp_path: Path, composite):
    _write_rgba_blender(tmp_path)
    scene = load_scene(tmp_path, background=composite, verbose=False)
    transparent = scene.images[0][:, 0]  # [H, 3] pixels of alpha 0: the compositing colour
    bg = background_color(TrainConfig(), scene, "blender")
    torch.testing.assert_close(bg.expand_as(transparent), transparent)


def test_blender_trains_on_white_by_default(tmp_path: Path, caplog):
    _write_rgba_blender(tmp_path)
    scene = load_training_scene(DataConfig(path=str(tmp_path)), verbose=False)
    torch.testing.assert_close(scene.images[0][:, 0], torch.ones(12, 3))
    torch.testing.assert_close(background_color(TrainConfig(), scene, "blender"), torch.ones(3))
    # An explicit choice still wins, with a warning when it contradicts the compositing colour.
    black = override(TrainConfig(), **{"loss.background": "black"})
    with caplog.at_level(logging.WARNING, logger="recon.train.setup"):
        torch.testing.assert_close(background_color(black, scene, "blender"), torch.zeros(3))
    assert "composited on [1.0, 1.0, 1.0]" in caplog.text
    caplog.clear()
    white = override(TrainConfig(), **{"loss.background": "white"})
    torch.testing.assert_close(background_color(white, scene, "blender"), torch.ones(3))
    assert not caplog.text


def test_scenes_without_alpha_keep_black(tmp_path: Path):
    _write_rgba_blender(tmp_path)
    for p in (tmp_path / "train").iterdir():
        Image.open(p).convert("RGB").save(p)
    scene = load_scene(tmp_path, verbose=False)
    assert "background" not in scene.meta
    torch.testing.assert_close(background_color(TrainConfig(), scene, "blender"), torch.zeros(3))
