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
import os
import platform
import resource
import time
from pathlib import Path


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


def measure(app, browser, seconds: float, rate: float, span: tuple[float, float], y: float) -> dict:
    """Frame rates and CPU while a left drag sweeps the page's camera back and forth at ``rate``
    mouse moves per second, in the app's current view."""
    renderer = next(iter(app.renderers.values()))
    x, step = span[0], 4.0
    mouse(browser, "mousePressed", x, y)
    counters = []
    try:
        for phase_seconds in (2.0, seconds):  # warm-up (sorting, first renders), then measured
            counters.append(
                (
                    browser.evaluate("window.__frames"),
                    renderer.renders,
                    self_cpu_seconds(),
                    tree_cpu_seconds(browser.proc.pid),
                    time.perf_counter(),
                    0,
                )
            )
            moves, end = 0, time.perf_counter() + phase_seconds
            while (now := time.perf_counter()) < end:
                if not span[0] <= x + step <= span[1]:
                    step = -step
                x += step
                mouse(browser, "mouseMoved", x, y)
                moves += 1
                time.sleep(max(0.0, 1.0 / rate - (time.perf_counter() - now)))
        counters.append(
            (
                browser.evaluate("window.__frames"),
                renderer.renders,
                self_cpu_seconds(),
                tree_cpu_seconds(browser.proc.pid),
                time.perf_counter(),
                moves,
            )
        )
    finally:
        mouse(browser, "mouseReleased", x, y)
    (f0, r0, c0, b0, t0, _), (f1, r1, c1, b1, t1, moves) = counters[1:]
    wall = t1 - t0
    return {
        "page_fps": (f1 - f0) / wall,
        "server_fps": (r1 - r0) / wall,
        "mouse_moves_per_s": moves / wall,
        "wall_s": wall,
        "server_cpu_s": c1 - c0,
        "chromium_cpu_s": b1 - b0,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", type=Path, help="run directory (e.g. from `recon demo --out runs/demo`)")
    ap.add_argument("--seconds", type=float, default=10.0, help="measured seconds per view")
    ap.add_argument("--rate", type=float, default=30.0, help="mouse moves per second of the camera drag")
    ap.add_argument("--rounds", type=int, default=2, help="measurements per view (alternating order)")
    ap.add_argument("--size", type=int, nargs=2, default=(800, 600), help="browser window")
    ap.add_argument("--max-resolution", type=int, default=512, help="server render size (recon view's default)")
    ap.add_argument("--backend", default="auto")
    ap.add_argument("--port", type=int, default=8095)
    args = ap.parse_args()

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
    viewable = load_viewable(args.run)
    context = scene_context(viewable)
    if context.splats is None:
        raise SystemExit(f"{args.run}: no Gaussians, nothing for the page to draw")
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
        time.sleep(5.0)  # the page loads, the splats fade in
        browser.evaluate(
            "window.__frames = 0; (function tick() { window.__frames++; requestAnimationFrame(tick); })(); 0"
        )
        span, y = (0.1 * args.size[0], 0.5 * args.size[0]), 0.45 * args.size[1]  # left of the GUI panel
        for r in range(args.rounds):  # order A B, B A, ... cancels slow drifts of the machine's load
            for view in ("splats", "server") if r % 2 == 0 else ("server", "splats"):
                app.splats.active = view == "splats"
                results.setdefault(view, []).append(measure(app, browser, args.seconds, args.rate, span, y))
    finally:
        browser.close()
        app.stop()

    n = len(app.splats.source.read())
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores (shared with other work), torch threads "
        f"{torch.get_num_threads()}; headless Chromium, software WebGL (SwiftShader)"
    )
    print(
        f"run {args.run}: {n:,} Gaussians; window {args.size[0]}x{args.size[1]}, server renders up to "
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
