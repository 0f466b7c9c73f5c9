"""Training pairs for the fixer: degraded renders of training views -> their photos.

Only training views are ever read: :func:`training_scene` copies them out of the scene (test
images are not even present in what the sub-runs see), and every pair records the scene indices
of its view and of its warped neighbour, both training views.

Three degradations (GaussianObject, LM-Gaussian; METHODS.md 6.1-6.2):

* ``"loo"``: leave-one-out sub-runs. A short run (``fraction`` of the main schedule, reduced
  resolution) trains on all training views but one and renders the held-out one at several steps
  after densification: the artefacts of a view the model never saw, which is what novel views
  look like. Renders before the last step are the under-trained snapshots.
* ``"noise"``: the trained model with its attributes perturbed (every raw parameter by a
  multiple of its spread over the primitives, plus dropout of whole primitives), rendered at the
  training views. The strength is calibrated so the renders are as far from the photos as the
  leave-one-out renders are (the statistics of the leave-one-out differences, in image space).

Every pair also carries the render's alpha and depth and the nearest other training view warped
into it by that depth, with a validity mask (known depth, inside the neighbour's image and not
occluded there): the fixer sees what a real photo says about the view.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from recon.cameras import Cameras
from recon.config import TrainConfig, override, scale_schedule
from recon.data.images import downscale_array
from recon.data.scene import SceneData
from recon.data.splits import Split, evenly_spaced
from recon.errors import ConfigError
from recon.priors.consistency import backproject, project, warp_to_view
from recon.priors.pointcloud import PointCloud
from recon.priors.stereo import select_sources
from recon.render import render, solid_background
from recon.train.losses import psnr
from recon.train.optim import POSITION_PARAMS

KINDS = ("loo", "noise")


@dataclass(frozen=True)
class PairConfig:
    """How many pairs of which kind, and how the leave-one-out sub-runs are scheduled."""

    held_out: int = 6
    """Leave-one-out sub-runs (views held out, evenly spaced over the training views)."""
    fraction: float = 0.1
    """Length of a sub-run as a fraction of the main schedule (strategy steps scale with it)."""
    min_iterations: int = 100
    """Shortest sub-run."""
    downscale: float = 2.0
    """Image downscale of the pairs (and of the sub-runs)."""
    render_at: tuple[float, ...] = (0.6, 0.8, 1.0)
    """Fractions of a sub-run at which the held-out view is rendered."""
    noise_per_view: int = 2
    """Attribute-noise renders per training view (needs the trained parameters)."""
    noise_strength: float | None = None
    """Attribute noise in units of each parameter's spread; None = calibrated on the leave-one-out pairs."""
    noise_levels: tuple[float, ...] = ()
    """Error levels of the calibrated noise renders: level l aims at the trained model's own error
    at the training views + l x (leave-one-out error - that), in mean absolute error against the
    pairs' targets (1 = as far off as the leave-one-out renders). Empty = the first calibration,
    kept as the default because it measured best: the leave-one-out error against the photos as
    they are, which on masked captures (DTU) counts the background and picks almost no noise
    (near-identity pairs: DTU scan24 reduced setting +0.53 dB; matched levels 1: gate off)."""
    dropout: float = 0.3
    """Largest fraction of primitives dropped in a noise render (drawn uniformly up to it)."""
    occlusion_tol: float = 0.05
    """Relative depth difference above which a warped pixel counts as occluded in the neighbour."""
    seed: int = 0


@dataclass
class RepairPair:
    """One training example of the fixer (all images of one size H x W, values in [0, 1]).

    Attributes:
        render: [H, W, 3] degraded render.
        alpha: [H, W] its accumulated opacity.
        depth: [H, W] its expected camera depth (0 = nothing hit).
        warped: [H, W, 3] the nearest other training photo warped into this view through ``depth``.
        valid: [H, W] 1 where ``warped`` holds a visible surface point of the neighbour, else 0.
        target: [H, W, 3] the photo of the view.
        view: scene index of the view.
        source: scene index of the warped neighbour.
        kind: ``"loo"`` or ``"noise"``.
        step: training step of the model that rendered it.
        mask: [H, W] where ``target`` is the photo (1) and where ``background`` (0): the object
            mask on masked protocols; None = the photo everywhere.
        background: [3] the colour behind ``render`` (and behind ``target`` outside ``mask``); None =
            not recorded (pairs saved before it was), and :func:`recon.repair.dataset.random_crops`
            cannot put such a pair on another background.
    """

    render: Tensor
    alpha: Tensor
    depth: Tensor
    warped: Tensor
    valid: Tensor
    target: Tensor
    view: int
    source: int
    kind: str
    step: int
    mask: Tensor | None = None
    background: Tensor | None = None


