"""Photos-in-the-wild variants of the embedded demo scene, with exact ground truth.

``--data synthetic:VARIANT`` perturbs the training views of :func:`make_synthetic_scene` and
leaves its test views clean:

* ``wild-appearance``: per-view exposure and white balance, ``image x gain`` with
  ``gain = exposure x balance`` per channel, exposure in [0.6, 1], balance in [0.85, 1] (gains
  never above 1, so nothing clips and the change is exactly a diagonal colour transform);
* ``wild-occluders``: an opaque, flat-coloured rectangle or disc (4-12 % of the image) pasted
  into every third training view;
* ``wild-rain``: 40 thin slanted streaks blended over every training view;
* ``wild``: all three.

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
    "wild-rain": ("rain",),
    "wild": ("appearance", "occluders", "rain"),
}


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


def perturb_views(scene: SceneData, kinds: tuple[str, ...], seed: int = 0) -> SceneData:
    """Applies ``kinds`` (appearance, occluders, rain) to the training views of ``scene`` in place.

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
        if "occluders" in kinds and k % 3 == 1:
            occ = _occluder(h, w, gen)
            colour = torch.rand(3, generator=gen)
            img = torch.where(occ[..., None], colour, img)
            truth["occluders"][scene.names[i]] = occ
        if "rain" in kinds:
            rain = _rain(h, w, gen)
            img = torch.where(rain[..., None], 0.5 * img + 0.5 * torch.tensor([0.85, 0.88, 0.95]), img)
            truth["rain"][scene.names[i]] = rain
        scene.images[i] = img.clamp(0, 1).contiguous()
    scene.meta["wild"] = truth
    return scene


def make_synthetic_variant(path: str, **kwargs) -> SceneData:
    """The demo scene named by ``--data``: ``synthetic`` or ``synthetic:VARIANT`` (see :data:`VARIANTS`).

    Args:
        path: the ``--data`` value.
        kwargs: passed to :func:`make_synthetic_scene` (``seed`` also seeds the perturbations).

    Raises:
        ConfigError: an unknown variant (the message lists them).
    """
    _, _, variant = path.partition(":")
    if variant and variant not in VARIANTS:
        raise ConfigError(
            f"data.path (--data): unknown synthetic variant {variant!r}",
            hint=f"use synthetic or synthetic:{{{','.join(VARIANTS)}}}",
        )
    scene = make_synthetic_scene(**kwargs)
    if not variant:
        return scene
    scene.meta["variant"] = variant
    return perturb_views(scene, VARIANTS[variant], kwargs.get("seed", 0))
