"""Repaired pseudo views: what the trainer will consume.

A :class:`PseudoViewSource` hands the trainer ``views(step)``: cameras between the training
cameras, each with a pseudo ground-truth image and a per-pixel weight. :class:`RepairedViews` is
the diffusion one: it renders its cameras with the current model, warps the nearest training
photo into each (through the rendered depth), repairs the render with a repair model
(:class:`RepairModel`: a fitted :class:`~recon.repair.fixer.Fixer` or a pretrained pipeline)
and caches the result until the next refresh, as LM-Gaussian / GaussianObject / Difix3D do
(METHODS.md 6.6). Weights: pixels the model covers (alpha above a threshold, Difix) times a
distance weight ``min(1, gain d / (1.2 D))`` (``d`` = distance to the nearest training camera,
``D`` = the largest nearest-neighbour distance among training cameras; GaussianObject's gain is 2).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import torch
from torch import Tensor

from recon.cameras import Cameras
from recon.priors.stereo import select_sources
from recon.render.render import RenderOutput
from recon.repair.dataset import stack_condition
from recon.repair.pairs import warp_neighbour


@runtime_checkable
class RepairModel(Protocol):
    """Anything that repairs renders: ``[B, 8, H, W]`` in [0, 1] (render RGB, alpha, warped
    neighbour RGB, validity) -> ``[B, 3, H, W]`` in [0, 1]."""

    def repair(self, inputs: Tensor, **kwargs: Any) -> Tensor: ...


@dataclass
class PseudoView:
    """A pseudo ground truth for one camera.

    Attributes:
        camera: one camera.
        image: [H, W, 3] target in [0, 1].
        weight: [H, W] per-pixel loss weight in [0, 1].
    """

    camera: Cameras
    image: Tensor
    weight: Tensor


@runtime_checkable
class PseudoViewSource(Protocol):
    """What the trainer asks for at each step (an empty list = nothing this step)."""

    def views(self, step: int) -> list[PseudoView]: ...


def stack_cameras(cams: list[Cameras]) -> Cameras:
    """One batch of cameras from several (their Ks, viewmats and sizes concatenated)."""
    return Cameras(Ks=torch.cat([c.Ks for c in cams]), viewmats=torch.cat([c.viewmats for c in cams]),
                   widths=torch.cat([c.widths for c in cams]), heights=torch.cat([c.heights for c in cams]))


def interpolate_camera(a: Cameras, b: Cameras, t: float) -> Cameras:
    """The camera a fraction ``t`` of the way from ``a`` to ``b`` (one camera each; ``a``'s intrinsics).

    The centre moves on the straight line; the rotation is the chordal interpolation (the nearest
    rotation to ``(1 - t) R_a + t R_b``), which is the geodesic midpoint at ``t = 1/2``.
    """
    c2w_a, c2w_b = a.camtoworlds[0].double(), b.camtoworlds[0].double()
    u, _, vh = torch.linalg.svd((1 - t) * c2w_a[:3, :3] + t * c2w_b[:3, :3])
    fix = torch.diag(torch.tensor([1.0, 1.0, float(torch.linalg.det(u @ vh).sign())], dtype=torch.float64))
    c2w = torch.eye(4, dtype=torch.float64)
    c2w[:3, :3] = u @ fix @ vh
    c2w[:3, 3] = (1 - t) * c2w_a[:3, 3] + t * c2w_b[:3, 3]
    viewmat = torch.linalg.inv(c2w).to(a.viewmats.dtype)[None]
    return Cameras(Ks=a.Ks.clone(), viewmats=viewmat, widths=a.widths.clone(), heights=a.heights.clone())


def neighbour_pairs(cameras: Cameras) -> list[tuple[int, int]]:
    """(i, j) with i < j for each camera and its nearest neighbour (:func:`select_sources`), each pair once."""
    return sorted({tuple(sorted((i, select_sources(cameras.viewmats, i, 1)[0]))) for i in range(len(cameras))})


def between_cameras(cameras: Cameras, fractions: tuple[float, ...] = (0.5,)) -> Cameras:
    """Pseudo cameras on the straight line between each training camera and its nearest neighbour
    (each pair once, :func:`neighbour_pairs`)."""
    return stack_cameras([interpolate_camera(cameras[i], cameras[j], t) for i, j in neighbour_pairs(cameras) for t in fractions])


def distance_weights(pseudo: Cameras, train: Cameras, gain: float = 2.0) -> Tensor:
    """[P] ``min(1, gain d / (1.2 D))`` per pseudo camera (see the module docstring)."""
    c_train, c_pseudo = train.centers.double(), pseudo.centers.double()
    d_train = torch.cdist(c_train, c_train) + torch.eye(len(train), dtype=torch.float64) * 1e30
    spread = float(d_train.min(1).values.max()) if len(train) > 1 else 1.0
    d = torch.cdist(c_pseudo, c_train).min(1).values
    return (gain * d / (1.2 * max(spread, 1e-12))).clamp(max=1.0).float()


def nearest_camera(cam: Cameras, cameras: Cameras) -> int:
    """Index in ``cameras`` of the camera whose centre is nearest to ``cam``'s (one camera) among
    those looking the same way (viewing directions less than 90 degrees apart; any when none does).
    Unlike a stereo source (:func:`select_sources`), a camera at the same place is the best reference."""
    c2w = torch.linalg.inv(torch.cat([cam.viewmats, cameras.viewmats.to(cam.viewmats)]).double())  # [1 + N, 4, 4]
    dist = (c2w[1:, :3, 3] - c2w[0, :3, 3]).norm(dim=-1)  # [N]
    facing = (c2w[1:, :3, 2] @ c2w[0, :3, 2]) > 0  # [N]
    if facing.any():
        dist = dist.masked_fill(~facing, float("inf"))
    return int(dist.argmin())


def render_condition(out: RenderOutput, cam: Cameras, photo: Tensor, photo_cam: Cameras, photo_depth: Tensor,
                     occlusion_tol: float = 0.05) -> tuple[Tensor, Tensor, Tensor]:
    """A repair model's input for one rendered view: the render and a training photo warped into it.

    Args:
        out: the view's render (batch of one).
        cam: the view's camera (one).
        photo: [Hs, Ws, 3] the reference training photo.
        photo_cam: its camera (one).
        photo_depth: [Hs, Ws] rendered depth at ``photo_cam`` (occlusion test of the warp).
        occlusion_tol: relative depth tolerance of the occlusion test.

    Returns:
        inputs [1, 8, H, W] (:func:`recon.repair.dataset.stack_condition`), warped photo [H, W, 3]
        and its validity [H, W].
    """
    depth, alpha = out.depth[0, ..., 0], out.alpha[0, ..., 0]  # [H, W]
    warped, valid = warp_neighbour(depth, cam, photo, photo_cam, photo_depth, occlusion_tol)
    return stack_condition(out.rgb[0].clamp(0, 1), alpha, warped, valid)[None], warped, valid


def match_colors(image: Tensor, reference: Tensor, mask: Tensor, min_pixels: int = 16) -> Tensor:
    """``image`` [H, W, 3] with each channel's mean and std over ``mask`` [H, W] (> 0.5) moved to
    ``reference``'s over the same pixels (repairs drift in colour; the photo does not), in [0, 1].
    Unchanged when fewer than ``min_pixels`` pixels are in the mask."""
    inside = mask > 0.5
    if int(inside.sum()) < min_pixels:
        return image
    x, r = image[inside], reference[inside]  # [M, 3]
    scale = r.std(0) / x.std(0).clamp_min(1e-6)
    return ((image - x.mean(0)) * scale + r.mean(0)).clamp(0, 1)


@dataclass(frozen=True)
class PseudoViewConfig:
    """How :class:`RepairedViews` makes and weights its views."""

    refresh_every: int = 1000
    """Re-render and re-repair every N training steps (renders improve, so do repairs)."""
    alpha_threshold: float = 0.5
    """Pixels with less accumulated opacity get weight 0 (0 = every pixel counts)."""
    distance_gain: float = 2.0
    """Gain of the distance weight (GaussianObject: 2, LM-Gaussian: 16)."""
    occlusion_tol: float = 0.05
    """Relative depth tolerance of the warped neighbour's occlusion test."""
    repair_options: tuple[tuple[str, Any], ...] = ()
    """Keyword arguments of ``model.repair`` (e.g. (("steps", 4), ("strength", 0.3)))."""
    color_match: bool = False
    """Match each repaired view's per-channel mean/std to the warped nearest photo where both are valid."""
    hull_samples: int = 64
    """Depth samples per ray of the visual-hull silhouette (with ``masks``)."""


class RepairedViews:
    """A :class:`PseudoViewSource` that repairs renders of pseudo cameras (see the module docstring).

    Args:
        model: the repair model.
        render_fn: ``render_fn(camera) -> RenderOutput`` with the current parameters.
        train_cameras: the training cameras.
        train_images: one [H, W, 3] photo per training camera.
        pseudo_cameras: where to make pseudo views (e.g. :func:`between_cameras`).
        config: refresh period and weights.
        masks: the training views' object masks, or None. With them, the pixels inside the visual
            hull's silhouette (:func:`recon.priors.hull.hull_silhouette`) count too where the render
            is empty: the holes in the object the repair model fills.
    """

    def __init__(self, model: RepairModel, render_fn: Callable[[Cameras], RenderOutput], train_cameras: Cameras,
                 train_images: list[Tensor], pseudo_cameras: Cameras, config: PseudoViewConfig | None = None,
                 masks: list[Tensor] | None = None):
        self.masks = None if masks is None else [m.cpu() for m in masks]  # the silhouettes are made on the CPU
        self.model, self.render_fn = model, render_fn
        self.train_cameras, self.train_images, self.pseudo_cameras = train_cameras, train_images, pseudo_cameras
        self.config = config or PseudoViewConfig()
        self.distance = distance_weights(pseudo_cameras, train_cameras, self.config.distance_gain)  # [P]
        self.made_at: int | None = None
        self._views: list[PseudoView] = []

    def views(self, step: int) -> list[PseudoView]:
        """The cached views, remade when ``refresh_every`` steps have passed since the last refresh."""
        if self.made_at is None or step - self.made_at >= self.config.refresh_every:
            self.refresh(step)
        return self._views

    @torch.no_grad()
    def refresh(self, step: int) -> None:
        """Renders, warps and repairs every pseudo camera now."""
        c = self.config
        views = []
        for k in range(len(self.pseudo_cameras)):
            cam = self.pseudo_cameras[k]
            j = nearest_camera(cam, self.train_cameras)
            out, out_src = self.render_fn(cam), self.render_fn(self.train_cameras[j])
            inputs, warped, valid = render_condition(out, cam, self.train_images[j], self.train_cameras[j],
                                                     out_src.depth[0, ..., 0], c.occlusion_tol)  # [1, 8, H, W]
            image = self.model.repair(inputs, **dict(c.repair_options))[0].permute(1, 2, 0)  # [H, W, 3]
            covered = (out.alpha[0, ..., 0] >= c.alpha_threshold).float()
            if self.masks is not None:
                covered = torch.maximum(covered, self.silhouette(cam, out).to(covered))
            if c.color_match:
                image = match_colors(image, warped, covered * valid)
            weight = covered * self.distance[k]
            views.append(PseudoView(cam, image, weight))
        self._views, self.made_at = views, step

    def silhouette(self, cam: Cameras, out: RenderOutput) -> Tensor:
        """[H, W] the visual hull's silhouette at ``cam`` (one camera), searched between 0.7x and 1.4x
        the depths the render ``out`` covers; all False when it covers nothing."""
        from recon.priors.hull import hull_silhouette

        alpha, depth = out.alpha[0, ..., 0], out.depth[0, ..., 0]
        seen = depth[(alpha > 0.5) & (depth > 0)]
        if seen.numel() == 0:
            return torch.zeros_like(alpha, dtype=torch.bool)
        cams = self.train_cameras.to("cpu")
        return hull_silhouette(cam.to("cpu"), self.masks, cams.Ks, cams.viewmats,
                               0.7 * float(seen.min()), 1.4 * float(seen.max()),
                               self.config.hull_samples).to(alpha.device)  # fmt: skip
