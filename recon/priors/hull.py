"""Visual hull from object masks by voxel carving (GaussianObject's ``visual_hull.py``, fixed).

A voxel centre is kept when it projects, in front of the camera and inside the image, onto the
object mask in at least ``min_views`` views (default: all but one). The original code wrote
``mask > 0 & valid``, which Python parses as ``mask > (0 & valid)``, so points behind a camera or
outside an image were never rejected (METHODS.md 5.4); here an out-of-image or behind-camera
projection counts as *outside* the mask. Bounds come from a coarse carve of a cube around the
cameras' focus point, grown until the hull no longer touches its faces.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from recon.cameras import Cameras
from recon.errors import DataError
from recon.priors.bounds import focus_point
from recon.priors.patchmatch import pixel_rays
from recon.priors.pointcloud import PointCloud


def _grid(lo: Tensor, hi: Tensor, n: int) -> Tensor:
    """[n^3, 3] voxel centres of the box [lo, hi] split into n cells per axis (z fastest)."""
    axes = [lo[i] + (torch.arange(n, dtype=torch.float64) + 0.5) * (hi[i] - lo[i]) / n for i in range(3)]
    return torch.stack(torch.meshgrid(*axes, indexing="ij"), dim=-1).reshape(-1, 3)


def _sample(img: Tensor, uv: Tensor, mode: str) -> Tensor:
    """Samples [H, W, C] at pixel coordinates [P, 2] -> [P, C] (zeros outside)."""
    h, w = img.shape[:2]
    grid = torch.stack([uv[:, 0] / w * 2 - 1, uv[:, 1] / h * 2 - 1], dim=-1).float()[None, None]
    out = F.grid_sample(img.permute(2, 0, 1)[None].float(), grid, mode=mode, align_corners=False)
    return out[0, :, 0].T


def carve(
    points: Tensor,
    masks: list[Tensor],
    Ks: Tensor,
    viewmats: Tensor,
    min_views: int,
    threshold: float = 0.5,
) -> tuple[Tensor, Tensor]:
    """Counts, for each point, the views whose mask contains its projection.

    Args:
        points: [P, 3] world points.
        masks: per view [H, W] masks in [0, 1].
        Ks: [V, 3, 3]; viewmats: [V, 4, 4] world-to-camera.
        min_views: views needed to keep a point.
        threshold: mask value above which a pixel is object.

    Returns:
        keep [P] bool and inside [V, P] bool (projection valid and inside the mask).
    """
    inside = torch.zeros(len(masks), points.shape[0], dtype=torch.bool)
    for v, mask in enumerate(masks):
        h, w = mask.shape
        cam = points @ viewmats[v, :3, :3].double().T + viewmats[v, :3, 3].double()
        z = cam[:, 2]
        uv = (cam @ Ks[v].double().T)[:, :2] / z.clamp_min(1e-9)[:, None]
        valid = (z > 1e-9) & (uv[:, 0] >= 0) & (uv[:, 0] < w) & (uv[:, 1] >= 0) & (uv[:, 1] < h)
        m = _sample(mask[..., None], uv, "nearest")[:, 0]
        inside[v] = valid & (m > threshold)
    return inside.sum(0) >= min_views, inside


def visual_hull(
    masks: list[Tensor],
    Ks: Tensor,
    viewmats: Tensor,
    images: list[Tensor] | None = None,
    resolution: int = 128,
    min_views: int | None = None,
    bounds: tuple[Tensor, Tensor] | None = None,
    shell: str = "visible",
) -> PointCloud:
    """Carves a voxel grid with object masks and returns the kept voxel centres.

    Args:
        masks: per view [H, W] object masks in [0, 1] (1 = object).
        Ks: [V, 3, 3] intrinsics matching the masks; viewmats: [V, 4, 4] world-to-camera.
        images: optional per view [H, W, 3] images for colours (mean over the views that see
            the voxel inside their mask); grey otherwise.
        resolution: voxels per axis of the final grid.
        min_views: views whose mask must contain a voxel. Default: all views up to 4 views (the
            viewing cones of a narrow arc overlap without bound when one view may disagree),
            all but one from 5 views on (GaussianObject's rule, tolerant of one bad mask).
        bounds: optional (lo [3], hi [3]) box; found automatically otherwise.
        shell: ``"visible"`` keeps the surface voxels seen first from some view (the hull's
            front as the cameras see it: a few nearby views carve an elongated cone-shaped hull
            whose back is far from the object), ``"surface"`` every voxel with an empty
            6-neighbour, ``"solid"`` all kept voxels.

    Returns:
        A :class:`PointCloud` with source ``"hull"``.

    Raises:
        DataError: when the masks carve everything away (they do not match the cameras).
    """
    v = len(masks)
    if v == 0:
        raise DataError("visual hull needs at least one mask")
    need = min_views if min_views is not None else (v if v <= 4 else v - 1)
    if bounds is None:
        bounds = _auto_bounds(masks, Ks, viewmats, need)
    lo, hi = (torch.as_tensor(b, dtype=torch.float64) for b in bounds)
    pts = _grid(lo, hi, resolution)
    keep, inside = carve(pts, masks, Ks, viewmats, need)
    if not bool(keep.any()):
        raise DataError(
            f"the visual hull is empty: no voxel lies inside the masks of {need} of {v} views",
            hint="check that the mask folder matches the images (same names and order) and that "
            "masks are white on the object",
        )
    if shell not in ("visible", "surface", "solid"):
        raise ValueError(f"shell must be 'visible', 'surface' or 'solid', got {shell!r}")
    if shell != "solid":
        occ = keep.reshape(resolution, resolution, resolution)
        pad = F.pad(occ[None, None].float(), (1, 1, 1, 1, 1, 1))[0, 0]
        full = torch.ones_like(occ, dtype=torch.bool)
        for dim in range(3):
            for shift in (0, 2):
                sl = [slice(1, -1)] * 3
                sl[dim] = slice(shift, shift + resolution)
                full &= pad[tuple(sl)] > 0
        keep = (occ & ~full).reshape(-1)
    sel = keep.nonzero()[:, 0]
    pts, inside = pts[sel], inside[:, sel]
    if shell == "visible":
        voxel = float((hi - lo).max()) / resolution
        front = _front_voxels(pts, voxel, masks, Ks, viewmats)
        pts, inside = pts[front], inside[:, front]
    colors = torch.full((pts.shape[0], 3), 0.5)
    if images is not None:
        acc = torch.zeros(pts.shape[0], 3, dtype=torch.float64)
        cnt = torch.zeros(pts.shape[0], 1, dtype=torch.float64)
        for i, img in enumerate(images):
            cam = pts @ viewmats[i, :3, :3].double().T + viewmats[i, :3, 3].double()
            uv = (cam @ Ks[i].double().T)[:, :2] / cam[:, 2:3].clamp_min(1e-9)
            # Image and mask may differ in size: scale pixel coordinates to the image.
            sx, sy = img.shape[1] / masks[i].shape[1], img.shape[0] / masks[i].shape[0]
            col = _sample(img, uv * torch.tensor([sx, sy], dtype=torch.float64), "bilinear").double()
            w = inside[i].double()[:, None]
            acc += col * w
            cnt += w
        colors = (acc / cnt.clamp_min(1)).float()
    return PointCloud(pts.float(), colors, "hull")


def _front_voxels(pts: Tensor, voxel: float, masks: list[Tensor], Ks: Tensor, viewmats: Tensor) -> Tensor:
    """[P] bool: voxels within two voxel sizes of the nearest voxel along their pixel cell in at
    least one view (a z-buffer on cells about one projected voxel wide, so there are no holes)."""
    front = torch.zeros(pts.shape[0], dtype=torch.bool)
    for v, mask in enumerate(masks):
        h, w = mask.shape
        cam = pts @ viewmats[v, :3, :3].double().T + viewmats[v, :3, 3].double()
        z = cam[:, 2]
        ok = z > 1e-9
        uv = (cam @ Ks[v].double().T)[:, :2] / z.clamp_min(1e-9)[:, None]
        f = float(Ks[v, 0, 0])
        cell = max(1.0, math.ceil(f * voxel / float(z[ok].median()))) if bool(ok.any()) else 1.0
        cw, ch = int(math.ceil(w / cell)) + 2, int(math.ceil(h / cell)) + 2
        cx = (uv[:, 0] / cell).floor().long().clamp(-1, cw - 2) + 1
        cy = (uv[:, 1] / cell).floor().long().clamp(-1, ch - 2) + 1
        idx = cy * cw + cx
        zbuf = torch.full((ch * cw,), math.inf, dtype=torch.float64)
        zbuf.scatter_reduce_(0, idx[ok], z[ok], reduce="amin")
        front |= ok & (z <= zbuf[idx] + 2.0 * voxel)
    return front


def _auto_bounds(masks: list[Tensor], Ks: Tensor, viewmats: Tensor, need: int) -> tuple[Tensor, Tensor]:
    """A box around the hull: coarse carves of a growing cube centred on the focus point."""
    c2w = torch.linalg.inv(viewmats.double())
    centre = focus_point(viewmats)
    half = 0.5 * float((c2w[:, :3, 3] - centre).norm(dim=-1).mean())
    n = 48
    for _ in range(4):
        lo, hi = centre - half, centre + half
        pts = _grid(lo, hi, n)
        keep, _ = carve(pts, masks, Ks, viewmats, need)
        if not bool(keep.any()):
            half *= 2
            continue
        occ = keep.reshape(n, n, n)
        idx = occ.nonzero()
        first, last = idx.min(0).values, idx.max(0).values
        if bool((first == 0).any() or (last == n - 1).any()):
            half *= 2
            continue
        cell = (hi - lo) / n
        return lo + (first - 1).double() * cell, lo + (last + 2).double() * cell
    # The hull is unbounded (cones of nearly parallel views): fall back to the first box.
    half0 = 0.5 * float((c2w[:, :3, 3] - centre).norm(dim=-1).mean())
    return centre - half0, centre + half0


def hull_silhouette(
    camera: Cameras,
    masks: list[Tensor],
    Ks: Tensor,
    viewmats: Tensor,
    near: float,
    far: float,
    samples: int = 64,
    min_views: int | None = None,
) -> Tensor:
    """[H, W] bool: the pixels of ``camera`` (one :class:`~recon.cameras.Cameras`) whose ray meets the
    visual hull of ``masks`` between camera depths ``near`` and ``far``: some of ``samples`` points on
    it (evenly spaced in depth, pixel centres at +0.5) lies inside the mask in ``min_views`` views
    (default: all of them), as :func:`carve` counts.
    """
    h, w = int(camera.heights[0]), int(camera.widths[0])
    need = len(masks) if min_views is None else min_views
    dirs = pixel_rays(camera.Ks[0].double(), h, w).reshape(-1, 3)  # [H W, 3] camera space, z = 1
    c2w = torch.linalg.inv(camera.viewmats[0].double())
    hit = torch.zeros(h * w, dtype=torch.bool)
    for z in torch.linspace(near, far, samples, dtype=torch.float64):
        pts = (dirs * z) @ c2w[:3, :3].T + c2w[:3, 3]  # [H W, 3] world
        hit |= carve(pts, masks, Ks, viewmats, need)[0]
    return hit.reshape(h, w)
