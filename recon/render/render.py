"""``render(primitive, params, cameras)``: raw parameters in, images out.

Activates the raw parameters with the family's spec, slices the SH coefficients to the active
degree, and calls the one rasterization pipeline (:func:`recon.ops.rasterize.rasterize`) with the
family's record, which owns backend choice and input validation.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import Tensor

from recon.cameras import Cameras
from recon.ops.rasterize import rasterize
from recon.primitives import family
from recon.primitives.sh import num_sh_bases


@dataclass
class RenderOutput:
    """What one render call returns (V views of one size H x W).

    Attributes:
        rgb: [V, H, W, 3] colours composited over the background.
        depth: [V, H, W, 1] expected camera depth (0 where nothing was hit).
        alpha: [V, H, W, 1] accumulated opacity.
        means2d: [V, N, 2] projected centres (gradient retained for densification).
        radii: [V, N, 2] int32 screen radii (0 = culled in that view).
        max_weights: [V, N] largest blending weight per primitive and view.
    """

    rgb: Tensor
    depth: Tensor
    alpha: Tensor
    means2d: Tensor
    radii: Tensor
    max_weights: Tensor


def _sh_colors(act: Mapping[str, Tensor], sh_degree: int) -> Tensor:
    sh = torch.cat([act["sh0"], act["shN"]], dim=1)  # [N, K, 3]
    available = sh.shape[1]
    if num_sh_bases(sh_degree) > available:
        raise ValueError(f"sh_degree {sh_degree} needs {num_sh_bases(sh_degree)} SH bases, params hold {available}")
    return sh[:, : num_sh_bases(sh_degree)]


def render(
    primitive: str,
    params: Mapping[str, Tensor],
    cameras: Cameras,
    *,
    sh_degree: int,
    backgrounds: Tensor | None = None,
    backend: str = "auto",
) -> RenderOutput:
    """Renders primitives into every camera (all cameras must share one image size).

    Args:
        primitive: ``"gaussian"``, ``"triangle"`` or ``"convex"``.
        params: the family's raw parameters (see ``recon.primitives.FAMILIES[primitive].spec``).
        cameras: V cameras of one size.
        sh_degree: active SH degree (0..stored degree).
        backgrounds: [V, 3] background colours (black when None).
        backend: rasterizer backend (``"auto"``, ``"cpu"``, ``"cuda"``, ``"reference"``, ``"gsplat"``).

    Returns:
        A :class:`RenderOutput`.
    """
    fam = family(primitive)
    act = fam.spec.activate(params)
    colors = _sh_colors(act, sh_degree)  # [N, (d+1)^2, 3]
    device = next(iter(params.values())).device
    out = rasterize(
        fam.raster,
        fam.raster_inputs(act),
        colors,
        cameras.viewmats.to(device=device, dtype=torch.float32),  # [V, 4, 4]
        cameras.Ks.to(device=device, dtype=torch.float32),  # [V, 3, 3]
        cameras.width,
        cameras.height,
        sh_degree=sh_degree,
        backgrounds=None if backgrounds is None else backgrounds.to(device=device, dtype=torch.float32),
        backend=backend,
    )
    return RenderOutput(
        rgb=out.colors[..., :3],
        depth=out.depths,
        alpha=out.alphas,
        means2d=out.means2d,
        radii=out.radii,
        max_weights=out.max_weights,
    )


def solid_background(background: Tensor | None, device: torch.device | str | None = None) -> Tensor:
    """[3] the one colour behind renders that are kept as images (pseudo views, repair pairs, a
    fixer's input): the run's training background, black when that one is random (None)."""
    if background is None:
        return torch.zeros(3, device=device)
    return background if device is None else background.to(device)


@torch.no_grad()
def render_views(
    primitive: str,
    params: Mapping[str, Tensor],
    cameras: Cameras,
    *,
    sh_degree: int,
    background: Tensor | None = None,
    backend: str = "auto",
) -> list[RenderOutput]:
    """Renders views one at a time without gradients (cameras may differ in size).

    Args:
        background: [3] colour used for every view (black when None).
    """
    outs = []
    for i in range(len(cameras)):
        bg = None if background is None else background.reshape(1, 3)
        outs.append(render(primitive, params, cameras[i], sh_degree=sh_degree, backgrounds=bg, backend=backend))
    return outs
