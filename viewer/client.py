"""One render thread per browser client: latest request wins, preview while moving, full when still.

A :class:`ClientRenderer` never queues work. Camera updates only set a flag; the thread reads
the client's *current* camera when it is ready to render, so a burst of 100 camera messages
costs at most one preview render plus one full-resolution render once the camera has been
still for ``still_delay`` seconds. A shared :class:`RenderBudget` serialises renders across
clients and caps the fraction of wall time spent rendering (so a live viewer cannot starve
training).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections import deque
from collections.abc import Callable

import numpy as np

from viewer.cameras import ViewPose, fit_resolution, pose_to_cameras
from viewer.render import RenderFn, RenderSettings, check_image

log = logging.getLogger(__name__)


class RenderBudget:
    """Serialises renders and keeps them under a fraction of wall time.

    After a render that took ``d`` seconds, the next one may start only ``d * (1 - f) / f``
    seconds later, where ``f = max_fraction``; ``f = 1`` means no throttling.
    """

    def __init__(self, max_fraction: float = 1.0):
        if not 0.0 < max_fraction <= 1.0:
            raise ValueError(f"max_fraction must be in (0, 1], got {max_fraction}")
        self.max_fraction = max_fraction
        self._lock = threading.Lock()
        self._next_start = 0.0
        self.busy_seconds = 0.0

    def run(self, fn: Callable[[], np.ndarray], stop: threading.Event) -> np.ndarray | None:
        """Runs ``fn`` when the budget allows; None if ``stop`` was set while waiting."""
        with self._lock:
            while (wait := self._next_start - time.perf_counter()) > 0:
                if stop.wait(min(wait, 0.05)):
                    return None
            if stop.is_set():
                return None
            t0 = time.perf_counter()
            try:
                return fn()
            finally:
                d = time.perf_counter() - t0
                self.busy_seconds += d
                self._next_start = time.perf_counter() + d * (1.0 - self.max_fraction) / self.max_fraction


class ClientRenderer:
    """Renders one client's view on its own thread.

    Args:
        client: the viser ``ClientHandle``.
        render_fn: the render contract (camera, settings) -> [H, W, 3] uint8.
        get_settings: returns the current :class:`RenderSettings` (read at render time).
        get_max_resolution: the longer image side of full-resolution renders.
        budget: shared render budget.
        preview_scale: preview resolution as a fraction of full resolution.
        still_delay: seconds without camera motion before the full-resolution render.
        on_stats: called with a markdown string after each render (FPS, render time).
        active: returns whether the server renders for this client at all (False while the page
            draws browser splats itself, :mod:`viewer.splats`); None = always.
    """

    def __init__(
        self,
        client,
        render_fn: RenderFn,
        get_settings: Callable[[], RenderSettings],
        get_max_resolution: Callable[[], int],
        budget: RenderBudget,
        *,
        preview_scale: float = 0.35,
        still_delay: float = 0.2,
        on_stats: Callable[[str], None] | None = None,
        active: Callable[[], bool] | None = None,
    ):
        self.client = client
        self.render_fn = render_fn
        self.get_settings = get_settings
        self.get_max_resolution = get_max_resolution
        self.budget = budget
        self.preview_scale = preview_scale
        self.still_delay = still_delay
        self.on_stats = on_stats
        self.active = active
        self.renders = 0
        self.errors = 0
        self.last_error: str | None = None
        self._cond = threading.Condition()
        self._preview_pending = False
        self._full_pending = False
        self._last_move = 0.0
        self._stop = threading.Event()
        self._times: deque[float] = deque(maxlen=30)
        self._thread = threading.Thread(target=self._loop, name=f"viewer-client-{client.client_id}", daemon=True)
        self._thread.start()

    # ------------------------------------------------------------------ requests
    def camera_moved(self) -> None:
        """The camera changed: render a preview now and the full image once it stops."""
        with self._cond:
            self._preview_pending = True
            self._last_move = time.perf_counter()
            self._cond.notify()

    def refresh(self) -> None:
        """The scene or a setting changed: render full resolution (no preview)."""
        with self._cond:
            self._full_pending = True
            self._cond.notify()

    def stop(self, timeout: float | None = None) -> None:
        self._stop.set()
        with self._cond:
            self._cond.notify()
        if timeout is not None and threading.current_thread() is not self._thread:
            self._thread.join(timeout)

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    # ------------------------------------------------------------------ thread
    def _next_job(self) -> float | None:
        """Waits for work; returns the resolution scale of the next render or None to stop."""
        with self._cond:
            while not self._stop.is_set():
                if self.active is not None and not self.active():  # the page draws itself: drop requests
                    self._preview_pending = self._full_pending = False
                if self._preview_pending:
                    self._preview_pending = False
                    self._full_pending = True
                    return self.preview_scale
                if self._full_pending:
                    wait = self._last_move + self.still_delay - time.perf_counter()
                    if wait <= 0:
                        self._full_pending = False
                        return 1.0
                    self._cond.wait(wait)
                else:
                    self._cond.wait(0.5)
        return None

    def _loop(self) -> None:
        while (scale := self._next_job()) is not None:
            try:
                self._render_once(scale)
            except Exception as err:  # noqa: BLE001 - a client may vanish mid-render; never kill the thread
                self.errors += 1
                self.last_error = f"{type(err).__name__}: {err}"
                log.warning("viewer render for client %s failed: %s", self.client.client_id, self.last_error)
                if self.on_stats is not None and not self._stop.is_set():
                    with contextlib.suppress(Exception):  # the client may be gone
                        self.on_stats(f"**render failed**: `{self.last_error[:200]}`")

    def _render_once(self, scale: float) -> None:
        cam = self.client.camera
        pose = ViewPose(np.array(cam.wxyz), np.array(cam.position), float(cam.fov))
        aspect = float(cam.aspect) if cam.image_height > 0 else 1.0
        width, height = fit_resolution(aspect, max(32, int(self.get_max_resolution() * scale)))
        camera = pose_to_cameras(pose, width, height)
        settings = self.get_settings()

        elapsed: list[float] = []

        def job() -> np.ndarray:
            t0 = time.perf_counter()
            out = check_image(self.render_fn(camera, settings), width, height)
            elapsed.append(time.perf_counter() - t0)
            return out

        image = self.budget.run(job, self._stop)
        if image is None:
            return
        render_ms = elapsed[0] * 1e3
        self.client.scene.set_background_image(image, format="jpeg", jpeg_quality=90)
        self.renders += 1
        now = time.perf_counter()
        self._times.append(now)
        span = self._times[-1] - self._times[0]
        fps = (len(self._times) - 1) / span if len(self._times) > 1 and span > 0 else 0.0
        if self.on_stats is not None:
            kind = "preview" if scale < 1.0 else "full"
            self.on_stats(f"{fps:.1f} FPS | {render_ms:.0f} ms ({kind} {width}x{height})")
