"""The viewer during training: a render function and a small state object, never the trainer.

The trainer calls :func:`start_live_viewer` once with a ``render_fn`` (see :mod:`viewer.render`)
and its ``TrainingState`` (``step``, ``losses``, a primitive count, ``paused``), then keeps
training. The viewer reads the state to show progress, writes ``state.paused`` when a user
presses pause/resume (the trainer decides when to honour it), re-renders connected clients when
the step advances, and spends at most ``render_fraction`` of wall time rendering, so watching
does not slow training down noticeably (see BENCHMARKS.md). Long stages inside a step (diffusion
repair's leave-one-out sub-runs and fixer fit) write ``state.activity``, shown under the step, and
release the state's lock meanwhile, so clients keep rendering the last scene.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping

from viewer.app import SceneContext, ViewerApp
from viewer.render import RenderFn

log = logging.getLogger(__name__)

_COUNT_FIELDS = ("num_primitives", "primitive_count", "num_gaussians", "count")


def describe_state(state: object) -> str:
    """Markdown summary of a training state (any object with ``step``/``losses``/count fields)."""
    parts = [f"**step** {getattr(state, 'step', '?')}"]
    total = getattr(state, "iterations", None) or getattr(state, "max_steps", None)
    if total:
        parts[0] += f" / {total}"
    for name in _COUNT_FIELDS:
        count = getattr(state, name, None)
        if count is not None:
            parts.append(f"**primitives** {int(count):,}")
            break
    losses = getattr(state, "losses", None)
    if isinstance(losses, Mapping):
        parts += [f"**{k}** {float(v):.4g}" for k, v in list(losses.items())[:6]]
    elif isinstance(losses, (int, float)):
        parts.append(f"**loss** {float(losses):.4g}")
    psnr = getattr(state, "psnr", None)
    if psnr:
        parts.append(f"**PSNR** {float(psnr):.2f} dB")
    activity = getattr(state, "activity", "")
    if activity:
        parts.append(f"*{activity}*")
    if getattr(state, "paused", False):
        parts.append("*paused*")
    return "  \n".join(parts)


class LiveViewer:
    """Handle returned by :func:`start_live_viewer`.

    Attributes:
        app: the underlying :class:`ViewerApp` (its ``url``, ``port``, ``num_clients``).
        state: the training state shown and paused.
    """

    def __init__(self, app: ViewerApp, state: object, refresh_seconds: float = 1.0):
        self.app = app
        self.state = state
        self.refresh_seconds = refresh_seconds
        gui = app.server.gui
        with gui.add_folder("Training", order=-1):
            self._stats = gui.add_markdown(describe_state(state))
            self._pause = gui.add_button(self._pause_label(), hint="pause or resume training")
        self._pause.on_click(lambda _: self.toggle_pause())
        self._stop = threading.Event()
        self._last_step = getattr(state, "step", None)
        self._last_activity = getattr(state, "activity", "")
        self._thread = threading.Thread(target=self._poll, name="viewer-live-poll", daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return self.app.url

    @property
    def paused(self) -> bool:
        return bool(getattr(self.state, "paused", False))

    def _pause_label(self) -> str:
        return "Resume training" if self.paused else "Pause training"

    def toggle_pause(self) -> bool:
        """Flips ``state.paused``; returns the new value."""
        self.state.paused = not self.paused
        self._pause.label = self._pause_label()
        self._stats.content = describe_state(self.state)
        return self.paused

    def _poll(self) -> None:
        while not self._stop.wait(self.refresh_seconds):
            try:
                step = getattr(self.state, "step", None)
                if step != self._last_step:
                    self._last_step = step
                    self._stats.content = describe_state(self.state)
                    self.app.refresh_all()
                    if self.app.masks is not None:  # the robust masks change as training goes
                        self.app.masks.refresh()
                activity = getattr(self.state, "activity", "")
                if activity != self._last_activity:  # a long stage inside a step (repair): show how far it got
                    self._last_activity = activity
                    self._stats.content = describe_state(self.state)
                if self._pause.label != self._pause_label():
                    self._pause.label = self._pause_label()
            except Exception as err:  # noqa: BLE001 -- never let the viewer take training down
                log.warning("live viewer update failed: %s", err)

    def close(self) -> None:
        """Stops polling, the render threads and the server."""
        self._stop.set()
        self._thread.join(timeout=2.0)
        self.app.stop()


def start_live_viewer(render_fn: RenderFn, state: object, host: str = "127.0.0.1",
                      port: int = 8080, *, scene: SceneContext | None = None,
                      render_fraction: float = 0.05, max_resolution: int = 384,
                      refresh_seconds: float = 1.0, verbose: bool = True) -> LiveViewer:
    """Starts the viewer beside a training loop and returns at once.

    Args:
        render_fn: ``(camera, settings) -> [H, W, 3] uint8`` rendering the current parameters
            (called from viewer threads under ``torch.no_grad`` by the caller's function).
        state: the trainer's ``TrainingState``: ``step``, ``losses``, a primitive count and a
            writable ``paused`` flag.
        host: interface to bind; 127.0.0.1 keeps it private to this machine.
        port: first port to try (the next free one is used and printed when taken).
        scene: cameras, thumbnails and prior points to draw.
        render_fraction: cap on the fraction of wall time spent rendering for clients.
        max_resolution: initial longer side of still renders (lower = cheaper).
        refresh_seconds: how often the state is polled and clients re-rendered.
    """
    app = ViewerApp(render_fn, scene, host=host, port=port, max_resolution=max_resolution,
                    render_fraction=render_fraction, title="recon (training)", verbose=verbose)
    return LiveViewer(app, state, refresh_seconds=refresh_seconds)
