"""Evaluation of a run on its protocol's test views: PSNR, SSIM, LPIPS, masked variants, images."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from PIL import Image

from recon.data.scene import SceneData
from recon.eval import metrics
from recon.render import render, solid_background
from recon.run import LoadedRun
from recon.train.setup import masked_protocol
from recon.wild.protocol import apply_appearance, nerfw_halves, protocol_name, reference_transform

if TYPE_CHECKING:
    from recon.repair.postpass import FrameRepair


@dataclass
class EvalResult:
    """Means over test views (``lpips`` None when its weights are not available) and per view rows.

    Runs with per-image appearance (recon.wild) are scored with the NeRF-W protocol (``protocol``
    says how); ``appearance`` names the reference appearance of the images and of the rows'
    ``psnr_reference`` / ``ssim_reference`` (whole image, no fitting). ``repaired``: scored through
    the repair post-pass (``recon eval --repair``).
    """

    psnr: float
    ssim: float
    lpips: float | None
    views: list[dict[str, Any]]
    masked: bool
    protocol: str | None = None
    appearance: str | None = None
    repaired: bool = False

    def to_dict(self) -> dict[str, Any]:
        out = {"psnr": self.psnr, "ssim": self.ssim, "lpips": self.lpips, "masked": self.masked}
        if self.protocol is not None:
            out.update(protocol=self.protocol, appearance=self.appearance)
        if self.repaired:
            out["repaired"] = True
        return {**out, "views": self.views}


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
def evaluate_run(run: LoadedRun, scene: SceneData, out_dir: Path | None = None, images: bool = True,
                 appearance: str | None = None, repair: FrameRepair | None = None) -> EvalResult:
    """Renders the test views of ``run`` and scores them against ``scene``.

    Masked scenes (DTU) use the protocol's masked metrics: render and ground truth composited on
    white with the object mask, PSNR over mask pixels, SSIM/LPIPS on the composited images.
    Runs with per-image appearance render in the reference ``appearance`` (default: the run's
    ``wild.reference``) and are scored with the NeRF-W protocol (:mod:`recon.wild.protocol`).
    With ``repair`` each test render goes through the repair post-pass first (Difix3D+), with the
    nearest training photo as reference. A model that repairs renders on any background (a fixer
    fitted on random backgrounds, a pretrained pipeline: ``FrameRepair.any_background``) gets the
    render on the evaluation's background and its output is scored as it is: it fills holes in the
    model and keeps the background. A fixer fitted on one background only (recon's before
    ``FixerConfig.random_background``) gets the render on that one (the run's, black when it was
    random) and its output goes back onto the evaluation's (``+ (1 - alpha) (bg - repair bg)``), so
    it is scored on the plain render's baseline (a black background alone moves DTU scan24's masked
    PSNR by +1.7 dB on a random-background run: holes in the model show it).
    """
    test = run.split.test
    masked = masked_protocol(run.split.protocol, scene)
    lp = _lpips_model()
    device, backend = render_device(run)
    params = {k: v.to(device) for k, v in run.params.items()}  # checkpoints are read onto the CPU
    bg = run.background if run.background is not None else torch.ones(3)
    appearance = appearance or run.config.wild.reference
    ref = reference_transform(run.extra.get("wild"), appearance)  # [3, 4], [12, L, Gy, Gx] grid or None
    rows = []
    repair_bg = solid_background(run.background).reshape(1, 3)

    def render_repair_input(camera):
        return render(run.primitive, params, camera, sh_degree=run.sh_degree, backgrounds=repair_bg, backend=backend)

    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
    for i in test:
        cam = scene.cameras[i]
        if repair is None or repair.any_background:
            out = render(run.primitive, params, cam, sh_degree=run.sh_degree, backgrounds=bg.reshape(1, 3),
                         backend=backend)
            rgb = out.rgb[0] if repair is None else repair(out, cam, render_repair_input).to(out.rgb)
        else:  # the repair's change, on the render over the evaluation's own background
            out = render_repair_input(cam)
            fixed = repair(out, cam, render_repair_input).to(out.rgb)  # [H, W, 3]
            rgb = (fixed + (1 - out.alpha[0]) * (bg - repair_bg).to(out.rgb)).clamp(0, 1)
        raw = rgb.cpu()  # [H, W, 3] scored on the CPU, beside the ground truth
        pred = (raw if ref is None else apply_appearance(raw, ref)).clamp(0, 1)
        gt = scene.images[i]
        mask = scene.masks[i] if masked else None
        row: dict[str, Any] = {"name": scene.names[i], "index": i}
        if ref is not None:
            row["psnr_reference"] = float(metrics.psnr(pred, gt, mask))
            row["ssim_reference"] = float(metrics.ssim(pred, gt, mask))
        sp, sg = (pred, gt) if ref is None else nerfw_halves(raw, gt, ref)  # scored pair
        sm = None if mask is None else mask[:, mask.shape[1] - sp.shape[1]:]
        row.update(psnr=float(metrics.psnr(sp, sg, sm)), ssim=float(metrics.ssim(sp, sg, sm)))
        a, b = (metrics.composite(sp, sm), metrics.composite(sg, sm)) if sm is not None else (sp, sg)
        row["lpips"] = None if lp is None else float(lp(a[None], b[None]).mean())
        a, b = (metrics.composite(pred, mask), metrics.composite(gt, mask)) if mask is not None else (pred, gt)
        rows.append(row)
        if images and out_dir is not None:
            pair = torch.cat([b, a], dim=1).mul(255).round().byte().numpy()
            Image.fromarray(np.ascontiguousarray(pair)).save(out_dir / f"{Path(scene.names[i]).stem}.png")

    def mean(key: str) -> float | None:
        vals = [r[key] for r in rows if r[key] is not None]
        return float(np.mean(vals)) if vals and len(vals) == len(rows) else None

    res = EvalResult(psnr=mean("psnr") or math.nan, ssim=mean("ssim") or math.nan, lpips=mean("lpips"),
                     views=rows, masked=masked, protocol=None if ref is None else protocol_name(ref),
                     appearance=None if ref is None else appearance, repaired=repair is not None)
    if out_dir is not None:
        (out_dir / "metrics.json").write_text(json.dumps(res.to_dict(), indent=1))
    return res
