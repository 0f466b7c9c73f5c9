"""Multi-view stereo on known poses, in PyTorch (no network, no CUDA needed).

For every reference view, on an image pyramid (2x2 box averages, ``len(iterations)`` levels):

1. **Plane sweep** on the coarsest level: ``num_depths`` fronto-parallel planes uniform in inverse
   depth between the view's near and far bounds; every source view is warped onto every plane
   (``x_s ~ K_s (R_rel K_r^-1 x_r / inv + t_rel)``, ``grid_sample``); winner takes all with a
   parabolic sub-plane refinement.
2. **Propagation and refinement** on every level, coarse to fine
   (:mod:`recon.priors.patchmatch`): each pixel tries its neighbours' planes (jumps of 1, 4 and
   16 px in four directions) and its own depth moved by a shrinking step (one source pixel,
   halved every iteration), keeps the cheapest, and the map is median filtered.
3. **Geometric pass** (ACMM's multi-view geometric consistency) on the finest level, once every
   view has a depth map: hypotheses also pay their forward-backward reprojection error through
   the other views' first-pass depth, which settles repeated or weak texture.

The matching cost is ``1 - ZNCC`` over a ``window`` square plus a truncated absolute grey-level
difference (which separates the shifted copies of a smooth gradient that ZNCC alone cannot),
averaged over the best half of the source views (robust to occlusion). Depth maps are then
filtered by cost, texture and geometric consistency (METHODS.md 5.4): a pixel is kept when,
reprojected through the depth map of at least ``min_consistent`` other views and back, it lands
within ``reproj_px`` pixels with a relative depth difference below ``rel_depth``; the kept pixels
are fused into a coloured point cloud. Object masks, when the caller passes them, drop depth
outside the object (so the geometric pass trusts the other views' depth only inside it); they
never enter the photometric cost.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from recon.errors import DataError
from recon.priors.consistency import backproject as _backproject
from recon.priors.consistency import consistency_check
from recon.priors.patchmatch import (
    box_mean,
    hypothesis_costs,
    median_filter,
    pixel_rate,
    propagate,
    winner,
)
from recon.priors.pointcloud import PointCloud


@dataclass(frozen=True)
class MVSConfig:
    """Multi-view stereo settings."""

    num_depths: int = 64
    """Number of inverse-depth planes between near and far."""
    window: int = 7
    """ZNCC window side in pixels (odd), on every pyramid level."""
    num_sources: int = 4
    """Source views per reference view (the closest camera centres)."""
    max_cost: float = 1.3
    """Reject pixels whose best aggregated cost (``1 - ZNCC`` plus the weighted absolute
    difference, in [0, 2 + ad_weight]) is above this."""
    min_texture: float = 0.003
    """Reject pixels whose reference window has a grey-level std below this (textureless)."""
    reproj_px: float = 1.0
    """Geometric consistency: maximum forward-backward reprojection error in pixels."""
    rel_depth: float = 0.01
    """Geometric consistency: maximum relative depth difference."""
    min_consistent: int = 1
    """Geometric consistency: number of other views that must agree."""
    max_side: int | None = 400
    """Images are box-downscaled so that their longer side is at most this (None: full size)."""
    iterations: tuple[int, ...] = (1, 2, 2, 2)
    """Propagation + refinement iterations per pyramid level, finest first. Its length caps the
    number of levels (fewer when the coarsest would be under 32 px); the sweep runs on the
    coarsest."""
    jumps: tuple[int, ...] = (1, 4, 16)
    """Propagation distances in pixels (of the current level)."""
    median: int = 5
    """Median filter side applied to the depth map after every iteration (1 disables)."""
    refine_px: float = 1.0
    """First refinement step of each level, in source pixels (halved every iteration)."""
    ad_weight: float = 1.0
    """Weight of the truncated absolute-difference term added to ``1 - ZNCC``."""
    ad_trunc: float = 0.1
    """Truncation of the absolute grey-level difference."""
    geo_iterations: int = 2
    """Iterations of the second, geometric-consistency pass on the finest level (0 disables)."""
    geo_rounds: int = 1
    """Geometric passes over all views, each using the depth of the previous one."""
    geo_weight: float = 0.5
    """Weight of the truncated reprojection error (in units of ``2 * reproj_px``) in that pass."""
    chunk: int = 16
    """Hypotheses warped at once (memory/speed trade-off)."""


@dataclass
class MVSResult:
    """Per-view depth from multi-view stereo, at the images' original resolution.

    Attributes:
        depths: per view [H, W] consistent depth (camera z), 0 where rejected.
        raw_depths: per view [H, W] winner-takes-all depth before any filtering.
        costs: per view [H, W] aggregated photometric matching cost of the final depth.
        consistent: per view [H, W] number of other views that agree.
        reproj_errors: per view [H, W] mean forward-backward reprojection error (px) over the
            agreeing views (inf where none agrees).
        cloud: fused coloured points of the kept pixels.
    """

    depths: list[Tensor]
    raw_depths: list[Tensor]
    costs: list[Tensor]
    consistent: list[Tensor]
    reproj_errors: list[Tensor]
    cloud: PointCloud


def _gray(img: Tensor) -> Tensor:
    """[H, W, 3] -> [H, W] luma."""
    return img[..., 0] * 0.299 + img[..., 1] * 0.587 + img[..., 2] * 0.114


def select_sources(viewmats: Tensor, ref: int, num: int) -> list[int]:
    """The ``num`` other views whose camera centres are closest to view ``ref``'s, excluding views
    that look the opposite way (viewing directions more than 90 degrees apart) and views from
    (nearly) the same centre, which give no parallax (baseline under 1 % of the median one)."""
    c2w = torch.linalg.inv(viewmats.double())
    centres, fwd = c2w[:, :3, 3], c2w[:, :3, 2]
    dist = (centres - centres[ref]).norm(dim=-1)
    others = torch.cat([dist[:ref], dist[ref + 1 :]])
    min_baseline = 0.01 * float(others.median()) if others.numel() else 0.0
    facing = (fwd @ fwd[ref]) > 0
    order = [int(i) for i in torch.argsort(dist) if int(i) != ref]
    good = [i for i in order if bool(facing[i]) and float(dist[i]) > min_baseline]
    return (good or order)[:num]


def image_pyramid(gray: Tensor, K: Tensor, levels: int, min_side: int = 32) -> list[tuple[Tensor, Tensor]]:
    """Grey image [H, W] and its intrinsics at up to ``levels`` scales, finest first, each level
    a 2x2 box average of the previous one (pixel centres map exactly: ``u_next = u / 2``); no
    level is made whose shorter side would be below ``min_side``."""
    out = [(gray, K.float())]
    half = torch.diag(torch.tensor([0.5, 0.5, 1.0]))
    for _ in range(levels - 1):
        g, k = out[-1]
        if (min(g.shape) + 1) // 2 < min_side:
            break
        out.append((F.avg_pool2d(g[None, None], 2, ceil_mode=True)[0, 0], half @ k))
    return out


def estimate_depth(
    ref: int,
    pyramids: list[list[tuple[Tensor, Tensor]]],
    viewmats: Tensor,
    near: float,
    far: float,
    sources: list[int],
    cfg: MVSConfig,
) -> tuple[Tensor, Tensor, Tensor]:
    """Depth of one reference view: plane sweep on the coarsest pyramid level, then
    PatchMatch-style propagation and refinement (:func:`recon.priors.patchmatch.propagate`) on
    every level, coarse to fine.

    Args:
        ref: reference view index.
        pyramids: per view the output of :func:`image_pyramid` (same number of levels).
        viewmats: [V, 4, 4] world-to-camera.
        near, far: depth bounds of the sweep (0 < near < far).
        sources: source view indices.
        cfg: stereo settings.

    Returns:
        depth [H, W], cost [H, W] (aggregated matching cost of the final map) and texture
        [H, W] (grey-level std of the reference window), at the finest level.
    """
    lo, hi = 1.0 / far, 1.0 / near
    top = min(len(pyramids[ref]), *(len(pyramids[s]) for s in sources)) - 1

    def views(level: int) -> tuple[Tensor, Tensor, list]:
        g, K = pyramids[ref][level]
        return g, K, [(pyramids[s][level][0], pyramids[s][level][1], viewmats[s]) for s in sources]

    g, K, srcs = views(top)
    planes = torch.linspace(hi, lo, cfg.num_depths)[:, None, None]  # [D, 1, 1]
    step = (hi - lo) / max(1, cfg.num_depths - 1)
    cost_kw = {"ad_weight": cfg.ad_weight, "ad_trunc": cfg.ad_trunc}
    agg = hypothesis_costs(g, K, viewmats[ref], srcs, planes, cfg.window, cfg.chunk, **cost_kw)
    inv, cost = winner(agg, planes, step)
    rate = max(pixel_rate(K, viewmats[ref], srcs, inv), 1e-6)  # px per relative inv. depth change
    for level in range(top, -1, -1):
        g, K, srcs = views(level)
        if tuple(inv.shape) != tuple(g.shape):
            inv = F.interpolate(inv[None, None], size=g.shape, mode="bilinear", align_corners=False)[0, 0]
            rate *= 2
        # The coarsest level also runs the iterations of levels the image was too small for.
        n_iter = sum(cfg.iterations[level:]) if level == top else cfg.iterations[level]
        for it in range(n_iter):
            delta = cfg.refine_px / 2**it / rate  # a step of refine_px, halved every iteration
            inv, cost = propagate(g, K, viewmats[ref], srcs, inv, delta, (lo, hi), cfg.window,
                                  cfg.jumps, cfg.chunk, **cost_kw)
            if cfg.median > 1:  # keeps the hypothesis maps smooth, which the window costs assume
                inv = median_filter(inv, cfg.median)
    # The cost of the final (filtered) map itself, which the cost threshold tests.
    cost = hypothesis_costs(g, K, viewmats[ref], srcs, inv[None], cfg.window, cfg.chunk, **cost_kw)[0]
    r = g[None, None]
    mu = box_mean(r, cfg.window)
    texture = (box_mean(r * r, cfg.window) - mu * mu).clamp_min(0).sqrt()[0, 0]
    return 1.0 / inv.clamp_min(1e-12), cost, texture


def refine_geometric(
    ref: int,
    pyramids: list[list[tuple[Tensor, Tensor]]],
    viewmats: Tensor,
    depth: Tensor,
    others: list[Tensor],
    near: float,
    far: float,
    sources: list[int],
    cfg: MVSConfig,
) -> tuple[Tensor, Tensor]:
    """Second pass on the finest level with multi-view geometric consistency in the cost (ACMM):
    every hypothesis also pays its forward-backward reprojection error through the sources'
    first-pass depth maps, which pulls ambiguous pixels (repeated or weak texture) to the depth
    the other views agree on.

    Args:
        ref: reference view index; pyramids, viewmats, near, far, sources, cfg: as in
            :func:`estimate_depth`.
        depth: [H, W] first-pass depth of the reference view.
        others: per view [H, W] first-pass depth (0 = unknown), at the finest level.

    Returns:
        depth [H, W] and its photometric cost [H, W] (without the geometric term).
    """
    g, K = pyramids[ref][0]
    srcs = [(pyramids[s][0][0], pyramids[s][0][1], viewmats[s]) for s in sources]
    lo, hi = 1.0 / far, 1.0 / near
    inv = 1.0 / depth.clamp_min(1e-12)
    rate = max(pixel_rate(K, viewmats[ref], srcs, inv), 1e-6)
    cost_kw = {"ad_weight": cfg.ad_weight, "ad_trunc": cfg.ad_trunc}
    geo_kw = {"src_depths": [others[s] for s in sources], "geo_weight": cfg.geo_weight,
              "geo_trunc": cfg.reproj_px * 2}
    for it in range(cfg.geo_iterations):
        delta = cfg.refine_px / 2 ** (it + 1) / rate
        inv, _ = propagate(g, K, viewmats[ref], srcs, inv, delta, (lo, hi), cfg.window, cfg.jumps,
                           cfg.chunk, **cost_kw, **geo_kw)
        if cfg.median > 1:
            inv = median_filter(inv, cfg.median)
    cost = hypothesis_costs(g, K, viewmats[ref], srcs, inv[None], cfg.window, cfg.chunk, **cost_kw)[0]
    return 1.0 / inv.clamp_min(1e-12), cost


def _downscale(img: Tensor, K: Tensor, max_side: int | None) -> tuple[Tensor, Tensor]:
    """Area-downscales an [H, W, C] image so that max(H, W) <= max_side; K follows."""
    h, w = img.shape[:2]
    if max_side is None or max(h, w) <= max_side:
        return img, K
    f = max_side / max(h, w)
    nh, nw = max(1, round(h * f)), max(1, round(w * f))
    out = F.interpolate(img.permute(2, 0, 1)[None], size=(nh, nw), mode="area")[0].permute(1, 2, 0)
    K = K.clone()
    K[0] *= nw / w
    K[1] *= nh / h
    return out, K


def _check_inputs(
    images: list[Tensor], Ks: Tensor, viewmats: Tensor, bounds: Tensor, masks: list[Tensor] | None
) -> None:
    """Raises a :class:`DataError` naming what does not fit together."""
    v = len(images)
    if v < 2:
        raise DataError(f"multi-view stereo needs at least 2 views, got {v}",
                        hint="use --init sfm/hull/random for a single view")
    shapes = {"Ks": (tuple(Ks.shape), (v, 3, 3)), "viewmats": (tuple(viewmats.shape), (v, 4, 4)),
              "bounds": (tuple(bounds.shape), (v, 2))}
    for name, (got, want) in shapes.items():
        if got != want:
            raise DataError(f"multi-view stereo got {v} images but {name} of shape {got} (expected {want})")
    for i, im in enumerate(images):
        if im.ndim != 3 or im.shape[-1] != 3:
            raise DataError(f"view {i}: expected an [H, W, 3] image, got shape {tuple(im.shape)}")
    if not bool(((bounds[:, 0] > 0) & (bounds[:, 1] > bounds[:, 0])).all()):
        raise DataError("multi-view stereo needs depth bounds with 0 < near < far for every view",
                        hint=f"got {bounds.tolist()}")
    if masks is not None:
        if len(masks) != v:
            raise DataError(f"{len(masks)} masks for {v} views", hint="give one mask per view")
        for i, (m, im) in enumerate(zip(masks, images)):
            if tuple(m.shape) != tuple(im.shape[:2]):
                raise DataError(f"view {i}: mask is {tuple(m.shape)} but its image is {tuple(im.shape[:2])}",
                                hint="the masks must match the images one to one")


def run_mvs(
    images: list[Tensor],
    Ks: Tensor,
    viewmats: Tensor,
    bounds: Tensor,
    cfg: MVSConfig = MVSConfig(),
    masks: list[Tensor] | None = None,
    progress: bool = True,
    ignore: list[Tensor] | None = None,
) -> MVSResult:
    """Stereo depth for every view (sweep, propagation, geometric pass), consistency filtering
    and fusion.

    Args:
        images: per view [H, W, 3] float images in [0, 1].
        Ks: [V, 3, 3] intrinsics; viewmats: [V, 4, 4] world-to-camera (OpenCV).
        bounds: [V, 2] near and far depth per view.
        cfg: stereo settings.
        masks: optional per view [H, W] object masks; depth outside them is dropped.
        progress: show a progress bar.
        ignore: optional per view [H, W] user masks of transients (0 = ignore, recon.wild): no
            depth there, so nothing of a passer-by is fused or checked against other views.

    Returns:
        An :class:`MVSResult` at the input resolution.
    """
    _check_inputs(images, Ks, viewmats, bounds, masks)
    if ignore is not None:
        _check_inputs(images, Ks, viewmats, bounds, ignore)
        masks = ignore if masks is None else [m * k for m, k in zip(masks, ignore, strict=True)]
    v = len(images)
    small, small_K = [], []
    for i in range(v):
        im, K = _downscale(images[i].float(), Ks[i].float(), cfg.max_side)
        small.append(im)
        small_K.append(K)
    Ks_s = torch.stack(small_K)
    pyramids = [image_pyramid(_gray(im), K, len(cfg.iterations)) for im, K in zip(small, small_K)]
    from recon.priors._progress import track

    sources = [select_sources(viewmats, r, cfg.num_sources) for r in range(v)]
    ranges = [(float(bounds[r, 0]), float(bounds[r, 1])) for r in range(v)]
    raw, costs, textures = [], [], []
    for r in track(range(v), "multi-view stereo", enabled=progress):
        d, c, t = estimate_depth(r, pyramids, viewmats, *ranges[r], sources[r], cfg)
        raw.append(d)
        costs.append(c)
        textures.append(t)
    object_masks = None
    if masks is not None:
        object_masks = [F.interpolate(m.float()[None, None], size=d.shape, mode="area")[0, 0] > 0.5
                        for m, d in zip(masks, raw)]

    def photometric_filter() -> list[Tensor]:
        out = []
        for r in range(v):
            ok = (costs[r] <= cfg.max_cost) & (textures[r] >= cfg.min_texture)
            if object_masks is not None:
                ok &= object_masks[r]
            out.append(torch.where(ok, raw[r], torch.zeros_like(raw[r])))
        return out

    filtered = photometric_filter()
    for _ in range(cfg.geo_rounds if cfg.geo_iterations > 0 else 0):
        for r in track(range(v), "geometric refinement", enabled=progress):
            raw[r], costs[r] = refine_geometric(r, pyramids, viewmats, raw[r], filtered, *ranges[r],
                                                sources[r], cfg)
        filtered = photometric_filter()
    counts, errors = consistency_check(filtered, Ks_s, viewmats, cfg.reproj_px, cfg.rel_depth)
    need = min(cfg.min_consistent, v - 1)
    kept = [torch.where(c >= need, d, torch.zeros_like(d)) for c, d in zip(counts, filtered)]

    pts, cols = [], []
    for r in range(v):
        sel = kept[r] > 0
        pts.append(_backproject(kept[r], Ks_s[r], viewmats[r])[sel].float())
        cols.append(small[r][sel])
    cloud = PointCloud(torch.cat(pts), torch.cat(cols), "mvs")

    def up(x: Tensor, i: int, mode: str = "nearest") -> Tensor:
        h, w = images[i].shape[:2]
        if tuple(x.shape) == (h, w):
            return x
        return F.interpolate(x.float()[None, None], size=(h, w), mode=mode)[0, 0]

    return MVSResult(
        depths=[up(kept[i], i) for i in range(v)],
        raw_depths=[up(raw[i], i) for i in range(v)],
        costs=[up(costs[i], i) for i in range(v)],
        consistent=[up(counts[i], i).long() for i in range(v)],
        reproj_errors=[up(errors[i], i) for i in range(v)],
        cloud=cloud,
    )
