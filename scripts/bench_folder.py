"""A photo folder end to end against the same scene with its known poses.

The scene's photos are copied, without their poses, into a plain folder (box-downscaled by
``--downscale``, lossless PNG); ``recon train`` + ``recon eval`` run on that folder (poses by
SfM) and on the posed dataset (read with the same ``--downscale``), with the same protocol
(``llff``: names sorted, every ``--test-every``-th a test view) and schedule. Each run is scored
against its own cameras: SfM's frame differs from the dataset's, the test image names are the
same (checked, and reported when SfM drops some). Prints one JSON object::

    python scripts/bench_folder.py --scene ../shared/data/instant_ngp/fox/transforms_available.json \\
        --downscale 8 --iterations 1000 --out /tmp/bench_folder

Numbers go to BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from recon.config import load_preset, override
from recon.data.formats import load_scene
from recon.data.images import downscale_array, open_upright
from recon.train.cli import _evaluate, run_training


@dataclass
class RunReport:
    """One run: where, its scores and costs."""

    run: str
    psnr: float
    test_names: list[str]
    per_view: dict[str, float]
    train_cpu_s: float
    eval_cpu_s: float


@dataclass
class FolderReport:
    """The comparison: the posed run, the folder run, and SfM's registration."""

    posed: RunReport
    folder: RunReport
    registered: int
    photos: int
    sfm_cpu_s: float
    same_test_names: bool
    common_test_names: list[str] = field(default_factory=list)
    psnr_posed_common: float = float("nan")
    psnr_folder_common: float = float("nan")


def copy_photos(scene_path: str | Path, dest: Path, downscale: float = 1) -> list[str]:
    """Copies the images a posed scene lists into ``dest`` (flat, PNG, box-downscaled, upright),
    with no pose file. Returns the source names in scene order."""
    source = load_scene(scene_path, downscale=downscale, verbose=False)
    root = Path(scene_path)
    root = root.parent if root.is_file() else root
    dest.mkdir(parents=True, exist_ok=True)
    for name in source.names:
        arr = torch.from_numpy(np.asarray(open_upright(root / name).convert("RGB"), np.float32) / 255.0)
        small = downscale_array(arr, downscale).mul(255).round().clamp(0, 255).byte().numpy()
        Image.fromarray(small).save(dest / f"{Path(name).stem}.png")
    return list(source.names)


def _train_and_eval(data_path: str, out: Path, downscale: float, preset: str, iterations: int, test_every: int,
                    seed: int, overrides: dict | None) -> RunReport:
    changes = {"data.path": data_path, "data.downscale": downscale, "data.protocol": "llff",
               "data.test_every": test_every, "iterations": iterations, "seed": seed, **(overrides or {})}
    config = override(load_preset(preset), **changes)
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    t0 = time.process_time()
    run_training(config, out, quiet=True)
    t1 = time.process_time()
    res = _evaluate(out, images=False)
    per_view = {Path(v["name"]).stem: float(v["psnr"]) for v in res.views}
    return RunReport(str(out), float(res.psnr), list(per_view), per_view, t1 - t0, time.process_time() - t1)


def compare_folder(scene_path: str | Path, out: str | Path, downscale: float = 1, preset: str = "dense",
                   iterations: int = 1000, test_every: int = 8, seed: int = 0,
                   overrides: dict | None = None) -> FolderReport:
    """Trains and evaluates ``scene_path`` with its poses and as a plain photo folder.

    ``overrides`` are config changes for both runs (``{"init.method": "random"}``). Test names
    are compared by file stem (the folder holds ``<stem>.png``).
    """
    out = Path(out)
    photos = out / "photos"
    if photos.exists():
        shutil.rmtree(photos)
    names = copy_photos(scene_path, photos, downscale)
    posed = _train_and_eval(str(scene_path), out / "run_posed", downscale, preset, iterations, test_every, seed, overrides)
    folder = _train_and_eval(str(photos), out / "run_folder", 1, preset, iterations, test_every, seed, overrides)
    sfm = sorted((out / "run_folder" / "sfm").glob("sfm-*/sfm.json"))
    sfm_info = json.loads(sfm[0].read_text()) if sfm else {}
    common = [n for n in posed.test_names if n in folder.per_view]
    report = FolderReport(posed, folder, len(sfm_info.get("registered", [])), len(names),
                          float(sfm_info.get("cpu_seconds", float("nan"))), posed.test_names == folder.test_names, common)
    if common:
        report.psnr_posed_common = float(np.mean([posed.per_view[n] for n in common]))
        report.psnr_folder_common = float(np.mean([folder.per_view[n] for n in common]))
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scene", required=True, help="a posed scene (folder or transforms file)")
    parser.add_argument("--out", default="/tmp/bench_folder", help="work folder (photos, both runs)")
    parser.add_argument("--downscale", type=float, default=1)
    parser.add_argument("--preset", default="dense")
    parser.add_argument("--iterations", type=int, default=1000)
    parser.add_argument("--test-every", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--init", default=None, help="init.method override (preset's when unset)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    t0 = time.perf_counter()
    report = compare_folder(args.scene, args.out, args.downscale, args.preset, args.iterations, args.test_every,
                            args.seed, {} if args.init is None else {"init.method": args.init})
    data = asdict(report)
    for key in ("posed", "folder"):
        data[key].pop("per_view")
    data["wall_s"] = time.perf_counter() - t0
    print(json.dumps(data, indent=1))


if __name__ == "__main__":
    main()
