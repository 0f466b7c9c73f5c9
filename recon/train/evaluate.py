"""Evaluation of a run on its protocol's test views: PSNR, SSIM, LPIPS, masked variants, images."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from recon.data.scene import SceneData
from recon.eval import metrics
from recon.render import render
from recon.train.run import LoadedRun
from recon.train.setup import masked_protocol


@dataclass
class EvalResult:
    """Means over test views (``lpips`` None when its weights are not available) and per view rows."""

    psnr: float
    ssim: float
    lpips: float | None
    views: list[dict[str, Any]]
    masked: bool

    def to_dict(self) -> dict[str, Any]:
        return {"psnr": self.psnr, "ssim": self.ssim, "lpips": self.lpips, "masked": self.masked, "views": self.views}


def _lpips_model():
    try:
        from recon.eval.lpips import LPIPS, lpips_available
    except ImportError:
        return None
    if not lpips_available("vgg"):
        return None
    try:
        return LPIPS("vgg")
    except Exception:  # noqa: BLE001 - any failure to load means "unavailable", never a fake value
        return None


def render_device(run: LoadedRun) -> tuple[torch.device, str]:
    """Device and backend to render ``run`` with: its training ones, or the CPU with backend ``auto``
    when its device is not here (a run trained on a GPU evaluated on a CPU machine)."""
    device = torch.device(run.config.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        return torch.device("cpu"), "auto"
    return device, run.config.backend


@torch.no_grad()
def evaluate_run(run: LoadedRun, scene: SceneData, out_dir: Path | None = None, images: bool = True) -> EvalResult:
    """Renders the test views of ``run`` and scores them against ``scene``.

    Masked scenes (DTU) use the protocol's masked metrics: render and ground truth composited on
    white with the object mask, PSNR over mask pixels, SSIM/LPIPS on the composited images.
    """
    test = run.split.test
    masked = masked_protocol(run.split.protocol, scene)
    lp = _lpips_model()
    device, backend = render_device(run)
    params = {k: v.to(device) for k, v in run.params.items()}  # checkpoints are read onto the CPU
    bg = run.background if run.background is not None else torch.ones(3)
    rows = []
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
    for i in test:
        out = render(run.primitive, params, scene.cameras[i], sh_degree=run.sh_degree,
                     backgrounds=bg.reshape(1, 3), backend=backend)
        pred = out.rgb[0].clamp(0, 1).cpu()  # scored on the CPU, beside the ground truth
        gt = scene.images[i]
        mask = scene.masks[i] if masked else None
        row: dict[str, Any] = {"name": scene.names[i], "index": i,
                               "psnr": float(metrics.psnr(pred, gt, mask)), "ssim": float(metrics.ssim(pred, gt, mask))}
        a, b = (metrics.composite(pred, mask), metrics.composite(gt, mask)) if mask is not None else (pred, gt)
        row["lpips"] = None if lp is None else float(lp(a[None], b[None]).mean())
        rows.append(row)
        if images and out_dir is not None:
            pair = torch.cat([b, a], dim=1).mul(255).round().byte().numpy()
            Image.fromarray(np.ascontiguousarray(pair)).save(out_dir / f"{Path(scene.names[i]).stem}.png")

    def mean(key: str) -> float | None:
        vals = [r[key] for r in rows if r[key] is not None]
        return float(np.mean(vals)) if vals and len(vals) == len(rows) else None

    res = EvalResult(psnr=mean("psnr") or math.nan, ssim=mean("ssim") or math.nan, lpips=mean("lpips"),
                     views=rows, masked=masked)
    if out_dir is not None:
        (out_dir / "metrics.json").write_text(json.dumps(res.to_dict(), indent=1))
    return res