def training_scene(scene: SceneData, split: Split, downscale: float = 1.0) -> SceneData:
    """The training views of ``scene`` alone, box-downscaled; local index i is scene index ``split.train[i]``.

    The scene's own points are kept only where they cannot carry test-view information (the
    synthetic scene's exact surface samples, or a split that trains every view), as
    :func:`recon.train.setup.initial_cloud` does.
    """
    ids = list(split.train)
    sub = scene.subset(ids)
    own_points_ok = scene.format == "synthetic" or set(ids) == set(range(len(scene)))
    small = lambda lst: None if lst is None else [downscale_array(x[..., None], downscale)[..., 0] for x in lst]
    return dataclasses.replace(
        sub,
        images=[downscale_array(img, downscale) for img in sub.images],
        cameras=sub.cameras.rescale(downscale) if downscale != 1 else sub.cameras,
        masks=small(sub.masks),
        depths=small(sub.depths),
        points=sub.points if own_points_ok else None,
        point_colors=sub.point_colors if own_points_ok else None,
    )


def nearest_view(cameras: Cameras, view: int, candidates: list[int]) -> int:
    """The candidate whose camera is nearest to ``view``'s and faces the same way (local indices)."""
    ids = [view] + [c for c in candidates if c != view]
    if len(ids) < 2:
        raise ValueError("no other view to pick from")
    return ids[select_sources(cameras.viewmats[ids], 0, 1)[0]]


def warp_neighbour(depth: Tensor, cam: Cameras, image_src: Tensor, cam_src: Cameras,
                   depth_src: Tensor | None = None, occlusion_tol: float = 0.05) -> tuple[Tensor, Tensor]:
    """Warps a neighbour's photo into a view through the view's rendered depth.

    Args:
        depth: [H, W] rendered depth of the view (0 = unknown).
        cam: the view's camera (one).
        image_src: [Hs, Ws, 3] the neighbour's photo.
        cam_src: the neighbour's camera (one).
        depth_src: [Hs, Ws] rendered depth of the neighbour; pixels whose depth there is smaller by
            more than ``occlusion_tol`` (relative) are occluded and marked invalid.

    Returns:
        warped [H, W, 3] (0 where invalid) and valid [H, W] float (1 = valid).
    """
    hs, ws = image_src.shape[:2]
    K, vm, K_s, vm_s = cam.Ks[0], cam.viewmats[0], cam_src.Ks[0], cam_src.viewmats[0]
    grid, valid = warp_to_view(depth, K, vm, K_s, vm_s, ws, hs)  # [H, W, 2], [H, W]
    sample = lambda x, mode: F.grid_sample(x.permute(2, 0, 1)[None].float(), grid[None].float(), mode=mode,
                                           padding_mode="border", align_corners=False)[0].permute(1, 2, 0)
    warped = sample(image_src, "bilinear")  # [H, W, 3]
    if depth_src is not None:
        z = project(backproject(depth, K, vm), K_s, vm_s)[1].float()  # [H, W] depth of each point in the neighbour
        seen = sample(depth_src[..., None], "nearest")[..., 0]  # [H, W]
        valid = valid & ((seen <= 0) | (z <= seen * (1 + occlusion_tol)))
    valid = valid.float()
    return warped * valid[..., None], valid


def composite_target(image: Tensor, mask: Tensor | None, background: Tensor | None) -> Tensor:
    """The photo as the model is trained to reproduce it: on ``background`` outside the mask when
    training learns the object alone (masked protocols), else unchanged."""
    if mask is None or background is None:
        return image
    return image * mask[..., None] + background * (1 - mask[..., None])


@torch.no_grad()
def render_pair(primitive: str, params: dict[str, Tensor], sh_degree: int, scene: SceneData, view: int,
                neighbour: int, *, ids: list[int], kind: str, step: int, background: Tensor | None,
                masked: bool, occlusion_tol: float = 0.05) -> RepairPair:
    """Renders local ``view`` (and ``neighbour`` for its depth) of a :func:`training_scene` into a pair.

    Args:
        ids: scene index of each local view (``split.train``).
        background: [3] colour rendered behind the model (black when None).
        masked: the targets are the photos composited on ``background`` with the scene's masks.
    """
    bg = solid_background(background)
    outs = [render(primitive, params, scene.cameras[i], sh_degree=sh_degree, backgrounds=bg.reshape(1, 3))
            for i in (view, neighbour)]
    depth, depth_src = outs[0].depth[0, ..., 0], outs[1].depth[0, ..., 0]  # [H, W]
    warped, valid = warp_neighbour(depth, scene.cameras[view], scene.images[neighbour], scene.cameras[neighbour],
                                   depth_src, occlusion_tol)
    mask = scene.masks[view] if masked and scene.masks is not None else None
    return RepairPair(render=outs[0].rgb[0].clamp(0, 1), alpha=outs[0].alpha[0, ..., 0], depth=depth, warped=warped,
                      valid=valid, target=composite_target(scene.images[view], mask, bg if masked else None),
                      view=ids[view], source=ids[neighbour], kind=kind, step=step, mask=mask, background=bg)


