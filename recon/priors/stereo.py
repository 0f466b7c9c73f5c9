"""Plane-sweep multi-view stereo on known poses, in PyTorch (no network, no CUDA needed).

For every reference view: ``D`` fronto-parallel planes uniform in inverse depth between the
view's near and far bounds; each source view is warped onto every plane with the plane-induced
homography (written per pixel as ``x_s ~ d * K_s R_rel K_r^-1 x_r + K_s t_rel``) through
``grid_sample``; the matching cost is ``1 - ZNCC`` over a square window (box filters); costs of
the source views are aggregated by averaging the best half (robust to occlusion); winner takes
all with a parabolic sub-plane refinement in inverse depth. Depth maps are then filtered by
geometric consistency (METHODS.md 5.4): a pixel is kept when, reprojected through the depth map of
at least ``min_consistent`` other views and back, it lands within ``reproj_px`` pixels with a
relative depth difference below ``rel_depth``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from recon.priors.pointcloud import PointCloud


@dataclass(frozen=True)
class MVSConfig:
    """Plane-sweep stereo settings."""

    num_depths: int = 64
    """Number of inverse-depth planes between near and far."""
    window: int = 11
    """ZNCC window side in pixels (odd)."""
    num_sources: int = 4
    """Source views per reference view (the closest camera centres)."""
    max_cost: float = 0.6
    """Reject pixels whose best aggregated cost (1 - ZNCC, in [0, 2]) is above this."""
    min_texture: float = 0.01
    """Reject pixels whose reference window has a grey-level std below this (textureless)."""
    reproj_px: float = 1.0
    """Geometric consistency: maximum forward-backward reprojection error in pixels."""
    rel_depth: float = 0.01
    """Geometric consistency: maximum relative depth difference."""
    min_consistent: int = 1
    """Geometric consistency: number of other views that must agree."""
    max_side: int | None = 400
    """Images are box-downscaled so that their longer side is at most this (None: full size)."""
    refine_depths: int = 9
    """Per-pixel hypotheses of the full-resolution refinement (coarse-to-fine; 1 disables)."""
    refine_iters: int = 1
    """Full-resolution refinement passes, each halving the hypothesis spacing."""
    chunk: int = 16
    """Planes warped at once (memory/speed trade-off)."""


@dataclass
class MVSResult:
    """Per-view depth from plane-sweep stereo, at the images' original resolution.

    Attributes:
        depths: per view [H, W] consistent depth (camera z), 0 where rejected.
        raw_depths: per view [H, W] winner-takes-all depth before any filtering.
        costs: per view [H, W] aggregated matching cost of the winner.
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


def _pixel_rays(K: Tensor, h: int, w: int) -> Tensor:
    """[H, W, 3] camera-space directions with z = 1 through pixel centres."""
    ys, xs = torch.meshgrid(
        torch.arange(h, dtype=K.dtype) + 0.5, torch.arange(w, dtype=K.dtype) + 0.5, indexing="ij"
    )
    pix = torch.stack([xs, ys, torch.ones_like(xs)], dim=-1)  # [H, W, 3]
    return pix @ torch.linalg.inv(K).T


def _box_sum(x: Tensor, window: int) -> Tensor:
    """Sum over a window x window neighbourhood of [..., H, W] (zero outside), by separable
    cumulative sums: ~8x faster than ``avg_pool2d`` on CPU, exact to float32 rounding."""
    p = window // 2
    c = F.pad(x, (p + 1, p)).cumsum(-1)
    x = c[..., window:] - c[..., :-window]
    c = F.pad(x, (0, 0, p + 1, p)).cumsum(-2)
    return c[..., window:, :] - c[..., :-window, :]


def _box(x: Tensor, window: int) -> Tensor:
    """Mean over a window x window neighbourhood of [B, C, H, W] (shrinking at the borders)."""
    ones = torch.ones(1, 1, *x.shape[-2:], dtype=x.dtype)
    return _box_sum(x, window) / _box_sum(ones, window)


def _to_grid(uv: Tensor, h: int, w: int) -> Tensor:
    """Pixel coordinates (centre convention) -> grid_sample's [-1, 1] (align_corners=False)."""
    return torch.stack([uv[..., 0] / w * 2 - 1, uv[..., 1] / h * 2 - 1], dim=-1)


def select_sources(viewmats: Tensor, ref: int, num: int) -> list[int]:
    """The ``num`` other views whose camera centres are closest to view ``ref``'s, excluding views
    that look the opposite way (viewing directions more than 90 degrees apart)."""
    c2w = torch.linalg.inv(viewmats.double())
    centres, fwd = c2w[:, :3, 3], c2w[:, :3, 2]
    dist = (centres - centres[ref]).norm(dim=-1)
    facing = (fwd @ fwd[ref]) > 0
    order = [int(i) for i in torch.argsort(dist) if int(i) != ref]
    good = [i for i in order if bool(facing[i])]
    return (good or order)[:num]


