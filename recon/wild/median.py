"""Weather filter before training: the multi-view median through known poses (snow, rain; classical).

Rain streaks and snowflakes sit at a different place in every photo, the surface does not. For each
training view, the other training views are warped into it through the view's depth (the scene's
depth maps, else stereo depth; :func:`recon.priors.consistency.warp_to_view`), keeping only samples
that see the same surface point (the source's own depth agrees within ``occlusion``), and brought into
the view's colours by an affine colour transform fitted on the pixels both see (photos in the wild
change exposure and white balance from shot to shot; :func:`match_colours`). Per pixel:

* ``m``: the per-channel median of the warped samples (the view's own pixel left out);
* ``d = mean_c |I - m|``: how far the photo is from it; an outlier when ``d > threshold``, with
  ``threshold = max(scale x 1.4826 x median(d), floor)`` over the pixels of the view that have samples
  (the view's own warping and exposure error level, as a MAD), and (``brighter``) when the photo is
  brighter than ``m`` there: rain and snow add light to what they cover (the photometric constraint of
  Garg & Nayar, "Detection and removal of rain from videos", CVPR 2004), while warping errors at edges
  go both ways;
* ``support``: warped samples within ``threshold`` of ``m``.

Outliers with ``support >= min_views`` are replaced by ``m``; outliers with fewer agreeing views
cannot be repaired and are marked invalid (the trainer leaves them out of the loss). Pixels that no
other view sees (unknown depth, outside every source) are left as they are.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

from recon.cameras import Cameras
from recon.config import TrainConfig
from recon.data.scene import SceneData
from recon.errors import ConfigError
from recon.priors._progress import stderr_console, track
from recon.priors.consistency import backproject, warp_to_view
from recon.wild.appearance import apply_affine, fit_affine
from recon.wild.masks import save_mask_png

MAD_TO_SIGMA = 1.4826  # median absolute deviation of a normal distribution -> its standard deviation
MEDIAN_REPLACED = "median_replaced"  # RUN/wild/<this>/<stem>.png: 0 = pixel replaced by the median
MEDIAN_VALID = "median_valid"  # RUN/wild/<this>/<stem>.png: 0 = outlier left out of the loss


@dataclass
class MedianFiltered:
    """One view after the filter.

    Attributes:
        image: [H, W, 3] the filtered photo.
        replaced: [H, W] bool pixels replaced by the multi-view median.
        valid: [H, W] bool, False on outliers too few views agree on (left out of the loss).
        threshold: the view's outlier threshold (mean absolute colour difference).
    """

    image: Tensor
    replaced: Tensor
    valid: Tensor
    threshold: float


def warped_samples(
    v: int, sources: list[int], images: list[Tensor], depths: list[Tensor], cameras: Cameras, occlusion: float = 0.02
) -> tuple[Tensor, Tensor]:
    """The source views' colours at view ``v``'s pixels, through ``v``'s depth.

    Args:
        v: the reference view (index into ``images``, ``depths``, ``cameras``).
        sources: the views to warp into it.
        images: per view [H, W, 3] photos.
        depths: per view [H, W] camera-z depth (0 = unknown); a source's depth decides whether it
            sees the reference's surface point (its depth there within ``occlusion`` x z, else occluded).
        cameras: the views' cameras.
        occlusion: relative depth tolerance of the visibility test.

    Returns:
        ([S, H, W, 3] warped colours, [S, H, W] bool: the source sees that surface point).
    """
    depth = depths[v].double()  # [H, W]
    h, w = depth.shape
    world = backproject(depth, cameras.Ks[v], cameras.viewmats[v])  # [H, W, 3] float64 surface points
    colours, valid = [], []
    for s in sources:
        hs, ws = images[s].shape[:2]
        Ks, Vs = cameras.Ks[s].double(), cameras.viewmats[s].double()
        grid, ok = warp_to_view(depth, cameras.Ks[v].double(), cameras.viewmats[v].double(), Ks, Vs, ws, hs)
        grid = grid.float()[None]  # [1, H, W, 2]
        src = images[s].permute(2, 0, 1)[None].float()  # [1, 3, Hs, Ws]
        colours.append(F.grid_sample(src, grid, mode="bilinear", padding_mode="border", align_corners=False)[0])
        # The surface point's depth seen from the source vs. what the source's own depth map holds there.
        z = (world @ Vs[2, :3] + Vs[2, 3]).float()  # [H, W]
        seen = F.grid_sample(depths[s][None, None].float(), grid, mode="nearest", align_corners=False)[0, 0]
        valid.append(ok & (seen > 0) & ((seen - z).abs() <= occlusion * z))
    if not colours:
        return torch.zeros(0, h, w, 3), torch.zeros(0, h, w, dtype=torch.bool)
    return torch.stack(colours).permute(0, 2, 3, 1), torch.stack(valid)


def match_colours(image: Tensor, samples: Tensor, valid: Tensor, min_pixels: int = 64, rounds: int = 3) -> Tensor:
    """Each warped sample in the view's colours: an affine colour transform per source (its exposure and
    white balance against the view's), least squares over the pixels it sees, refitted ``rounds`` times
    without the worst 10 % of the last fit (rain, occluders, edges); sources seeing fewer than
    ``min_pixels`` pixels are left as they are.

    Args:
        image: [H, W, 3] the view's photo.
        samples: [S, H, W, 3] warped colours; valid: [S, H, W] bool (:func:`warped_samples`).

    Returns:
        [S, H, W, 3] the samples after their transforms.
    """
    out = samples.clone()
    for s in range(samples.shape[0]):
        src, dst = samples[s][valid[s]], image[valid[s]]  # [P, 3] each
        if src.shape[0] < min_pixels:
            continue
        transform = fit_affine(src, dst)  # [3, 4]
        for _ in range(rounds):  # trimmed least squares: the worst 10 % of the last fit left out
            residual = (apply_affine(src, transform) - dst).abs().mean(-1)  # [P]
            inliers = residual <= torch.quantile(residual, 0.9)
            transform = fit_affine(src[inliers], dst[inliers])
        out[s] = apply_affine(samples[s], transform)
    return out


def median_filter_view(
    image: Tensor,
    samples: Tensor,
    valid: Tensor,
    scale: float = 3.0,
    floor: float = 0.08,
    min_views: int = 3,
    brighter: bool = True,
) -> MedianFiltered:
    """Replaces the pixels of ``image`` that differ from the median of the warped samples.

    Args:
        image: [H, W, 3] the view's photo.
        samples: [S, H, W, 3] the other views warped into it (:func:`warped_samples`).
        valid: [S, H, W] bool which samples see the pixel's surface point.
        scale: outliers differ by more than ``scale`` robust standard deviations of the view's differences ...
        floor: ... and by more than this mean absolute colour difference.
        min_views: samples that must agree with the median for a pixel to be replaced.
        brighter: only pixels brighter than the median are outliers (rain, snow).
    """
    masked = torch.where(valid[..., None], samples, torch.full_like(samples, float("nan")))
    median = masked.nanmedian(dim=0).values  # [H, W, 3], nan where no sample
    seen = valid.any(0)  # [H, W]
    diff = (image - median).abs().mean(-1)  # [H, W], nan where unseen
    level = diff[seen].median() if bool(seen.any()) else torch.tensor(0.0)
    threshold = max(scale * MAD_TO_SIGMA * float(level), floor)
    agree = ((samples - median).abs().mean(-1) <= threshold) & valid  # [S, H, W]
    support = agree.sum(0)  # [H, W]
    outlier = seen & (diff > threshold)
    if brighter:
        outlier &= (image - median).mean(-1) > 0
    replaced = outlier & (support >= min_views)
    filtered = torch.where(replaced[..., None], median, image)
    return MedianFiltered(filtered, replaced, ~(outlier & ~replaced), threshold)


def median_filter_views(
    images: list[Tensor],
    depths: list[Tensor],
    cameras: Cameras,
    scale: float = 3.0,
    floor: float = 0.08,
    min_views: int = 3,
    brighter: bool = True,
    occlusion: float = 0.02,
    colours: bool = True,
    progress: bool = False,
) -> list[MedianFiltered]:
    """The filter applied to every view, each against all the others.

    Args:
        images: per view [H, W, 3] photos (the training views only: test views must stay unseen).
        depths: per view [H, W] camera-z depth (0 = unknown).
        cameras: the views' cameras.
        scale, floor, min_views, brighter: see :func:`median_filter_view`; occlusion: see :func:`warped_samples`.
        colours: bring the samples into each view's colours first (:func:`match_colours`).
        progress: show a progress bar on an interactive terminal.

    Returns:
        per view its :class:`MedianFiltered` (all computed from the unfiltered photos).
    """
    out = []
    for v in track(range(len(images)), "weather filter (multi-view median)", enabled=progress):
        sources = [s for s in range(len(images)) if s != v]
        samples, valid = warped_samples(v, sources, images, depths, cameras, occlusion)
        if colours:
            samples = match_colours(images[v], samples, valid)
        out.append(median_filter_view(images[v], samples, valid, scale, floor, min_views, brighter))
    return out


def filter_weather(
    config: TrainConfig, scene: SceneData, train_ids: list[int], run_dir: Path | None = None, verbose: bool = True
) -> list[MedianFiltered] | None:
    """``wild.weather median``: filters the training photos of ``scene`` in place before training.

    The depth is the scene's own depth maps, else stereo depth (:func:`recon.train.setup.depth_prior_maps`).
    Pixels too few views agree on join ``scene.user_masks`` (left out of the loss and of stereo). The
    masks of replaced / left-out pixels go to ``RUN/wild/median_replaced/<stem>.png`` and
    ``RUN/wild/median_valid/<stem>.png`` (0 = replaced / left out). Returns the per-view results, or
    None when the option is off.

    Raises:
        ConfigError: no depth for the training views (no depth maps, stereo not installed or failed).
    """
    from recon.train.setup import depth_prior_maps

    wild = config.wild
    if wild.weather != "median":
        return None
    depths = depth_prior_maps(scene, train_ids, "auto")
    if depths is None:
        raise ConfigError(
            "wild.weather median: no depth for the training views (no depth maps in the scene, stereo failed "
            "or is not installed)",
            hint="pip install 'recon[priors]', or set wild.weather off",
        )
    images = [scene.images[i] for i in train_ids]
    results = median_filter_views(
        images, depths, scene.cameras[train_ids], wild.median_scale, wild.median_floor, wild.median_min_views,
        wild.median_brighter, progress=verbose,
    )  # fmt: skip
    if scene.user_masks is None and any(not bool(r.valid.all()) for r in results):
        scene.user_masks = [torch.ones(im.shape[:2]) for im in scene.images]
    for i, r in zip(train_ids, results, strict=True):
        scene.images[i] = r.image.contiguous()
        if scene.user_masks is not None:
            scene.user_masks[i] = scene.user_masks[i] * r.valid.to(scene.user_masks[i])
        if run_dir is not None:
            stem = Path(scene.names[i]).stem
            save_mask_png(~r.replaced, run_dir / "wild" / MEDIAN_REPLACED / f"{stem}.png")
            save_mask_png(r.valid, run_dir / "wild" / MEDIAN_VALID / f"{stem}.png")
    if verbose:
        replaced = sum(int(r.replaced.sum()) for r in results) / sum(r.replaced.numel() for r in results)
        left_out = sum(int((~r.valid).sum()) for r in results) / sum(r.valid.numel() for r in results)
        stderr_console().print(
            f"weather filter: {100 * replaced:.2f} % of training pixels replaced by the multi-view median, "
            f"{100 * left_out:.2f} % left out of the loss (too few views agree)"
        )
    return results
