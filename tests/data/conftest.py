"""Tiny scenes written to disk for the format tests: known cameras, small random images."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from recon.cameras import Cameras


@dataclass
class TinyScene:
    """Ground truth of a scene written to ``root/images``."""

    root: Path
    cameras: Cameras
    names: list[str]
    images: list[np.ndarray]  # uint8 [H, W, 3]
    points: np.ndarray  # [P, 3]
    colors: np.ndarray  # [P, 3] in [0, 1], multiples of 1/255


def ring_cameras(n: int = 6, width: int = 32, height: int = 24, radius: float = 4.0) -> Cameras:
    """``n`` cameras on a tilted ring around the origin, looking at it (OpenCV axes)."""
    c2ws = []
    for i in range(n):
        a = 2 * math.pi * i / n
        eye = np.array([radius * math.cos(a), radius * math.sin(a), 1.5])
        fwd = -eye / np.linalg.norm(eye)
        right = np.cross(fwd, [0.0, 0.0, 1.0])
        right /= np.linalg.norm(right)
        down = np.cross(fwd, right)
        c2w = np.eye(4)
        c2w[:3, :3] = np.stack([right, down, fwd], axis=1)
        c2w[:3, 3] = eye
        c2ws.append(c2w)
    Ks = np.array(
        [
            [[30.0 + i, 0, width / 2 + 0.25 * i], [0, 31.0 + i, height / 2 - 0.5], [0, 0, 1]]
            for i in range(n)
        ]
    )
    return Cameras.from_opencv_c2w(np.stack(c2ws), Ks, width, height)


def write_tiny_scene(
    root: Path, n: int = 6, width: int = 32, height: int = 24, seed: int = 0
) -> TinyScene:
    rng = np.random.default_rng(seed)
    (root / "images").mkdir(parents=True, exist_ok=True)
    names, images = [], []
    for i in range(n):
        img = rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8)
        name = f"view_{i:03d}.png"
        Image.fromarray(img).save(root / "images" / name)
        names.append(name)
        images.append(img)
    points = rng.uniform(-1, 1, size=(50, 3))
    colors = rng.integers(0, 256, size=(50, 3)) / 255.0
    return TinyScene(root, ring_cameras(n, width, height), names, images, points, colors)


@pytest.fixture
def tiny_scene(tmp_path: Path) -> TinyScene:
    return write_tiny_scene(tmp_path / "scene")


@pytest.fixture
def ring():
    """The :func:`ring_cameras` helper, for test modules (tests/ is not a package)."""
    return ring_cameras
