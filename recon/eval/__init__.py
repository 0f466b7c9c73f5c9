"""Evaluation: image metrics (PSNR, SSIM, LPIPS, masked variants for DTU)."""

from recon.eval.lpips import (
    LPIPS,
    LPIPSUnavailable,
    load_lpips,
    lpips_available,
    lpips_unavailable_reason,
)
from recon.eval.metrics import average_error, composite, mse, psnr, ssim, ssim_map

__all__ = [
    "LPIPS",
    "LPIPSUnavailable",
    "average_error",
    "composite",
    "load_lpips",
    "lpips_available",
    "lpips_unavailable_reason",
    "mse",
    "psnr",
    "ssim",
    "ssim_map",
]