def _sweep_costs(
    g_r: Tensor,
    K_r: Tensor,
    vm_r: Tensor,
    srcs: list[tuple[Tensor, Tensor, Tensor]],
    inv_hyp: Tensor,
    cfg: MVSConfig,
) -> Tensor:
    """Aggregated matching cost of depth hypotheses for one reference view.

    Args:
        g_r: [H, W] reference grey image; K_r [3, 3]; vm_r [4, 4].
        srcs: per source view (grey [Hs, Ws], K [3, 3], viewmat [4, 4]).
        inv_hyp: [D, H, W] or [D, 1, 1] inverse-depth hypotheses.

    Returns:
        [D, H, W] cost: mean of the best half (over sources) of ``1 - ZNCC``; 2 where unseen.
    """
    h, w = g_r.shape
    n_hyp, win = inv_hyp.shape[0], cfg.window
    rays = _pixel_rays(K_r.double(), h, w).float()  # [H, W, 3]
    r = g_r[None, None]  # [1, 1, H, W]
    mu_r = _box(r, win)[:, 0]  # [1, H, W]
    sd_r = (_box(r * r, win)[:, 0] - mu_r * mu_r).clamp_min(0).sqrt()
    c2w_r = torch.linalg.inv(vm_r.double())
    costs = torch.empty(len(srcs), n_hyp, h, w)  # [S, D, H, W]
    for si, (g_s, K_s, vm_s) in enumerate(srcs):
        rel = (vm_s.double() @ c2w_r).float()  # ref camera -> source camera
        hs, ws = g_s.shape
        # Pixel coordinates straight into grid_sample's [-1, 1] frame: x_s ~ d * A + B.
        to_ndc = torch.tensor([[2.0 / ws, 0, -1], [0, 2.0 / hs, -1], [0, 0, 1]])
        M = to_ndc @ K_s.float()
        A = (rays @ (M @ rel[:3, :3]).T).permute(2, 0, 1)  # [3, H, W]
        B = M @ rel[:3, 3]  # [3]
        img = g_s[None, None]
        for d0 in range(0, n_hyp, cfg.chunk):
            depth = 1.0 / inv_hyp[d0 : d0 + cfg.chunk]  # [Dc, H, W] or [Dc, 1, 1]
            z = depth * A[2] + B[2]  # [Dc, H, W]
            z_safe = z.clamp_min(1e-8)
            gx = (depth * A[0] + B[0]) / z_safe
            gy = (depth * A[1] + B[1]) / z_safe
            valid = (z > 1e-8) & (gx.abs() <= 1) & (gy.abs() <= 1)
            grid = torch.stack([gx, gy], dim=-1)  # [Dc, H, W, 2]
            warped = F.grid_sample(
                img.expand(grid.shape[0], -1, -1, -1), grid,
                mode="bilinear", padding_mode="border", align_corners=False,
            )  # [Dc, 1, H, W]
            stats = _box(torch.cat([warped, warped * warped, warped * r], dim=1), win)
            mu_s = stats[:, 0]
            sd_s = (stats[:, 1] - mu_s * mu_s).clamp_min(0).sqrt()
            zncc = (stats[:, 2] - mu_s * mu_r) / (sd_s * sd_r + 1e-6)
            cost = (1.0 - zncc).clamp(0.0, 2.0).masked_fill_(~valid, 2.0)
            costs[si, d0 : d0 + cfg.chunk] = cost
    if len(srcs) == 1:
        return costs[0]
    k = max(1, math.ceil(len(srcs) / 2))  # best half: robust to occlusion
    return costs.sort(dim=0).values[:k].mean(0)


def _winner(agg: Tensor, inv_hyp: Tensor, step: Tensor | float) -> tuple[Tensor, Tensor]:
    """Winner-takes-all over [D, H, W] costs with parabolic sub-hypothesis refinement.

    Hypotheses must be uniformly spaced (by ``step``) along D at each pixel.

    Returns:
        inverse depth [H, W] and the winner's cost [H, W].
    """
    n = agg.shape[0]
    best = agg.argmin(0, keepdim=True)  # [1, H, W]
    c0 = agg.gather(0, best)[0]
    cm = agg.gather(0, (best - 1).clamp_min(0))[0]
    cp = agg.gather(0, (best + 1).clamp_max(n - 1))[0]
    denom = cm - 2 * c0 + cp
    inner = (best[0] > 0) & (best[0] < n - 1) & (denom > 1e-6)
    delta = torch.where(inner, 0.5 * (cm - cp) / denom.clamp_min(1e-6), torch.zeros_like(c0))
    inv_best = inv_hyp.expand(n, *agg.shape[1:]).gather(0, best)[0]
    return inv_best + delta.clamp(-0.5, 0.5) * step, c0


