"""Benchmark of the rasterization engine: forward+backward time per image, accuracy, memory.

For every primitive family and every available backend (reference twin, CPU kernels, CUDA
kernels, and gsplat's CUDA rasterizer for Gaussians) this renders a random scene of N primitives
at W x H, back-propagates random cotangents, and reports the median time per image (wall clock,
and on CPU also the process CPU time of all threads, which a busy shared machine disturbs less),
the max abs difference of colour / alpha / depth to the reference (at the small size) and the
peak memory (process RSS on CPU, ``torch.cuda.max_memory_allocated`` on GPU). Each case runs in
its own process so that peak RSS belongs to that case alone.

    python scripts/bench_raster.py            # table
    python scripts/bench_raster.py --json     # one JSON document
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

FAMILIES = ("gaussian", "triangle", "convex", "ges")


def look_at(eye: list[float]) -> torch.Tensor:
    eye_t = torch.tensor(eye)
    fwd = -eye_t / eye_t.norm()
    right = torch.linalg.cross(fwd, torch.tensor([0.0, -1.0, 0.0]))
    right = right / right.norm()
    R = torch.stack([right, torch.linalg.cross(fwd, right), fwd])
    M = torch.eye(4)
    M[:3, :3], M[:3, 3] = R, -R @ eye_t
    return M


def make_scene(family: str, N: int, W: int, seed: int = 0) -> dict[str, torch.Tensor]:
    """N primitives in a unit ball seen by one camera at distance 3 (about 60 degrees fov)."""
    g = torch.Generator().manual_seed(seed)
    centres = (torch.rand(N, 3, generator=g) * 2 - 1) * 1.0  # [N, 3]
    size = 0.6 / N ** (1 / 3)  # neighbours overlap a little, as after densification
    scene = {
        "viewmats": look_at([0.0, 0.0, -3.0])[None],
        "Ks": torch.tensor([[0.9 * W, 0.0, W / 2], [0.0, 0.9 * W, W / 2], [0.0, 0.0, 1.0]])[None],
        "colors": torch.rand(1, N, 3, generator=g),
        "opacities": torch.rand(N, generator=g) * 0.8 + 0.1,
    }
    if family in ("gaussian", "ges"):
        scene["means"] = centres
        scene["quats"] = torch.randn(N, 4, generator=g)
        scene["scales"] = (torch.rand(N, 3, generator=g) * 0.5 + 0.25) * size
        if family == "ges":  # beta around the learnt values (median 2.1, see BENCHMARKS.md), none exactly 2
            scene["shape"] = torch.rand(N, generator=g) * 1.5 + 1.5
    elif family == "triangle":
        scene["vertices"] = centres[:, None, :] + torch.randn(N, 3, 3, generator=g) * size
        scene["sigma"] = torch.rand(N, generator=g) + 0.5
    else:
        K = 6
        scene["points"] = centres[:, None, :] + torch.randn(N, K, 3, generator=g) * size
        scene["delta"] = torch.full((N,), 0.05) / size
        scene["sigma"] = torch.full((N,), 1e-3) / size
    return scene


def render(backend: str, family: str, s: dict[str, torch.Tensor], W: int):
    """The public op with one backend (stages 1-3); returns colors [1,H,W,3], alphas, depths."""
    from recon.ops.family import raster_family
    from recon.ops.rasterize import rasterize

    fam = raster_family(family)
    inputs = {spec.name: s[spec.name] for spec in fam.inputs}
    out = rasterize(fam, inputs, s["colors"][0], s["viewmats"], s["Ks"], W, W, backend=backend)
    return out.colors, out.alphas, out.depths


def run_case(family: str, backend: str, N: int, W: int, repeats: int) -> dict:
    """Times forward+backward of one (family, backend) and measures its error to the reference."""
    device = "cuda" if backend in ("cuda", "gsplat") else "cpu"
    s = {k: v.to(device) for k, v in make_scene(family, N, W).items()}
    if backend in ("cpu", "cuda"):
        from recon.ops import kernels

        ok, why = kernels.available(device)
        if not ok:
            return {"skipped": why}
    params = [k for k in s if k not in ("viewmats", "Ks")]

    def step():
        xs = {k: (v.clone().requires_grad_() if k in params else v) for k, v in s.items()}
        out = render(backend, family, xs, W)
        loss = sum((o * (i + 1.0)).mean() for i, o in enumerate(out))
        loss.backward()
        return out

    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    out = step()  # warm-up (and build)
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    times, cpu_times = [], []
    for _ in range(repeats):
        sync()
        t0, c0 = time.perf_counter(), time.process_time()
        step()
        sync()
        times.append(time.perf_counter() - t0)
        cpu_times.append(time.process_time() - c0)
    result = {"ms_per_image": 1e3 * sorted(times)[len(times) // 2], "N": N, "size": W}
    if device == "cpu":  # all threads of the process
        result["cpu_ms_per_image"] = 1e3 * sorted(cpu_times)[len(cpu_times) // 2]
    if device == "cuda":
        result["peak_mem_mb"] = torch.cuda.max_memory_allocated() / 2**20
    else:
        result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if W <= 256 and backend != "reference":
        s_cpu = {k: v.cpu() for k, v in s.items()}
        with torch.no_grad():
            ref_out = render("reference", family, s_cpu, W)
        result["max_abs_diff"] = {
            name: (a.detach().cpu() - b).abs().max().item()
            for name, a, b in zip(("color", "alpha", "depth"), out, ref_out)
        }
    return result


def cases(gpu: bool) -> list[tuple[str, str, int, int, int]]:
    rows = []
    for fam in FAMILIES:
        rows.append((fam, "reference", 20_000, 256, 2))
        rows.append((fam, "cpu", 20_000, 256, 5))
        if gpu:
            rows.append((fam, "cuda", 20_000, 256, 10))
            rows.append((fam, "cuda", 200_000, 800, 10))
            if fam == "gaussian":
                rows.append((fam, "gsplat", 20_000, 256, 10))
                rows.append((fam, "gsplat", 200_000, 800, 10))
    return rows


def machine() -> dict:
    info = {"python": platform.python_version(), "torch": torch.__version__, "threads": torch.get_num_threads()}
    try:
        lscpu = subprocess.run(["lscpu"], check=False, capture_output=True, text=True).stdout
        info["cpu"] = next(l.split(":", 1)[1].strip() for l in lscpu.splitlines() if "Model name" in l)
    except (OSError, StopIteration):
        info["cpu"] = platform.processor()
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name()
    return info


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    parser.add_argument("--case", nargs=5, metavar=("FAMILY", "BACKEND", "N", "SIZE", "REPEATS"),
                        help="run one case in this process (used internally)")  # fmt: skip
    parser.add_argument("--families", default=",".join(FAMILIES), help="comma-separated subset")
    args = parser.parse_args()
    if args.case:
        fam, backend, N, W, rep = args.case
        print(json.dumps(run_case(fam, backend, int(N), int(W), int(rep))))
        return
    from rich.progress import track

    wanted = set(args.families.split(","))
    results = []
    todo = [c for c in cases(torch.cuda.is_available()) if c[0] in wanted]
    for case in track(todo, description="benchmarking", disable=args.json):
        cmd = [sys.executable, __file__, "--case", *map(str, case)]
        proc = subprocess.run(cmd, check=False, capture_output=True, text=True)
        row = {"family": case[0], "backend": case[1]}
        try:
            row.update(json.loads(proc.stdout.strip().splitlines()[-1]))
        except (IndexError, json.JSONDecodeError):
            row["error"] = proc.stderr.strip().splitlines()[-1:] or ["no output"]
        results.append(row)
    for fam in wanted:  # speed-ups measured side by side in this run
        rows = {(r["backend"], r.get("size")): r for r in results if r["family"] == fam}
        ref = rows.get(("reference", 256), {})
        for r in results:
            if r["family"] != fam or r.get("size") != 256:
                continue
            if ref.get("ms_per_image") and "ms_per_image" in r:
                r["speedup_vs_reference"] = ref["ms_per_image"] / r["ms_per_image"]
            if ref.get("cpu_ms_per_image") and "cpu_ms_per_image" in r:
                r["cpu_time_speedup_vs_reference"] = ref["cpu_ms_per_image"] / r["cpu_ms_per_image"]
    doc = {"machine": machine(), "results": results}
    if args.json:
        print(json.dumps(doc, indent=2))
        return
    print(f"machine: {doc['machine']}")
    print(f"{'family':9} {'backend':9} {'N':>7} {'size':>5} {'ms/img':>9} {'x ref':>7} "
          f"{'cpu ms':>8} {'x ref':>7} {'mem MB':>8}  max|diff| c/a/d")  # fmt: skip
    for r in results:
        if "ms_per_image" not in r:
            print(f"{r['family']:9} {r['backend']:9} {r.get('skipped') or r.get('error')}")
            continue
        mem = r.get("peak_rss_mb", r.get("peak_mem_mb", 0.0))
        diff = r.get("max_abs_diff")
        diff_s = "/".join(f"{diff[k]:.1e}" for k in ("color", "alpha", "depth")) if diff else "-"
        sp, sp_cpu, cpu_ms = (
            r.get(k) for k in ("speedup_vs_reference", "cpu_time_speedup_vs_reference", "cpu_ms_per_image")
        )
        print(f"{r['family']:9} {r['backend']:9} {r['N']:>7} {r['size']:>5} {r['ms_per_image']:>9.1f} "
              f"{(f'{sp:.1f}' if sp else '-'):>7} {(f'{cpu_ms:.1f}' if cpu_ms else '-'):>8} "
              f"{(f'{sp_cpu:.1f}' if sp_cpu else '-'):>7} {mem:>8.0f}  {diff_s}")  # fmt: skip


if __name__ == "__main__":
    main()
