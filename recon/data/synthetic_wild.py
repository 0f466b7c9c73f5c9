"""Photos-in-the-wild variants of the embedded demo scene, with exact ground truth.

``--data synthetic:VARIANT`` perturbs the training views of :func:`make_synthetic_scene` and
leaves its test views clean:

* ``wild-appearance``: per-view exposure and white balance, ``image x gain`` with
  ``gain = exposure x balance`` per channel, exposure in [0.6, 1], balance in [0.85, 1] (gains
  never above 1, so nothing clips and the change is exactly a diagonal colour transform);
* ``wild-occluders``: an opaque, flat-coloured rectangle or disc (4-12 % of the image) pasted
  into every third training view; ``wild-occluders-all``: one in every training view (tourist
  photos; and a sparse-view subset, ``data.views``, keeps its occluders);
* ``wild-rain``: 40 thin slanted streaks blended over every training view;
* ``wild``: all three;
* ``sfm-points``: the scene's exact surface samples replaced by what SfM would give a user's run
  (:func:`sfm_like_points`: a sparse subset, each point displaced by Gaussian noise), so runs
  starting from ``init.method scene`` no longer start from the exact surface.

Variants join with ``+`` (``synthetic:wild-occluders+sfm-points``).

``meta["wild"]`` holds the truth: ``gains`` [V, 3] (1 for clean views) and, per view name with a
perturbation, ``occluders`` / ``rain`` [H, W] bool masks of the changed pixels. The perturbations
draw from their own generator (seeded by ``seed``), so a variant is the same on every call.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from recon.data.scene import SceneData
from recon.data.synthetic import make_synthetic_scene
from recon.errors import ConfigError

SYNTHETIC = "synthetic"
VARIANTS = {
    "wild-appearance": ("appearance",),
    "wild-occluders": ("occluders",),
    "wild-occluders-all": ("occluders-all",),
    "wild-rain": ("rain",),
    "wild": ("appearance", "occluders", "rain"),
    "sfm-points": ("sfm-points",),
}
SFM_POINTS = 500
"""Points kept by ``sfm-points``."""
SFM_NOISE = 0.01
"""Standard deviation of their displacement, as a fraction of the scene's extent (its points' bounding-box diagonal)."""


def _occluder(h: int, w: int, gen: torch.Generator) -> Tensor:
    """[H, W] bool rectangle or disc covering 4-12 % of the image, fully inside it."""
    area = (0.04 + 0.08 * float(torch.rand((), generator=gen))) * h * w
    yy, xx = torch.meshgrid(torch.arange(h) + 0.5, torch.arange(w) + 0.5, indexing="ij")
    if float(torch.rand((), generator=gen)) < 0.5:
        aspect = 0.6 + 0.8 * float(torch.rand((), generator=gen))
        bh, bw = min(h - 2, round(math.sqrt(area * aspect))), min(w - 2, round(math.sqrt(area / aspect)))
        y0 = int(torch.randint(1, h - bh, (1,), generator=gen))
        x0 = int(torch.randint(1, w - bw, (1,), generator=gen))
        return (yy >= y0) & (yy < y0 + bh) & (xx >= x0) & (xx < x0 + bw)
    r = math.sqrt(area / math.pi)
    cy = r + 1 + float(torch.rand((), generator=gen)) * (h - 2 * r - 2)
    cx = r + 1 + float(torch.rand((), generator=gen)) * (w - 2 * r - 2)
    return (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r


def _rain(h: int, w: int, gen: torch.Generator, streaks: int = 40) -> Tensor:
    """[H, W] bool thin streaks, slanted about 15 degrees, 4-12 px long."""
    mask = torch.zeros(h, w, dtype=torch.bool)
    for _ in range(streaks):
        length = 4 + int(torch.randint(9, (1,), generator=gen))
        y0, x0 = float(torch.rand((), generator=gen)) * h, float(torch.rand((), generator=gen)) * w
        t = torch.linspace(0, length, 2 * length)
        ys, xs = (y0 + t * math.cos(0.26)).long(), (x0 - t * math.sin(0.26)).long()
        ok = (ys >= 0) & (ys < h) & (xs >= 0) & (xs < w)
        mask[ys[ok], xs[ok]] = True
    return mask


def sfm_like_points(scene: SceneData, num_points: int, noise: float, seed: int) -> None:
    """Replaces ``scene.points`` [P, 3] by ``num_points`` of them, each moved by N(0, (noise x extent)^2)
    per axis (extent: the diagonal of their bounding box); their colours stay exact. The draw depends
    on ``seed`` only, so every variant of one seed starts from the same points."""
    gen = torch.Generator().manual_seed(seed * 7919 + 16)
    points = scene.points.float()
    extent = float((points.amax(0) - points.amin(0)).norm())
    keep = torch.randperm(points.shape[0], generator=gen)[:num_points]
    scene.points = points[keep] + noise * extent * torch.randn(keep.numel(), 3, generator=gen)
    scene.point_colors = scene.point_colors[keep]


def perturb_views(scene: SceneData, kinds: tuple[str, ...], seed: int = 0) -> SceneData:
    """Applies ``kinds`` (appearance, occluders, occluders-all, rain, sfm-points) to ``scene``'s training views
    (its points for ``sfm-points``) in place.

    Returns:
        ``scene``, with ``meta["wild"]`` describing what changed (see the module docstring).
    """
    gen = torch.Generator().manual_seed(seed * 7919 + 15)
    test = set((scene.split or {}).get("test", []))
    train = [i for i in range(len(scene)) if i not in test]
    gains = torch.ones(len(scene), 3)
    truth: dict = {"kinds": list(kinds), "gains": gains, "occluders": {}, "rain": {}}
    for k, i in enumerate(train):
        img = scene.images[i]
        h, w = img.shape[:2]
        if "appearance" in kinds:
            exposure = 0.6 + 0.4 * torch.rand((), generator=gen)
            gains[i] = exposure * (0.85 + 0.15 * torch.rand(3, generator=gen))
            img = img * gains[i]
        if ("occluders" in kinds and k % 3 == 1) or "occluders-all" in kinds:
            occ = _occluder(h, w, gen)
            colour = torch.rand(3, generator=gen)
            img = torch.where(occ[..., None], colour, img)
            truth["occluders"][scene.names[i]] = occ
        if "rain" in kinds:
            rain = _rain(h, w, gen)
            img = torch.where(rain[..., None], 0.5 * img + 0.5 * torch.tensor([0.85, 0.88, 0.95]), img)
            truth["rain"][scene.names[i]] = rain
        scene.images[i] = img.clamp(0, 1).contiguous()
    if "sfm-points" in kinds:
        sfm_like_points(scene, SFM_POINTS, SFM_NOISE, seed)
    scene.meta["wild"] = truth
    return scene


def make_synthetic_variant(path: str, **kwargs) -> SceneData:
    """The demo scene named by ``--data``: ``synthetic`` or ``synthetic:VARIANT[+VARIANT...]`` (see :data:`VARIANTS`).

    Args:
        path: the ``--data`` value.
        kwargs: passed to :func:`make_synthetic_scene` (``seed`` also seeds the perturbations).

    Raises:
        ConfigError: an unknown variant (the message lists them).
    """
    _, _, variant = path.partition(":")
    parts = variant.split("+") if variant else []
    for part in parts:
        if part not in VARIANTS:
            raise ConfigError(
                f"data.path (--data): unknown synthetic variant {part!r}",
                hint=f"use synthetic or synthetic:{{{','.join(VARIANTS)}}}, joined with + (wild-occluders+sfm-points)",
            )
    scene = make_synthetic_scene(**kwargs)
    if not variant:
        return scene
    scene.meta["variant"] = variant
    kinds = tuple(dict.fromkeys(kind for part in parts for kind in VARIANTS[part]))
    return perturb_views(scene, kinds, kwargs.get("seed", 0))