def plane_sweep(
    ref: int,
    grays: list[Tensor],
    Ks: Tensor,
    viewmats: Tensor,
    near: float,
    far: float,
    sources: list[int],
    cfg: MVSConfig,
) -> tuple[Tensor, Tensor, Tensor]:
    """Depth of one reference view by a coarse-to-fine plane sweep.

    Images larger than 160 px are swept first at half resolution with ``num_depths`` planes;
    the result, upsampled, centres ``refine_depths`` per-pixel hypotheses at full resolution
    (spaced by half a coarse plane). Smaller images are swept once at full resolution.

    Args:
        ref: reference view index.
        grays: per view [H_v, W_v] grey images.
        Ks: [V, 3, 3] intrinsics matching ``grays``; viewmats: [V, 4, 4] world-to-camera.
        near, far: depth bounds of the sweep (0 < near < far).
        sources: source view indices.

    Returns:
        depth [H, W], cost [H, W] (aggregated 1 - ZNCC of the winner) and texture [H, W]
        (grey-level std of the reference window).
    """
    g_r = grays[ref]
    h, w = g_r.shape
    inv = torch.linspace(1.0 / near, 1.0 / far, cfg.num_depths)[:, None, None]  # [D, 1, 1]
    step = float(inv[1] - inv[0]) if cfg.num_depths > 1 else 0.0
    srcs = [(grays[s], Ks[s], viewmats[s]) for s in sources]
    if max(h, w) > 160 and cfg.refine_depths > 1:
        half = lambda g: F.avg_pool2d(g[None, None], 2, ceil_mode=True)[0, 0]  # noqa: E731
        scale = lambda K, g, gh: torch.diag(torch.tensor([gh.shape[1] / g.shape[1], gh.shape[0] / g.shape[0], 1.0])) @ K  # noqa: E731
        g_rh = half(g_r)
        srcs_h = []
        for g, K, vm in srcs:
            gh = half(g)
            srcs_h.append((gh, scale(K.float(), g, gh), vm))
        agg = _sweep_costs(g_rh, scale(Ks[ref].float(), g_r, g_rh), viewmats[ref], srcs_h, inv, cfg)
        inv_c, _ = _winner(agg, inv, step)
        inv_up = F.interpolate(inv_c[None, None], size=(h, w), mode="bilinear", align_corners=False)[0, 0]
        lo, hi = min(1.0 / near, 1.0 / far), max(1.0 / near, 1.0 / far)
        k = torch.arange(cfg.refine_depths, dtype=torch.float32) - (cfg.refine_depths - 1) / 2
        inv_best, fine_step = inv_up, step
        for _ in range(max(1, cfg.refine_iters)):  # each pass halves the spacing around the estimate
            fine_step = fine_step / 2
            hyp = (inv_best[None] + k[:, None, None] * fine_step).clamp(lo, hi)  # [R, H, W]
            agg = _sweep_costs(g_r, Ks[ref], viewmats[ref], srcs, hyp, cfg)
            inv_best, cost = _winner(agg, hyp, fine_step)
    else:
        agg = _sweep_costs(g_r, Ks[ref], viewmats[ref], srcs, inv, cfg)
        inv_best, cost = _winner(agg, inv, step)
    r = g_r[None, None]
    mu = _box(r, cfg.window)
    texture = (_box(r * r, cfg.window) - mu * mu).clamp_min(0).sqrt()[0, 0]
    return 1.0 / inv_best.clamp_min(1e-12), cost, texture


def _backproject(depth: Tensor, K: Tensor, viewmat: Tensor) -> Tensor:
    """[H, W] depth -> [H, W, 3] world points."""
    h, w = depth.shape
    cam = _pixel_rays(K.double(), h, w) * depth.double()[..., None]
    c2w = torch.linalg.inv(viewmat.double())
    return cam @ c2w[:3, :3].T + c2w[:3, 3]


def _project(points: Tensor, K: Tensor, viewmat: Tensor) -> tuple[Tensor, Tensor]:
    """World points [..., 3] -> pixels [..., 2] and camera z [...]."""
    cam = points @ viewmat[:3, :3].double().T + viewmat[:3, 3].double()
    z = cam[..., 2]
    uv = cam @ K.double().T
    return uv[..., :2] / z.clamp_min(1e-12)[..., None], z


