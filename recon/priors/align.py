"""Scale/shift alignment of affine-invariant inverse depth (METHODS.md 4.0).

Monocular models (MiDaS, DPT, Depth Anything) predict inverse depth up to an unknown scale ``s``
and shift ``t``. Given a metric reference on some pixels (SfM or MVS depth), fit ``s, t`` so that
``s * x + t ~= 1 / depth_ref`` and convert: ``depth = 1 / (s * x + t)``.
"""

from __future__ import annotations

import torch
from torch import Tensor


def fit_scale_shift_lstsq(x: Tensor, y: Tensor, weights: Tensor | None = None) -> tuple[float, float]:
    """Weighted least squares ``min sum w (s x + t - y)^2`` in closed form.

    Args:
        x: [P] predicted inverse depth; y: [P] reference inverse depth; weights: optional [P].

    Returns:
        (scale, shift).
    """
    x, y = x.double().reshape(-1), y.double().reshape(-1)
    w = torch.ones_like(x) if weights is None else weights.double().reshape(-1)
    if x.numel() < 2:
        raise ValueError("scale/shift fit needs at least 2 reference pixels")
    a00, a01, a11 = (w * x * x).sum(), (w * x).sum(), w.sum()
    b0, b1 = (w * x * y).sum(), (w * y).sum()
    det = a00 * a11 - a01 * a01
    if float(det.abs()) < 1e-18:
        raise ValueError("scale/shift fit is degenerate (constant prediction on the reference pixels)")
    s = (a11 * b0 - a01 * b1) / det
    t = (a00 * b1 - a01 * b0) / det
    return float(s), float(t)


def fit_scale_shift_median(x: Tensor, y: Tensor) -> tuple[float, float]:
    """Robust fit of graphdeco-inria's ``make_depth_scale.py``: ``t(v) = median(v)``,
    ``s(v) = mean |v - t(v)|``; scale = s(y) / s(x), shift = t(y) - t(x) * scale.

    Args:
        x: [P] predicted inverse depth; y: [P] reference inverse depth (more than 10 values).
    """
    x, y = x.double().reshape(-1), y.double().reshape(-1)
    if x.numel() <= 10:
        raise ValueError(f"robust scale/shift fit needs more than 10 reference pixels, got {x.numel()}")
    tx, ty = x.quantile(0.5), y.quantile(0.5)  # numpy-style median (mean of the middle two)
    sx, sy = (x - tx).abs().mean(), (y - ty).abs().mean()
    if float(sx) < 1e-18:
        raise ValueError("scale/shift fit is degenerate (constant prediction on the reference pixels)")
    scale = sy / sx
    return float(scale), float(ty - tx * scale)


def align_inverse_depth(
    pred_inv: Tensor,
    ref_depth: Tensor,
    method: str = "lstsq",
    min_inv: float = 1e-6,
) -> tuple[Tensor, float, float]:
    """Aligns a predicted inverse-depth map to a sparse/partial metric depth map.

    Args:
        pred_inv: [H, W] affine-invariant inverse depth (larger = nearer).
        ref_depth: [H, W] metric depth, 0 where unknown.
        method: ``"lstsq"`` (least squares) or ``"median"`` (robust median/mean-absolute form).
        min_inv: aligned inverse depth is clamped to at least this before inversion.

    Returns:
        metric depth [H, W] (0 where the aligned inverse depth is not positive), scale, shift.
    """
    valid = ref_depth > 0
    x, y = pred_inv[valid], 1.0 / ref_depth[valid]
    if method == "lstsq":
        s, t = fit_scale_shift_lstsq(x, y)
    elif method == "median":
        s, t = fit_scale_shift_median(x, y)
    else:
        raise ValueError(f"unknown alignment method {method!r}: use 'lstsq' or 'median'")
    inv = s * pred_inv.double() + t
    depth = torch.where(inv > min_inv, 1.0 / inv.clamp_min(min_inv), torch.zeros_like(inv))
    return depth.float(), s, t
