"""The render-function contract between the viewer and whatever renders (a run, a live trainer).

The viewer never sees a trainer or a model: it calls ::

    render_fn(camera: Cameras, settings: RenderSettings) -> np.ndarray  # [H, W, 3] uint8

with ``camera`` a single view of any size. :func:`make_render_fn` builds such a function from
primitive parameters through :func:`recon.render.render`; :func:`colorize` turns the engine's
depth / alpha / density outputs into images.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import numpy as np
import torch
from torch import Tensor

from recon.cameras import Cameras

if TYPE_CHECKING:
    from recon.repair.postpass import FrameRepair

RenderMode = Literal["rgb", "depth", "alpha", "density", "repaired"]
RENDER_MODES: tuple[str, ...] = ("rgb", "depth", "alpha", "density")
"""The modes every render function has; ``repaired`` only when it was given a repair model."""
REPAIRED = "repaired"


@dataclass(frozen=True)
class RenderSettings:
    """What a client wants to see.

    Attributes:
        mode: ``rgb``, ``depth`` (colour-mapped, near = warm), ``alpha`` (grey), ``density``
            (heat-map of how many primitive centres project into each pixel) or ``repaired``
            (RGB through a diffusion repair model, :mod:`recon.repair.postpass`).
        primitive: which primitive set to render when a run holds several (None = the first).
        background: RGB background in [0, 1]; None = the primitive set's own (its training one).
        appearance: runs with per-image appearance (:mod:`recon.wild`): the reference appearance of
            RGB renders, ``mean`` or a training image name; None = the render itself.
    """

    mode: RenderMode = "rgb"
    primitive: str | None = None
    background: tuple[float, float, float] | None = None
    appearance: str | None = None


RenderFn = Callable[[Cameras, RenderSettings], np.ndarray]


def check_image(image: object, width: int, height: int) -> np.ndarray:
    """Validates a render function's result: an [H, W, 3] uint8 array of the camera's size.

    Float arrays or tensors in [0, 1] of the right shape are accepted and converted to uint8.
    """
    if isinstance(image, Tensor):
        image = image.detach().float().cpu().numpy()
    if not isinstance(image, np.ndarray):
        raise TypeError(f"render_fn must return a numpy array, got {type(image).__name__}")
    if image.shape == (height, width, 3) and np.issubdtype(image.dtype, np.floating):
        image = to_uint8(image)
    if image.shape != (height, width, 3) or image.dtype != np.uint8:
        raise ValueError(
            f"render_fn must return a [{height}, {width}, 3] uint8 image for a {width}x{height} "
            f"camera, got {image.dtype} {tuple(image.shape)}"
        )
    return image


# ---------------------------------------------------------------------- colour maps
# Turbo colour map (Mikhailov 2019), polynomial approximation of the published table.
_TURBO_R = (0.13572138, 4.61539260, -42.66032258, 132.13108234, -152.94239396, 59.28637943)
_TURBO_G = (0.09140261, 2.19418839, 4.84296658, -14.18503333, 4.27729857, 2.82956604)
_TURBO_B = (0.10667330, 12.64194608, -60.58204836, 110.36276771, -89.90310912, 27.34824973)


def turbo(x: np.ndarray) -> np.ndarray:
    """[...] values in [0, 1] -> [..., 3] float RGB in [0, 1] (Turbo colour map)."""
    x = np.clip(np.asarray(x, dtype=np.float64), 0.0, 1.0)
    powers = np.stack([x**i for i in range(6)], axis=-1)  # [..., 6]
    rgb = np.stack([powers @ np.asarray(c) for c in (_TURBO_R, _TURBO_G, _TURBO_B)], axis=-1)
    return np.clip(rgb, 0.0, 1.0)


def to_uint8(image: np.ndarray | Tensor) -> np.ndarray:
    """[H, W, 3] float in [0, 1] -> uint8."""
    if isinstance(image, Tensor):
        image = image.detach().float().cpu().numpy()
    return (np.clip(image, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def colorize_depth(depth: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """[H, W] expected depth and [H, W] alpha -> [H, W, 3] float RGB.

    Inverse depth between the 1st and 99th percentile of covered pixels (alpha > 0.5) is mapped
    through Turbo (near = red, far = blue); uncovered pixels fade to black with alpha.
    """
    covered = (alpha > 0.5) & (depth > 0)
    if not covered.any():
        return np.zeros((*depth.shape, 3))
    inv = np.where(depth > 0, 1.0 / np.maximum(depth, 1e-9), 0.0)
    lo, hi = np.percentile(inv[covered], [1.0, 99.0])
    x = (inv - lo) / max(hi - lo, 1e-9)
    return turbo(x) * np.clip(alpha, 0.0, 1.0)[..., None]


def density_map(centres: Tensor, camera: Cameras) -> np.ndarray:
    """[P, 3] primitive centres -> [H, W] count of centres projecting into each pixel (blurred)."""
    W, H = camera.width, camera.height
    uv, z = camera.project(centres.detach().float().to(camera.device))  # [1, P, 2], [1, P]
    uv, z = uv[0].cpu().numpy(), z[0].cpu().numpy()
    keep = (z > 1e-3) & (uv[:, 0] >= 0) & (uv[:, 0] < W) & (uv[:, 1] >= 0) & (uv[:, 1] < H)
    counts = np.zeros((H, W))
    np.add.at(counts, (uv[keep, 1].astype(int), uv[keep, 0].astype(int)), 1.0)
    # A separable 5-tap box blur keeps the map readable at low resolution.
    kernel = np.ones(5) / 5.0
    counts = np.apply_along_axis(lambda r: np.convolve(r, kernel, mode="same"), 1, counts)
    counts = np.apply_along_axis(lambda c: np.convolve(c, kernel, mode="same"), 0, counts)
    return counts


def colorize_density(counts: np.ndarray) -> np.ndarray:
    """[H, W] counts -> [H, W, 3] float RGB: log-scaled Turbo, black where empty."""
    if counts.max() <= 0:
        return np.zeros((*counts.shape, 3))
    x = np.log1p(counts) / np.log1p(counts.max())
    return turbo(x) * (counts > 1e-6)[..., None]


def primitive_centres(params: Mapping[str, Tensor], primitive: str | None = None) -> Tensor:
    """[N, 3] centres: the family's ``centers`` when known, else ``means`` / mean of ``vertices``
    [N, 3, 3] / mean of ``points`` [N, K, 3]."""
    if primitive is not None:
        try:
            from recon.primitives import family

            return family(primitive).centers(dict(params))
        except (ImportError, KeyError, ValueError, AttributeError):
            pass
    for key in ("means", "vertices", "points"):
        if key in params:
            value = params[key]
            return value if value.dim() == 2 else value.mean(dim=1)
    raise KeyError(f"no primitive centres among parameters {sorted(params)}")


# ---------------------------------------------------------------------- adapters
@dataclass
class PrimitiveSet:
    """One renderable set of primitives (a run may hold several, e.g. Gaussians and triangles).

    Attributes:
        primitive: family name understood by :func:`recon.render.render`.
        params: raw parameter tensors sharing the leading N.
        sh_degree: spherical-harmonics degree of the colours (0 for plain colours).
        background: RGB in [0, 1] behind the primitives (None = black).
    """

    primitive: str
    params: dict[str, Tensor]
    sh_degree: int = 0
    background: tuple[float, float, float] | None = None


def render_set(prim: PrimitiveSet, camera: Cameras, settings: RenderSettings, *,
               backend: str = "auto", render: Callable | None = None, repair: FrameRepair | None = None,
               reference: Tensor | None = None) -> np.ndarray:
    """Renders one primitive set into one camera in the mode ``settings`` asks for.

    Args:
        repair: the repair post-pass of the ``repaired`` mode (that mode fails without one).
        reference: the rgb mode's reference appearance, a [3, 4] transform or a bilateral grid
            (:func:`recon.wild.protocol.apply_appearance`); None = the render itself.

    Returns:
        [H, W, 3] uint8.
    """
    device = next(iter(prim.params.values())).device
    cam = camera.to(device)
    if settings.mode == "density":
        centres = primitive_centres(prim.params, prim.primitive)
        return to_uint8(colorize_density(density_map(centres, cam)))
    if settings.mode == REPAIRED and repair is None:
        raise ValueError("the repaired mode needs a repair model (make_render_fn(..., repair=...))")
    if render is None:
        from recon.render import render  # imported where used: the viewer runs without it
    rgb_bg = settings.background or prim.background or (0.0, 0.0, 0.0)
    bg = torch.tensor([rgb_bg], dtype=torch.float32, device=device)  # [1, 3]

    @torch.no_grad()
    def render_view(view: Cameras):
        return render(prim.primitive, prim.params, view, sh_degree=prim.sh_degree, backgrounds=bg, backend=backend)

    out = render_view(cam)
    if settings.mode == "rgb":
        rgb = out.rgb[0]  # [H, W, 3]
        if reference is not None:
            from recon.wild.protocol import apply_appearance

            rgb = apply_appearance(rgb, reference.to(rgb.device))
        return to_uint8(rgb)
    if settings.mode == REPAIRED:
        return to_uint8(repair(out, cam, render_view, key=prim.primitive))
    alpha = out.alpha[0, ..., 0].float().cpu().numpy()  # [H, W]
    if settings.mode == "alpha":
        return to_uint8(np.repeat(alpha[..., None], 3, axis=-1))
    depth = out.depth[0, ..., 0].float().cpu().numpy()  # [H, W]
    return to_uint8(colorize_depth(depth, alpha))


def make_render_fn(sets: Mapping[str, PrimitiveSet], *, backend: str = "auto",
                   render: Callable | None = None, repair: FrameRepair | None = None,
                   appearance: Callable[[str], Tensor] | None = None) -> RenderFn:
    """A render function over fixed, named primitive sets (a saved run or PLY).

    Args:
        sets: name -> primitive set; ``RenderSettings.primitive`` picks one (default: first).
        backend: rasterizer backend passed to ``render``.
        render: the engine's render function (default :func:`recon.render.render`); injectable
            for tests.
        repair: the post-pass of the ``repaired`` mode (:func:`recon.repair.postpass.load_frame_repair`);
            None = no such mode.
        appearance: ``RenderSettings.appearance`` name -> reference appearance of a run with
            per-image appearance (:func:`recon.wild.protocol.reference_transform`); None = none.
    """
    if not sets:
        raise ValueError("make_render_fn needs at least one primitive set")

    def render_fn(camera: Cameras, settings: RenderSettings) -> np.ndarray:
        name = settings.primitive if settings.primitive in sets else next(iter(sets))
        reference = appearance(settings.appearance) if appearance is not None and settings.appearance else None
        return render_set(sets[name], camera, settings, backend=backend, render=render, repair=repair,
                          reference=reference)

    return render_fn


def make_live_render_fn(primitive: str, get_params: Callable[[], Mapping[str, Tensor]],
                        get_sh_degree: Callable[[], int], *, lock=None,
                        background: tuple[float, float, float] | None = None,
                        backend: str = "auto", render: Callable | None = None) -> RenderFn:
    """A render function over parameters that change while training.

    Args:
        primitive: the family being trained.
        get_params: returns the current raw parameters (densification may replace the dict).
        get_sh_degree: returns the active SH degree.
        lock: held while reading and rendering the parameters (e.g. ``TrainingState.lock``) so
            the optimiser never updates them mid-render.
        background: RGB in [0, 1] (None = black).
    """
    import contextlib

    def render_fn(camera: Cameras, settings: RenderSettings) -> np.ndarray:
        with lock if lock is not None else contextlib.nullcontext():
            params = {k: v.detach() for k, v in get_params().items()}
            prim = PrimitiveSet(primitive, params, int(get_sh_degree()), background)
            return render_set(prim, camera, settings, backend=backend, render=render)

    return render_fn
