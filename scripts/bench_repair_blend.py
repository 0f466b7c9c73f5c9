"""How much of a fixer's change helps real novel views: PSNR of ``render + s (repaired - render)``
on a run's test views for a grid of blends ``s`` (issue #11, pair quality).

A diagnostic, not a tuning loop: the test views are only scored here, never used by training.
It renders the test views of a run trained without repair (``--run``), repairs them with a fitted
fixer (``--model``, e.g. ``RUN/repair/model`` of the same scene's ``--repair auto`` run) the way
training's repair rounds do (nearest training photo warped in, :class:`RepairedViews`), and prints
the masked PSNR for each ``s`` beside the blend :func:`~recon.repair.fixer.calibrate_blend` picks
from the fixer's own held-out pairs (the gate view's noise pairs, then its leave-one-out pairs)::

    python scripts/bench_repair_blend.py --run /tmp/bench/seed_0/off --model /tmp/bench/seed_0/auto/repair/model
"""

from __future__ import annotations

import argparse
import json
import resource
import time
from pathlib import Path

import torch


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--run", required=True, help="a run trained without repair (its test views are scored)")
    p.add_argument("--model", required=True, help="a fitted fixer folder (RUN/repair/model)")
    p.add_argument("--every", type=int, default=3, help="score every N-th test view")
    p.add_argument("--out", default=None, help="write the numbers here as JSON")
    args = p.parse_args()
    t0 = time.perf_counter()

    from recon.eval import metrics
    from recon.render import render, solid_background
    from recon.repair.dataset import load_pairs
    from recon.repair.fixer import calibrate_blend, split_held_out
    from recon.repair.pretrained import load_repair_model
    from recon.repair.source import PseudoViewConfig, RepairedViews
    from recon.run import load_run, load_run_scene
    from recon.train.setup import masked_protocol

    run = load_run(args.run)
    scene = load_run_scene(run)
    model = load_repair_model(args.model)
    model.meta["blend"] = 1.0  # the fixer's own output; blends are applied below
    views = list(run.split.test)[:: args.every]
    train = list(run.split.train)
    bg = solid_background(run.background)  # as training's pseudo views

    def render_fn(cam):
        return render(run.primitive, run.params, cam, sh_degree=run.sh_degree, backgrounds=bg.reshape(1, 3))

    with torch.no_grad():
        repaired = RepairedViews(model, render_fn, scene.cameras[train], [scene.images[i] for i in train],
                                 scene.cameras[views], PseudoViewConfig()).views(0)  # fmt: skip
        renders = [render_fn(scene.cameras[v]).rgb[0].clamp(0, 1) for v in views]
    masked = masked_protocol(run.split.protocol, scene)
    grid = [i / 10 for i in range(11)]
    psnr = {}
    for s in grid:
        vals = [float(metrics.psnr((r + s * (x.image - r)).clamp(0, 1), scene.images[v],
                                   scene.masks[v] if masked else None))
                for v, r, x in zip(views, renders, repaired, strict=True)]  # fmt: skip
        psnr[s] = sum(vals) / len(vals)
    pairs = load_pairs(Path(args.model).parent / "pairs").pairs
    _, gate = split_held_out(pairs)
    held = {q.view for q in gate}
    noise = [q for q in pairs if q.view in held and q.kind == "noise"]
    picked = {"noise pairs": calibrate_blend(model, noise) if noise else None, "loo pairs": calibrate_blend(model, gate)}
    usage = resource.getrusage(resource.RUSAGE_SELF)
    result = {"views": views, "psnr_by_blend": psnr, "calibrated": picked, "wall_s": time.perf_counter() - t0,
              "cpu_s": usage.ru_utime + usage.ru_stime}  # fmt: skip
    for s, v in psnr.items():
        print(f"blend {s:.1f}: masked PSNR {v:.3f} dB ({v - psnr[0.0]:+.3f})")
    print(f"calibrated blend: {json.dumps(picked)}; {result['cpu_s']:.0f} CPU s, {result['wall_s']:.0f} s wall")
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