def consistency_check(
    depths: list[Tensor], Ks: Tensor, viewmats: Tensor, cfg: MVSConfig
) -> tuple[list[Tensor], list[Tensor]]:
    """Forward-backward geometric consistency of depth maps (0 = no depth).

    Returns:
        per view [H, W] int count of agreeing other views, and [H, W] mean reprojection error over
        them (inf where none agrees).
    """
    counts, errors = [], []
    v = len(depths)
    for r in range(v):
        d_r = depths[r]
        h, w = d_r.shape
        X = _backproject(d_r, Ks[r], viewmats[r])  # [H, W, 3]
        ys, xs = torch.meshgrid(torch.arange(h) + 0.5, torch.arange(w) + 0.5, indexing="ij")
        pix = torch.stack([xs, ys], dim=-1).double()
        count = torch.zeros(h, w, dtype=torch.int64)
        err_sum = torch.zeros(h, w, dtype=torch.float64)
        for s in range(v):
            if s == r:
                continue
            d_s = depths[s]
            hs, ws = d_s.shape
            uv, _ = _project(X, Ks[s], viewmats[s])  # [H, W, 2]
            grid = _to_grid(uv, hs, ws).float()[None]
            both = torch.stack([d_s, (d_s > 0).float()])[None]  # [1, 2, Hs, Ws]
            smp = F.grid_sample(both, grid, mode="bilinear", padding_mode="zeros", align_corners=False)[0]
            # Only trust the bilinear depth when all four neighbours have a depth.
            ok_s = smp[1] > 0.999
            d_back = torch.where(ok_s, smp[0], torch.zeros_like(smp[0])).double()
            rays_s = torch.cat([uv, torch.ones_like(uv[..., :1])], dim=-1) @ torch.linalg.inv(Ks[s].double()).T
            c2w_s = torch.linalg.inv(viewmats[s].double())
            X_back = (rays_s * d_back[..., None]) @ c2w_s[:3, :3].T + c2w_s[:3, 3]
            uv_r, z_r = _project(X_back, Ks[r], viewmats[r])
            err = (uv_r - pix).norm(dim=-1)
            rel = (z_r - d_r.double()).abs() / d_r.double().clamp_min(1e-12)
            agree = ok_s & (d_r > 0) & (err < cfg.reproj_px) & (rel < cfg.rel_depth)
            count += agree.long()
            err_sum += torch.where(agree, err, torch.zeros_like(err))
        counts.append(count)
        errors.append(torch.where(count > 0, err_sum / count.clamp_min(1), torch.full_like(err_sum, math.inf)).float())
    return counts, errors


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


def run_mvs(
    images: list[Tensor],
    Ks: Tensor,
    viewmats: Tensor,
    bounds: Tensor,
    cfg: MVSConfig = MVSConfig(),
    masks: list[Tensor] | None = None,
    progress: bool = True,
) -> MVSResult:
    """Plane-sweep depth for every view, consistency filtering and fusion.

    Args:
        images: per view [H, W, 3] float images in [0, 1].
        Ks: [V, 3, 3] intrinsics; viewmats: [V, 4, 4] world-to-camera (OpenCV).
        bounds: [V, 2] near and far depth per view.
        cfg: stereo settings.
        masks: optional per view [H, W] object masks; depth outside them is dropped.
        progress: show a progress bar.

    Returns:
        An :class:`MVSResult` at the input resolution.
    """
    v = len(images)
    if v < 2:
        raise ValueError(f"multi-view stereo needs at least 2 views, got {v}")
    small, small_K = [], []
    for i in range(v):
        im, K = _downscale(images[i].float(), Ks[i].float(), cfg.max_side)
        small.append(im)
        small_K.append(K)
    Ks_s = torch.stack(small_K)
    grays = [_gray(im) for im in small]
    raw, costs, textures = [], [], []
    from recon.priors._progress import track

    for r in track(range(v), "plane-sweep stereo", enabled=progress):
        srcs = select_sources(viewmats, r, cfg.num_sources)
        near, far = float(bounds[r, 0]), float(bounds[r, 1])
        d, c, t = plane_sweep(r, grays, Ks_s, viewmats, near, far, srcs, cfg)
        raw.append(d)
        costs.append(c)
        textures.append(t)
    filtered = []
    for r in range(v):
        ok = (costs[r] <= cfg.max_cost) & (textures[r] >= cfg.min_texture)
        if masks is not None:
            m = F.interpolate(masks[r].float()[None, None], size=raw[r].shape, mode="area")[0, 0]
            ok &= m > 0.5
        filtered.append(torch.where(ok, raw[r], torch.zeros_like(raw[r])))
    counts, errors = consistency_check(filtered, Ks_s, viewmats, cfg)
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
