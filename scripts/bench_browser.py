"""Browser frame rate of a run: splats drawn by the page (WebGL) vs images rendered by the server.

Serves RUN as ``recon view`` does, opens it in headless Chromium (software WebGL, SwiftShader:
no GPU; a real browser on a real GPU is much faster) and orbits the camera the way a user does,
with a left-button drag in the page at ``--rate`` mouse moves per second (each move waits until
the page has handled it, so a slow page also gets fewer). For each view it reports, over
``--seconds`` (one value per round, the views alternating):

- page FPS: ``requestAnimationFrame`` callbacks per second in the page (the page redraws the
  three.js scene each callback, so slow drawing lowers it);
- server FPS: images the server pushed per second (``browser splats``: none);
- CPU seconds of this process (server, render threads) and of Chromium's process tree.

    recon demo --out runs/demo && python scripts/bench_browser.py runs/demo [--seconds 10]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import resource
import time
from pathlib import Path

import numpy as np


def tree_cpu_seconds(root: int) -> float:
    """User + system CPU seconds of process ``root`` and all its descendants (Linux /proc)."""
    parent, cpu = {}, {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:  # the process ended meanwhile
            continue
        pid = int(entry.name)
        parent[pid] = int(fields[1])
        cpu[pid] = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    total, stack = 0.0, [root]
    children: dict[int, list[int]] = {}
    for pid, ppid in parent.items():
        children.setdefault(ppid, []).append(pid)
    while stack:
        pid = stack.pop()
        total += cpu.get(pid, 0.0)
        stack += children.get(pid, [])
    return total


def self_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def mouse(browser, kind: str, x: float, y: float) -> None:
    """One left-button mouse event in the page (the viewer orbits its camera on a left drag)."""
    browser.call(
        "Input.dispatchMouseEvent",
        type=kind,
        x=x,
        y=y,
        button="left",
        buttons=0 if kind == "mouseReleased" else 1,
        clickCount=1 if kind != "mouseMoved" else 0,
    )


def snapshot(browser, renderer) -> np.ndarray:
    """[page frames, server images, server CPU s, Chromium CPU s, time s] now."""
    return np.array(
        [
            browser.evaluate("window.__frames"),
            renderer.renders,
            self_cpu_seconds(),
            tree_cpu_seconds(browser.proc.pid),
            time.perf_counter(),
        ],
        dtype=np.float64,
    )


def measure(
    app, browser, seconds: float, rate: float, span: tuple[float, float] | None, y: float = 0.0, warmup: float = 2.0
) -> dict:
    """Frame rates and CPU in the app's current view while a left drag sweeps the page's camera back and
    forth over ``span`` (x pixels) at ``rate`` mouse moves per second; a still camera when ``span`` is None."""
    renderer = next(iter(app.renderers.values()))
    x, step, moves = (span or (0.0,))[0], 4.0, 0
    if span is not None:
        mouse(browser, "mousePressed", x, y)
    try:
        for phase_seconds in (warmup, seconds):  # warm-up (sorting, first renders), then measured
            start, moves = snapshot(browser, renderer), 0
            end = time.perf_counter() + phase_seconds
            while (now := time.perf_counter()) < end:
                if span is not None:
                    step = step if span[0] <= x + step <= span[1] else -step
                    x += step
                    mouse(browser, "mouseMoved", x, y)
                    moves += 1
                time.sleep(max(0.0, 1.0 / rate - (time.perf_counter() - now)))
        frames, renders, server_cpu, chromium_cpu, wall = snapshot(browser, renderer) - start
    finally:
        if span is not None:
            mouse(browser, "mouseReleased", x, y)
    return {
        "page_fps": frames / wall,
        "server_fps": renders / wall,
        "mouse_moves_per_s": moves / wall,
        "server_cpu_s": server_cpu,
        "chromium_cpu_s": chromium_cpu,
        "wall_s": wall,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", type=Path, help="run directory (e.g. from `recon demo --out runs/demo`)")
    ap.add_argument("--seconds", type=float, default=10.0, help="measured seconds per view")
    ap.add_argument("--rate", type=float, default=30.0, help="mouse moves per second of the camera drag")
    ap.add_argument("--warmup", type=float, default=2.0, help="seconds before each measurement (2.5x after loading)")
    ap.add_argument("--rounds", type=int, default=2, help="measurements per view (alternating order)")
    ap.add_argument("--size", type=int, nargs=2, default=(800, 600), help="browser window")
    ap.add_argument("--max-resolution", type=int, default=512, help="server render size (recon view's default)")
    ap.add_argument("--backend", default="auto")
    ap.add_argument("--port", type=int, default=8095)
    ap.add_argument("--keep", type=int, default=None, help="variant: only the first N Gaussians")
    ap.add_argument("--shrink", type=float, default=1.0, help="variant: Gaussians F times smaller (less overdraw)")
    args = ap.parse_args()
    if args.size[0] < 800:
        raise SystemExit("--size: at least 800 pixels wide, so the drag misses the GUI panel")

    import torch

    from viewer.app import ViewerApp
    from viewer.cameras import cameras_to_poses, pose_to_cameras
    from viewer.cli import scene_context
    from viewer.headless import Chromium, find_chromium
    from viewer.loading import load_viewable
    from viewer.render import RenderSettings, make_render_fn

    exe = find_chromium()
    if exe is None:
        raise SystemExit("headless Chromium not installed (apt-get install -y chromium)")
    load = os.getloadavg()
    viewable = load_viewable(args.run)
    context = scene_context(viewable)
    if context.splats is None:
        raise SystemExit(f"{args.run}: no Gaussians, nothing for the page to draw")
    gaussians = context.splats.get_params()  # the dict the server renders too
    for key in list(gaussians):
        gaussians[key] = gaussians[key][: args.keep] - (math.log(args.shrink) if key == "scales" else 0.0)
    render_fn = make_render_fn(viewable.sets, backend=args.backend)
    render_fn(pose_to_cameras(cameras_to_poses(viewable.cameras)[0], 64, 48), RenderSettings())  # loads the kernels
    app = ViewerApp(
        render_fn,
        context,
        port=args.port,
        max_resolution=args.max_resolution,
        verbose=False,
    )
    browser = Chromium(exe, *args.size)
    results = {}
    try:
        browser.open(app.url)
        deadline = time.time() + 120
        while app.num_clients == 0 and time.time() < deadline:
            time.sleep(0.2)
        time.sleep(2.5 * args.warmup)  # the page loads, the splats fade in
        browser.evaluate(
            "window.__frames = 0; (function tick() { window.__frames++; requestAnimationFrame(tick); })(); 0"
        )
        span, y = (0.1 * args.size[0], 0.5 * args.size[0]), 0.45 * args.size[1]  # left of the GUI panel
        views = [("splats, still", None), ("splats, moving", span), ("server, moving", span)]
        for r in range(args.rounds):  # order A B C, C B A, ... cancels slow drifts of the machine's load
            for view, drag in views if r % 2 == 0 else views[::-1]:
                app.splats.active = view.startswith("splats")
                results.setdefault(view, []).append(
                    measure(app, browser, args.seconds, args.rate, drag, y, args.warmup)
                )
    finally:
        browser.close()
        app.stop()

    n = len(app.splats.source.read())
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, load average {load[0]:.1f} before / "
        f"{os.getloadavg()[0]:.1f} after (other work shares them), torch threads {torch.get_num_threads()}; "
        "headless Chromium, software WebGL (SwiftShader)"
    )
    print(
        f"run {args.run}: {n:,} Gaussians (--keep {args.keep}, --shrink {args.shrink:g}); window {args.size[0]}x{args.size[1]}, server renders up to "
        f"{args.max_resolution} px (preview 0.35x while moving), backend {args.backend}; "
        f"drag {args.rate:g} mouse moves/s"
    )
    keys = ("page_fps", "server_fps", "mouse_moves_per_s", "server_cpu_s", "chromium_cpu_s", "wall_s")
    print("| view | page FPS (rAF) | server images/s | mouse moves/s | server CPU s | Chromium CPU s | wall s |")
    print("|---|---|---|---|---|---|---|")
    for view, rows in results.items():
        cells = " | ".join(" / ".join(f"{row[k]:.1f}" for row in rows) for k in keys)
        print(f"| {view} | {cells} |")
    print(json.dumps({"gaussians": n, **results}))


if __name__ == "__main__":
    main()
