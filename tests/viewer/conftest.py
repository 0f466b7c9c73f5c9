"""Viewer test fixtures: an analytic render function (ray-traced sphere) and headless Chromium."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from recon.cameras import Cameras
from viewer.headless import Chromium, find_chromium
from viewer.render import RenderSettings

SPHERE_COLOUR = np.array([230, 40, 40], dtype=np.float64)
BACKGROUND = np.array([30, 60, 200], dtype=np.float64)


def sphere_image(camera: Cameras, settings: RenderSettings, radius: float = 1.0) -> np.ndarray:
    """[H, W, 3] uint8: a flat-red sphere at the origin on a blue background (ray traced).

    ``depth`` mode shows the hit distance in grey, ``alpha`` white on black; else RGB.
    """
    W, H = camera.width, camera.height
    K = camera.Ks[0].double().numpy()
    c2w = np.linalg.inv(camera.viewmats[0].double().numpy())
    j, i = np.meshgrid(np.arange(H) + 0.5, np.arange(W) + 0.5, indexing="ij")
    d_cam = np.stack([(i - K[0, 2]) / K[0, 0], (j - K[1, 2]) / K[1, 1], np.ones_like(i)], -1)
    d = d_cam @ c2w[:3, :3].T  # [H, W, 3]
    d /= np.linalg.norm(d, axis=-1, keepdims=True)
    o = c2w[:3, 3]
    b = d @ o  # [H, W]
    disc = b * b - (o @ o - radius * radius)
    t = -b - np.sqrt(np.maximum(disc, 0.0))
    hit = (disc > 0) & (t > 0)
    if settings.mode == "alpha":
        img = np.where(hit[..., None], 255.0, 0.0) * np.ones(3)
    elif settings.mode == "depth":
        img = np.where(hit[..., None], np.clip(t, 0, 10)[..., None] * 25.0, 0.0) * np.ones(3)
    else:
        img = np.where(hit[..., None], SPHERE_COLOUR, BACKGROUND)
    return img.astype(np.uint8)


@pytest.fixture
def sphere_render_fn() -> Callable[[Cameras, RenderSettings], np.ndarray]:
    return sphere_image


def wait_until(cond: Callable[[], bool], timeout: float = 20.0, interval: float = 0.05) -> bool:
    """Polls ``cond`` until it holds (True) or ``timeout`` seconds pass (False)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if cond():
            return True
        time.sleep(interval)
    return False


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def chromium():
    """A factory for headless Chromium windows; skips when Chromium is not installed."""
    exe = find_chromium()
    if exe is None:
        pytest.skip("headless Chromium not installed (apt-get install -y chromium)")
    opened: list[Chromium] = []

    def start(width: int = 800, height: int = 600) -> Chromium:
        browser = Chromium(exe, width, height)
        opened.append(browser)
        return browser

    yield start
    for b in opened:
        b.close()


def write_tiny_run(run: Path, params: dict | None = None, sh_degree: int = 1) -> Path:
    """A run directory written with the trainer's own writers: 6 ring cameras (radius 3, height 1,
    looking at the origin, z up) and ``params`` (default: 300 random Gaussians) at step 10."""
    import torch

    from recon.config import TrainConfig, save_config
    from recon.data.splits import Split
    from recon.primitives.gaussian import init_from_points
    from recon.run import save_checkpoint, write_cameras
    from viewer.cameras import look_at_pose, pose_to_cameras

    run.mkdir()
    save_config(TrainConfig(), run / "config.json")
    poses = [look_at_pose(np.array([3 * np.cos(a), 3 * np.sin(a), 1.0]), np.zeros(3),
                          np.array([0.0, 0.0, 1.0]), 0.8)
             for a in np.linspace(0, 2 * np.pi, 6, endpoint=False)]
    write_cameras(run, pose_to_cameras(poses, 64, 48), [f"{i}.png" for i in range(6)],
                  Split([0, 1, 2, 3], [4, 5], "generic"), str(run.parent / "no_scene"))
    if params is None:
        g = torch.Generator().manual_seed(0)
        params = init_from_points(torch.randn(300, 3, generator=g) * 0.5, torch.rand(300, 3, generator=g),
                                  sh_degree=sh_degree, opacity=0.8)
    save_checkpoint(run / "checkpoints", 10, params, {}, {}, extra={"sh_degree": sh_degree})
    return run


@pytest.fixture
def tiny_run(tmp_path) -> Path:
    """A run directory written with the trainer's own writers: 300 Gaussians, 6 ring cameras."""
    return write_tiny_run(tmp_path / "run")
