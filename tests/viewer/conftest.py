"""Viewer test fixtures: an analytic render function (ray-traced sphere) and headless Chromium."""

from __future__ import annotations

import base64
import io
import json
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from recon.cameras import Cameras
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


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Chromium:
    """Headless Chromium driven over the DevTools protocol (no playwright needed)."""

    FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             "--disable-component-update", "--no-first-run", "--disable-sync", "--disable-quic",
             "--use-gl=swiftshader", "--enable-unsafe-swiftshader", "--mute-audio"]

    def __init__(self, exe: str, width: int, height: int):
        self.profile = Path(tempfile.mkdtemp(prefix="recon-chromium-"))
        self.proc = subprocess.Popen(
            [exe, *self.FLAGS, f"--user-data-dir={self.profile}", "--remote-debugging-port=0",
             f"--window-size={width},{height}", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        port_file = self.profile / "DevToolsActivePort"
        deadline = time.time() + 60
        while not port_file.exists() or not port_file.read_text().strip():
            if time.time() > deadline or self.proc.poll() is not None:
                self.close()
                raise RuntimeError("chromium did not open its DevTools port")
            time.sleep(0.1)
        port = int(port_file.read_text().split()[0])
        targets = json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list"))
        page = next(t for t in targets if t["type"] == "page")
        from websockets.sync.client import connect

        self.ws = connect(page["webSocketDebuggerUrl"], max_size=64 * 1024 * 1024)
        self._id = 0

    def call(self, method: str, **params) -> dict:
        self._id += 1
        self.ws.send(json.dumps({"id": self._id, "method": method, "params": params}))
        while True:
            msg = json.loads(self.ws.recv(timeout=60))
            if msg.get("id") == self._id:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg.get("result", {})

    def open(self, url: str) -> None:
        self.call("Page.enable")
        self.call("Page.navigate", url=url)

    def screenshot(self) -> np.ndarray:
        """[H, W, 3] uint8 of the page as displayed."""
        from PIL import Image

        for attempt in range(20):  # right after navigation the page may not be attached yet
            try:
                data = base64.b64decode(self.call("Page.captureScreenshot", format="png")["data"])
                break
            except RuntimeError:
                if attempt == 19:
                    raise
                time.sleep(0.5)
        return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))

    def close(self) -> None:
        try:
            self.ws.close()
        except Exception:  # noqa: BLE001
            pass
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        shutil.rmtree(self.profile, ignore_errors=True)


@pytest.fixture
def chromium():
    """A factory for headless Chromium windows; skips when Chromium is not installed."""
    exe = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
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
    from recon.train.checkpoint import save_checkpoint
    from recon.train.run import write_cameras
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
