"""Transient and occluder masks from photometric residuals (RobustNeRF / SpotLessSplats, classical).

The residual is taken after the affine colour transform that best maps the render onto the photo
(:func:`matched_residual`, fitted again without the first fit's outliers): an exposure or white
balance the per-image appearance has not yet learnt (a dark photo early in training) would
otherwise raise every residual, and with it the threshold, so the occluders of exactly those photos
went unnoticed. A pixel is an outlier candidate when its residual exceeds a per-image threshold,
``max(scale x quantile(residual, q), floor)``: robust to the image's own error level (a
passer-by covering a third of the photo barely moves the median). Candidates are then judged by
cells of ``cell x cell`` pixels, so whole objects drop out instead of speckle:

1. candidates are opened (3x3 erosion then dilation), which removes lines one or two pixels
   wide (edges the render has not learnt yet) and keeps blobs; a cell is dropped when at least
   ``fraction`` of its pixels are opened candidates;
2. dropped cells with fewer than 3 dropped cells in their 3x3 neighbourhood are restored
   (isolated cells are edges the scene has not learnt yet, not objects), and kept cells with at
   least 5 dropped neighbours are dropped (holes in an occluder);
3. opened candidates in cells touching a dropped cell are dropped too, so the mask follows the object's
   outline at pixel resolution rather than the cell grid.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from recon.wild.appearance import apply_affine, fit_affine


def outlier_threshold(residual: Tensor, quantile: float, scale: float, floor: float) -> Tensor:
    """0-dim threshold ``max(scale x quantile(residual, quantile), floor)`` of an [H, W] residual."""
    flat = residual.reshape(-1).float()
    if flat.numel() > 1 << 24:  # torch.quantile's input limit: a strided subsample estimates it
        flat = flat[:: flat.numel() // (1 << 23) + 1]
    return torch.clamp_min(scale * torch.quantile(flat, quantile), floor)


def matched_residual(
    rgb: Tensor,
    target: Tensor,
    weight: Tensor | None = None,
    quantile: float = 0.5,
    scale: float = 3.0,
    floor: float = 0.1,
) -> Tensor:
    """[H, W] channel-mean absolute residual between the photo and the render mapped onto it by an
    affine colour transform (:func:`recon.wild.appearance.fit_affine`).

    The transform is fitted by least squares on the pixels with ``weight`` > 0.5, then fitted again
    on those whose residual stays under :func:`outlier_threshold`, so an occluder does not bend it.

    Args:
        rgb: [H, W, 3] render (detached).
        target: [H, W, 3] photo.
        weight: [H, W] user mask (0 = no evidence), or None.
        quantile, scale, floor: the threshold of :func:`robust_mask`.
    """
    fit = torch.ones(rgb.shape[:2], dtype=torch.bool, device=rgb.device) if weight is None else weight > 0.5
    for _ in range(2):
        if int(fit.sum()) < 16:  # too few pixels to fit 12 numbers: the raw residual
            return (rgb - target).abs().mean(-1)
        residual = (apply_affine(rgb, fit_affine(rgb[fit], target[fit])) - target).abs().mean(-1)  # [H, W]
        fit = fit & (residual <= outlier_threshold(residual[fit], quantile, scale, floor))
    return residual


def _neighbour_count(cells: Tensor) -> Tensor:
    """Number of set cells in each 3x3 neighbourhood (itself included) of a [h, w] 0/1 grid."""
    return F.avg_pool2d(cells[None, None], 3, stride=1, padding=1, count_include_pad=True)[0, 0] * 9


def opening(x: Tensor) -> Tensor:
    """Morphological opening (3x3 erosion then dilation) of an [H, W] 0/1 image."""
    eroded = -F.max_pool2d(-x[None, None], 3, stride=1, padding=1)
    return F.max_pool2d(eroded, 3, stride=1, padding=1)[0, 0]


def robust_mask(
    residual: Tensor,
    quantile: float = 0.5,
    scale: float = 3.0,
    floor: float = 0.1,
    cell: int = 4,
    fraction: float = 0.5,
) -> Tensor:
    """Inlier weights of one image from its photometric residual.

    Args:
        residual: [H, W] per-pixel residual (e.g. channel-mean absolute error), detached.
        quantile: quantile of the residual that sets the image's error level.
        scale: a candidate's residual exceeds ``scale`` times that level ...
        floor: ... and this absolute value.
        cell: side of the cells in pixels.
        fraction: share of candidate pixels that drops a cell.

    Returns:
        [H, W] float weights, 1 = the pixel counts in the loss, 0 = dropped.
    """
    h, w = residual.shape
    candidate = (residual > outlier_threshold(residual, quantile, scale, floor)).float()  # [H, W]
    blobs = opening(candidate)  # thin lines (edges the render has not learnt yet) removed, objects kept
    share = F.avg_pool2d(blobs[None, None], cell, ceil_mode=True)[0, 0]  # [h, w], partial cells averaged
    dropped = (share >= fraction).float()
    count = _neighbour_count(dropped)
    dropped = torch.where(dropped > 0, (count >= 3).float(), (count >= 5).float())
    near = _neighbour_count(dropped) > 0  # [h, w] cells touching a dropped cell
    up = lambda cells: cells.repeat_interleave(cell, 0).repeat_interleave(cell, 1)[:h, :w]
    drop = (up(dropped) > 0) | (up(near.float()) > 0) & (blobs > 0)  # [H, W]
    return (~drop).float()


def mask_iou(pred: Tensor, truth: Tensor) -> float:
    """Intersection over union of two [H, W] boolean masks (1.0 when both are empty)."""
    union = int((pred | truth).sum())
    return 1.0 if union == 0 else int((pred & truth).sum()) / union
