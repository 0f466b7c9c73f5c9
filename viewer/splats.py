"""Gaussian splats drawn by the browser: sent once, rendered in WebGL by viser's splat renderer.

For Gaussian scenes the viewer sends the splats to every page once (viser's
``scene.add_gaussian_splats``) and the page renders them itself at interactive frame rates; the
server render (every primitive family, render modes, depth) stays one toggle away (the ``View``
dropdown). During training the splats are resent at a low rate (``Splat refresh`` seconds, only
when the training step moved) or on demand (``Send splats now``), never per step.

Conversions follow 3DGS (:mod:`recon.primitives.gaussian`): centres are ``means``; covariances
are ``R S S^T R^T`` with ``R`` from the normalised wxyz quaternion and ``S = diag(exp(scales))``;
colours are SH degree 0 only (``0.5 + C0 * sh0``, clamped: the page has no view-dependent
colour); opacities are ``sigmoid(opacities)``. The splats live in the world frame the viewer's
cameras use, so the page and the server render show the same view, with two differences of
viser's renderer: it drops splats whose centre lies outside 1.1x the view (large Gaussians right
beside the camera vanish in close-ups) and caps a splat's footprint at 1024 pixels.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from contextlib import nullcontext
from dataclasses import dataclass

import numpy as np
from torch import Tensor

from recon.geometry import quat_to_rotmat_np
from recon.primitives.sh import SH_C0
from viewer.render import PrimitiveSet, to_uint8

log = logging.getLogger(__name__)

SPLAT_VIEW, SERVER_VIEW = "browser splats", "server render"
_NODE = "/splats"
_SPLAT_KEYS = ("means", "quats", "scales", "opacities", "sh0")
# float16 (viser's covariance encoding) keeps full precision for magnitudes in [2^-14, 2^16).
_F16_LOG2_RANGE = (-14.0, 15.0)


@dataclass(frozen=True)
class SplatArrays:
    """What the page draws, one row per Gaussian (world frame).

    Attributes:
        centers: [N, 3] float32.
        covariances: [N, 3, 3] float32, symmetric positive definite.
        rgbs: [N, 3] float32 in [0, 1].
        opacities: [N, 1] float32 in [0, 1].
    """

    centers: np.ndarray
    covariances: np.ndarray
    rgbs: np.ndarray
    opacities: np.ndarray

    def __len__(self) -> int:
        return len(self.centers)


def gaussian_splats(params: Mapping[str, Tensor], min_opacity: float = 0.5 / 255) -> SplatArrays:
    """Raw Gaussian parameters -> the arrays the page draws.

    Args:
        params: raw 3DGS parameters: ``means`` [N, 3], ``quats`` [N, 4] (wxyz, any norm),
            ``scales`` [N, 3] (log standard deviations), ``opacities`` [N] (logits), ``sh0``
            [N, 1, 3] (other keys are ignored).
        min_opacity: Gaussians below it are left out (their 8-bit opacity on the page is 0).
    """

    def as_numpy(key: str) -> np.ndarray:
        return params[key].detach().double().cpu().numpy()

    opacity = 1.0 / (1.0 + np.exp(-as_numpy("opacities").reshape(-1)))  # [N]
    keep = opacity >= min_opacity
    R = quat_to_rotmat_np(as_numpy("quats")[keep])  # [M, 3, 3]
    RS = R * np.exp(as_numpy("scales")[keep])[:, None, :]  # [M, 3, 3] = R @ diag(s)
    rgb = np.clip(0.5 + SH_C0 * as_numpy("sh0").reshape(-1, 3)[keep], 0.0, 1.0)
    return SplatArrays(
        centers=as_numpy("means")[keep].astype(np.float32),
        covariances=(RS @ RS.transpose(0, 2, 1)).astype(np.float32),
        rgbs=rgb.astype(np.float32),
        opacities=opacity[keep, None].astype(np.float32),
    )


def float16_scale(covariances: np.ndarray) -> float:
    """A power of two ``s`` such that ``covariances / s**2`` sits inside float16's full-precision
    range (viser sends covariances as float16: small Gaussians would otherwise round to zero).

    The page gets centres / s and covariances / s^2 under a node scaled by s, which is the same
    world geometry; a power of two makes the division exact.
    """
    if len(covariances) == 0:
        return 1.0
    diag = np.diagonal(covariances, axis1=1, axis2=2)  # [N, 3]
    tiny = np.finfo(np.float32).tiny
    lo = np.percentile(np.log2(np.maximum(diag.min(axis=1), tiny)), 1.0)
    hi = np.percentile(np.log2(np.maximum(diag.max(axis=1), tiny)), 99.0)
    centre = 0.5 * (lo + hi) - 0.5 * sum(_F16_LOG2_RANGE)  # log2 of s^2
    return float(2.0 ** round(0.5 * centre))


@dataclass
class SplatSource:
    """Where the browser splats come from.

    Attributes:
        get_params: returns the raw Gaussian parameters (a saved run's, or the trainer's current).
        lock: held while reading them (e.g. ``TrainingState.lock``), or None.
        version: returns something that changes when the parameters do (the training step);
            None = they never change (a saved scene: the splats are sent once).
        refresh_seconds: initial resend interval while the version changes (0 = on demand only).
        background: RGB in [0, 1] the page shows behind the splats (the scene's training
            background, as the server render uses); None = black.
        shown: whether pages start on the splats (else on the server render, one toggle away).
    """

    get_params: Callable[[], Mapping[str, Tensor]]
    lock: object = None
    version: Callable[[], object] | None = None
    refresh_seconds: float = 10.0
    background: tuple[float, float, float] | None = None
    shown: bool = True

    def read(self) -> SplatArrays:
        """The current splats: the tensors are copied under the lock and converted after it."""
        with self.lock if self.lock is not None else nullcontext():
            params = self.get_params()
            params = {k: params[k].detach().clone() for k in _SPLAT_KEYS}
        return gaussian_splats(params)


class SplatView:
    """The server side of the browser splats: the scene node, its GUI and the resend thread.

    Args:
        server: the ``viser.ViserServer``.
        source: where the splats come from.
        on_toggle: called with True when the page switches to splats, False to the server render.
        has_viewers: returns whether any page is connected (no resends while nobody watches).
    """

    def __init__(
        self,
        server,
        source: SplatSource,
        on_toggle: Callable[[bool], None],
        has_viewers: Callable[[], bool] = lambda: True,
    ):
        self.server = server
        self.source = source
        self.on_toggle = on_toggle
        self.has_viewers = has_viewers
        self.handle = None
        self.sends = 0
        self._sent_version: object = None
        self._last_send = 0.0
        self._lock = threading.Lock()
        gui = server.gui
        self._view = gui.add_dropdown(
            "View",
            (SPLAT_VIEW, SERVER_VIEW),
            initial_value=SPLAT_VIEW if source.shown else SERVER_VIEW,
            hint="browser splats: the page draws the Gaussians itself (smooth with a GPU; colour without view "
            "dependence); "
            "server render: every primitive, render mode and depth, rendered here",
        )
        self._info = gui.add_markdown("")
        self._refresh = None
        if source.version is not None:
            self._refresh = gui.add_number(
                "Splat refresh (s)",
                initial_value=float(source.refresh_seconds),
                min=0.0,
                step=1.0,
                hint="resend the splats while training (0 = never)",
            )
        self._send_now = gui.add_button("Send splats now", hint="send the current Gaussians to every page")
        self._view.on_update(lambda _: self._toggled())
        self._send_now.on_click(lambda _: self.send())
        self.send()
        self._stop = threading.Event()
        self._thread = None
        if source.version is not None:
            self._thread = threading.Thread(target=self._poll, name="viewer-splats", daemon=True)
            self._thread.start()

    @property
    def active(self) -> bool:
        """Whether pages show the browser splats (else the server render)."""
        return self._view.value == SPLAT_VIEW

    @active.setter
    def active(self, value: bool) -> None:
        self._view.value = SPLAT_VIEW if value else SERVER_VIEW

    def background_image(self) -> np.ndarray:
        """[8, 8, 3] uint8 of the scene background: what a page shows behind the splats."""
        rgb = np.asarray(self.source.background or (0.0, 0.0, 0.0), dtype=np.float32)
        return to_uint8(np.broadcast_to(rgb, (8, 8, 3)))

    def send(self) -> int:
        """Converts the current Gaussians and sends them to every page; returns their number."""
        with self._lock:
            version = self.source.version() if self.source.version is not None else None
            t0 = time.perf_counter()
            splats = self.source.read()
            s = float16_scale(splats.covariances)
            arrays = (
                splats.centers / s,
                splats.covariances / (s * s),
                to_uint8(splats.rgbs),
                to_uint8(splats.opacities),
            )
            if self.handle is None:
                self.handle = self.server.scene.add_gaussian_splats(_NODE, *arrays, scale=s, visible=self.active)
            else:  # an update in place: pages keep the node (no fade-in again)
                with self.server.atomic():
                    self.handle.scale = s
                    self.handle.set_gaussians(*arrays)
                    self.handle.visible = self.active
            self.sends += 1
            self._sent_version, self._last_send = version, time.perf_counter()
            self._info.content = (
                f"{len(splats):,} splats sent at {time.strftime('%H:%M:%S')} ({(self._last_send - t0) * 1e3:.0f} ms)"
            )
            return len(splats)

    def _stale(self) -> bool:
        """Whether the training moved on since the last send."""
        return self.source.version is not None and self.source.version() != self._sent_version

    def _toggled(self) -> None:
        if self.active and self._stale():
            self.send()
        elif self.handle is not None:
            self.handle.visible = self.active
        self.on_toggle(self.active)

    def _poll(self) -> None:
        while not self._stop.wait(0.25):
            try:
                interval = float(self._refresh.value)
                due = interval > 0 and time.perf_counter() - self._last_send >= interval
                if due and self.active and self.has_viewers() and self._stale():
                    self.send()
            except Exception as err:  # noqa: BLE001 - never let the viewer take training down
                log.warning("splat refresh failed: %s", err)

    def stop(self) -> None:
        """Stops the resend thread."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2.0)


def splat_source(sets: Mapping[str, PrimitiveSet]) -> SplatSource | None:
    """The browser splats of a saved scene: its first Gaussian set, sent once; None without one."""
    prim = next((p for p in sets.values() if p.primitive == "gaussian"), None)
    if prim is None:
        return None
    return SplatSource(lambda: prim.params, background=prim.background)
