"""Headless Chromium driven over the DevTools protocol, for the viewer's browser tests and benchmarks.

No playwright: Chromium is started with ``--remote-debugging-port=0`` and a fresh profile, and its
page target is driven over a websocket (``websockets``, which viser already depends on). Software
WebGL (SwiftShader) draws the page, so it runs on machines without a GPU.
"""

from __future__ import annotations

import base64
import contextlib
import io
import json
import shutil
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np


def find_chromium() -> str | None:
    """Path of a Chromium / Chrome executable, or None when none is installed."""
    return shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


class Chromium:
    """Headless Chromium driven over the DevTools protocol (no playwright needed)."""

    FLAGS = (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--no-first-run",
        "--disable-sync",
        "--disable-quic",
        "--use-gl=swiftshader",
        "--enable-unsafe-swiftshader",
        "--mute-audio",
    )

    def __init__(self, exe: str, width: int = 800, height: int = 600):
        self.profile = Path(tempfile.mkdtemp(prefix="recon-chromium-"))
        self.proc = subprocess.Popen(
            [
                exe,
                *self.FLAGS,
                f"--user-data-dir={self.profile}",
                "--remote-debugging-port=0",
                f"--window-size={width},{height}",
                "about:blank",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
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

    def evaluate(self, expression: str):
        """The value of a JavaScript expression in the page (awaited when it is a promise)."""
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"page error: {result['exceptionDetails'].get('text')}")
        return result["result"].get("value")

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

    def settled_screenshot(self, region: tuple[slice, slice], timeout: float) -> np.ndarray:
        """A screenshot once ``region`` of the page shows something (std > 10) and stopped changing
        (the viewer's fade-in and splat sorting are done), or the last one after ``timeout`` s."""
        deadline = time.time() + timeout
        prev = None
        while True:
            time.sleep(1.0)
            shot = self.screenshot()
            settled = prev is not None and np.abs(shot[region].astype(int) - prev[region]).mean() < 1.0
            if (shot[region].std() > 10 and settled) or time.time() > deadline:
                return shot
            prev = shot

    def close(self) -> None:
        with contextlib.suppress(Exception):  # the page or browser may already be gone
            self.ws.close()
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        shutil.rmtree(self.profile, ignore_errors=True)
