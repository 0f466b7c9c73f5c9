"""Does watching training in the live viewer slow training down? (target: <= ~10%)

A CPU training-like loop (render Gaussians with the recon engine, L1 loss, backward, Adam) runs
in alternating phases: without a viewer, and with :func:`viewer.live.start_live_viewer` serving
a simulated client whose camera moves all the time (the worst case: a preview render and a
full render requested continuously). The simulated client stands in for a browser on another
machine: its images are JPEG-encoded exactly as viser sends them, but no browser runs here.

    python scripts/bench_viewer.py [--steps 40] [--rounds 2] [--render-fraction 0.05]
"""

from __future__ import annotations

import argparse
import contextlib
import platform
import statistics
import threading
import time
from types import SimpleNamespace

import numpy as np
import torch


class SimulatedClient:
    """A viser client stand-in: a camera orbiting the scene, images JPEG-encoded on arrival."""

    def __init__(self, width: int = 800, height: int = 600):
        from viewer.cameras import look_at_pose

        self._look_at = look_at_pose
        self.client_id = 1
        self.callbacks: list = []
        self.frames = 0
        self.camera = SimpleNamespace(image_width=width, image_height=height, fov=0.8,
                                      aspect=width / height, on_update=self.callbacks.append)
        self.scene = SimpleNamespace(set_background_image=self._receive)
        self.gui = SimpleNamespace(add_markdown=lambda content, order=None: SimpleNamespace(content=content))
        self._stop = threading.Event()
        self.move(0.0)

    @contextlib.contextmanager
    def atomic(self):
        yield

    def _receive(self, image, format="jpeg", jpeg_quality=None):
        from viser._scene_api import _encode_image_binary

        _encode_image_binary(image, format, jpeg_quality=jpeg_quality)
        self.frames += 1

    def move(self, angle: float) -> None:
        pose = self._look_at(np.array([3 * np.cos(angle), 3 * np.sin(angle), 1.0]), np.zeros(3),
                             np.array([0.0, 0.0, 1.0]), 0.8)
        self.camera.wxyz, self.camera.position = pose.wxyz, pose.position
        for cb in self.callbacks:
            cb(self.camera)

    def keep_moving(self, hz: float = 30.0) -> threading.Thread:
        def run():
            k = 0
            while not self._stop.wait(1.0 / hz):
                k += 1
                self.move(0.02 * k)

        t = threading.Thread(target=run, daemon=True)
        t.start()
        return t

    def stop(self) -> None:
        self._stop.set()


def make_problem(n: int, size: tuple[int, int], backend: str):
    from recon.primitives.gaussian import init_from_points
    from recon.render import render
    from viewer.cameras import look_at_pose, pose_to_cameras

    g = torch.Generator().manual_seed(0)
    params = init_from_points(torch.randn(n, 3, generator=g) * 0.5, torch.rand(n, 3, generator=g),
                              sh_degree=1, opacity=0.5)
    params = {k: v.requires_grad_(True) for k, v in params.items()}
    # lr = 0: Adam does all its work but the scene (and so the cost of a step) stays fixed, so
    # phases measured at different times are comparable.
    opt = torch.optim.Adam(list(params.values()), lr=0.0)
    cams = [pose_to_cameras(look_at_pose(np.array([3 * np.cos(a), 3 * np.sin(a), 1.0]), np.zeros(3),
                                         np.array([0.0, 0.0, 1.0]), 0.8), *size)
            for a in np.linspace(0, 2 * np.pi, 8, endpoint=False)]
    targets = [torch.rand(1, size[1], size[0], 3, generator=g) for _ in cams]

    def step(i: int, lock) -> None:
        with lock:
            out = render("gaussian", params, cams[i % 8], sh_degree=1, backend=backend)
            loss = (out.rgb - targets[i % 8]).abs().mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

    return params, step


def time_steps(step, steps: int, lock, state) -> list[float]:
    out = []
    for _ in range(steps):
        t0 = time.perf_counter()
        step(state.step, lock)
        state.step += 1
        out.append(time.perf_counter() - t0)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--gaussians", type=int, default=3000)
    ap.add_argument("--size", type=int, nargs=2, default=(256, 192))
    ap.add_argument("--backend", default="auto")
    ap.add_argument("--render-fraction", type=float, default=0.05)
    args = ap.parse_args()

    from recon.train.state import TrainingState
    from viewer.live import start_live_viewer
    from viewer.render import make_live_render_fn

    state = TrainingState(iterations=10**9)
    params, step = make_problem(args.gaussians, tuple(args.size), args.backend)
    time_steps(step, 5, state.lock, state)  # warm-up (builds the extension when needed)
    render_fn = make_live_render_fn("gaussian", lambda: params, lambda: 1, lock=state.lock,
                                    backend=args.backend)

    def control() -> list[float]:
        # The same moving camera thread, with no viewer attached: waking threads alone change
        # step times on this VM, so the control phase has them too.
        idle = SimulatedClient()
        mover = idle.keep_moving()
        try:
            return time_steps(step, args.steps, state.lock, state)
        finally:
            idle.stop()
            mover.join()

    base, watched, frames, busy, wall = [], [], 0, 0.0, 0.0
    for r in range(args.rounds):
        if r % 2 == 0:  # order A B, B A, ... cancels slow drifts of the machine's load
            base += control()
        live = start_live_viewer(render_fn, state, port=8765 + r, render_fraction=args.render_fraction,
                                 verbose=False)
        client = SimulatedClient()
        live.app._on_connect(client)
        mover = client.keep_moving()
        t0 = time.perf_counter()
        watched += time_steps(step, args.steps, state.lock, state)
        wall += time.perf_counter() - t0
        client.stop()
        mover.join()
        frames += client.frames
        busy += live.app.budget.busy_seconds
        live.close()
        if r % 2 == 1:
            base += control()

    mb, mw = statistics.median(base), statistics.median(watched)
    sb, sw = sum(base), sum(watched)
    print(f"machine: {platform.processor() or platform.machine()}, torch threads {torch.get_num_threads()}")
    print(f"{args.gaussians} Gaussians, {args.size[0]}x{args.size[1]}, backend {args.backend}, "
          f"render_fraction {args.render_fraction}, {args.rounds} x {args.steps} steps per phase")
    print(f"step time without viewer: median {mb * 1e3:.1f} ms, total {sb:.2f} s")
    print(f"step time with a moving client: median {mw * 1e3:.1f} ms, total {sw:.2f} s")
    print(f"slowdown (total time): {100 * (sw / sb - 1):+.1f}%   (median: {100 * (mw / mb - 1):+.1f}%)")
    print(f"client frames delivered: {frames} ({frames / max(wall, 1e-9):.2f} FPS), "
          f"render busy {100 * busy / max(wall, 1e-9):.1f}% of wall time")


if __name__ == "__main__":
    main()