def scaled_schedule(config: TrainConfig, iterations: int) -> TrainConfig:
    """``config`` shortened to ``iterations`` steps (:func:`~recon.config.scale_schedule`), writing no files."""
    return override(scale_schedule(config, iterations), checkpoint_every=0, log_every=iterations)


def _held_out_run(config: TrainConfig, sub: SceneData, held: int, ids: list[int], protocol: str,
                  render_steps: list[int], cloud: PointCloud | None, masked: bool, occlusion_tol: float,
                  live: Callable[[str], None] | None = None) -> list[RepairPair]:
    """One sub-run on ``sub`` without local view ``held``, rendering it at ``render_steps``;
    ``live(text)`` every 25 steps."""
    from recon.train.setup import initial_cloud
    from recon.train.trainer import Trainer

    rest = [i for i in range(len(sub)) if i != held]
    trainer = Trainer(config, sub, Split(rest, [], protocol), None,
                      depth_priors=None if sub.depths is None else [sub.depths[i] for i in rest])
    trainer.init_from_cloud(cloud if cloud is not None else initial_cloud(sub, rest, config.init, config.seed))
    neighbour = nearest_view(sub.cameras, held, rest)
    pairs: list[RepairPair] = []

    def snapshot(step: int, *_) -> None:
        if live is not None and (step % 25 == 0 or step == 1):
            live(f"repair: leave-one-out sub-run without view {ids[held]}, step {step}/{config.iterations}")
        if step in render_steps:
            pairs.append(render_pair(config.primitive, trainer.params, trainer.sh_degree(step), sub, held, neighbour,
                                     ids=ids, kind="loo", step=step, background=trainer.background, masked=masked,
                                     occlusion_tol=occlusion_tol))

    trainer.train(progress=snapshot, install_sigint=False)
    return pairs


def leave_one_out_pairs(config: TrainConfig, scene: SceneData, split: Split, pair_config: PairConfig | None = None,
                        cloud: PointCloud | None = None, progress: Callable[[str], None] | None = None,
                        live: Callable[[str], None] | None = None) -> list[RepairPair]:
    """Pairs from leave-one-out sub-runs (see the module docstring).

    Args:
        config: the main run's config (its schedule is shortened by ``pair_config.fraction``).
        scene: the full scene; only ``split.train`` views are read.
        split: the main run's split.
        pair_config: what to generate (defaults when None).
        cloud: initial points of the sub-runs (default: :func:`recon.train.setup.initial_cloud`
            of each sub-run's views).
        progress: called with a line of text after each sub-run.
        live: called with a short status every few sub-run steps (a live viewer's).

    Raises:
        ConfigError: fewer than 2 training views.
    """
    from recon.train.setup import masked_protocol

    if len(split.train) < 2:
        raise ConfigError(f"leave-one-out pairs need at least 2 training views, the split has {len(split.train)}",
                          hint="train with --views 2 or more to fit a fixer, or pass --repair PATH")
    pc = pair_config or PairConfig()
    ids = list(split.train)
    sub = training_scene(scene, split, pc.downscale)
    iterations = max(pc.min_iterations, round(config.iterations * pc.fraction))
    sub_config = scaled_schedule(config, iterations)
    render_steps = sorted({max(1, round(f * iterations)) for f in pc.render_at})
    pairs: list[RepairPair] = []
    for held in evenly_spaced(len(ids), min(pc.held_out, len(ids))):
        new = _held_out_run(sub_config, sub, held, ids, split.protocol, render_steps, cloud,
                            masked_protocol(split.protocol, scene), pc.occlusion_tol, live)
        pairs += new
        if progress is not None:
            progress(f"leave-one-out view {ids[held]}: {iterations} steps, "
                     f"render PSNR {psnr(new[-1].render, new[-1].target):.2f} dB")
    return pairs


COLOUR_PARAMS = {"sh0", "shN"}


def perturb(primitive: str, params: dict[str, Tensor], strength: float, dropout: float,
            generator: torch.Generator) -> dict[str, Tensor]:
    """Raw parameters with attribute noise and primitive dropout (colours are kept).

    Positions move by ``strength`` x the primitive's mean distance to its 3 nearest neighbours in
    a random direction (the whole primitive for triangles and convexes); every other geometric
    parameter (scales, rotations, opacities, ...) gets Gaussian noise of ``strength`` x its
    per-channel spread over the primitives; a ``dropout`` fraction of the primitives is removed.
    """
    from recon.primitives import family
    from recon.primitives.knn import mean_sq_knn_dist

    params = {k: v.detach() for k, v in params.items()}
    n = next(iter(params.values())).shape[0]
    keep = torch.rand(n, generator=generator) >= dropout  # [N]
    keep[int(torch.randint(n, (1,), generator=generator))] = True
    spacing = mean_sq_knn_dist(family(primitive).centers(params).float()).sqrt()  # [N]
    shift = torch.randn(n, 3, generator=generator) * (strength * spacing)[:, None]  # [N, 3]
    out = {}
    for name, p in params.items():
        if name in POSITION_PARAMS:
            p = p + shift.reshape(n, *([1] * (p.dim() - 2)), 3)
        elif name not in COLOUR_PARAMS and n > 1:
            p = p + strength * p.std(dim=0, keepdim=True) * torch.randn(p.shape, generator=generator)
        out[name] = p[keep].contiguous()
    return out


def noise_error(primitive: str, params: dict[str, Tensor], sh_degree: int, scene: SceneData, views: list[int],
                strength: float, background: Tensor, seed: int = 0, masked: bool = False) -> float:
    """Mean absolute error of attribute-noise renders (no dropout) of local ``views`` of a
    :func:`training_scene` against the pairs' targets (:func:`composite_target` when ``masked``)."""
    gen = torch.Generator().manual_seed(seed)
    noisy = perturb(primitive, params, strength, 0.0, gen)
    err = 0.0
    for v in views:
        out = render(primitive, noisy, scene.cameras[v], sh_degree=sh_degree, backgrounds=background.reshape(1, 3))
        mask = scene.masks[v] if masked and scene.masks is not None else None
        target = composite_target(scene.images[v], mask, background if masked else None)
        err += float((out.rgb[0].clamp(0, 1) - target).abs().mean())
    return err / len(views)


def calibration_views(scene: SceneData) -> list[int]:
    """The (up to 2, evenly spaced) local views :func:`calibrate_strength` measures the error on."""
    return evenly_spaced(len(scene), min(2, len(scene)))


@torch.no_grad()
def calibrate_strength(primitive: str, params: dict[str, Tensor], sh_degree: int, scene: SceneData,
                       target_l1: float, background: Tensor | None = None, seed: int = 0,
                       iterations: int = 8, masked: bool = False) -> float:
    """The attribute-noise strength whose renders of (up to 2) training views are ``target_l1``
    away from the pairs' targets (mean absolute error, :func:`noise_error`), by bisection on [0, 2].
    ``masked``: the targets are the photos composited on ``background`` with the scene's masks,
    as the leave-one-out pairs' are (else the photo's own background counts as error)."""
    bg = solid_background(background)
    views = calibration_views(scene)
    lo, hi = 0.0, 2.0
    for _ in range(iterations):
        mid = 0.5 * (lo + hi)
        if noise_error(primitive, params, sh_degree, scene, views, mid, bg, seed, masked) < target_l1:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)


def noise_pairs(primitive: str, params: dict[str, Tensor], sh_degree: int, scene: SceneData, split: Split,
                pair_config: PairConfig | None = None, strength: float | tuple[float, ...] = 0.3, step: int = 0,
                background: Tensor | None = None) -> list[RepairPair]:
    """Attribute-noise renders of the trained model at every training view (see :func:`perturb`).

    Args:
        params: the trained model's raw parameters.
        scene: the full scene; only ``split.train`` views are read.
        strength: noise strength (:func:`calibrate_strength` picks one), or one per error level
            (``noise_per_view`` renders each).
        step: the training step of ``params`` (recorded in the pairs).
    """
    from recon.train.setup import masked_protocol

    pc = pair_config or PairConfig()
    if len(split.train) < 2:
        raise ConfigError(f"noise pairs need at least 2 training views (one to warp), the split has {len(split.train)}")
    sub = training_scene(scene, split, pc.downscale)
    ids, masked = list(split.train), masked_protocol(split.protocol, scene)
    gen = torch.Generator().manual_seed(pc.seed)
    pairs = []
    for v in range(len(ids)):
        neighbour = nearest_view(sub.cameras, v, list(range(len(ids))))
        for level in strength if isinstance(strength, tuple) else (strength,):
            for _ in range(pc.noise_per_view):
                dropout = pc.dropout * float(torch.rand(1, generator=gen))
                noisy = perturb(primitive, params, level, dropout, gen)
                pairs.append(render_pair(primitive, noisy, sh_degree, sub, v, neighbour, ids=ids, kind="noise",
                                         step=step, background=background, masked=masked,
                                         occlusion_tol=pc.occlusion_tol))  # fmt: skip
    return pairs
