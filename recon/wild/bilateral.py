"""Per-image bilateral grids: a spatially varying colour transform per training image.

The idea of HDRNet / Bilateral Guided Radiance Field Processing (gsplat's ``BilateralGrid``),
written here from the description. A grid ``[12, L, Gy, Gx]`` holds one affine colour transform
``[A | b]`` (3x4, row-major) per cell: ``Gx`` x ``Gy`` cells across the image, ``L`` bins of
luminance. A pixel at ``(x, y)`` with colour ``rgb`` reads the grid trilinearly at
``(x / (W - 1), y / (H - 1), luma(rgb))`` (clamped at the borders) and applies the transform it
reads, so vignetting, gradients and tone curves that an affine model per image cannot express are
absorbed by the grid, not by the scene.

Grids are stored as offsets from the identity: a zero grid returns the render bit for bit (an
interpolated identity would be off by rounding). Training pulls the offsets toward zero and
smooths them with a total-variation penalty between neighbouring cells.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from recon.wild.appearance import PerImageAppearance

LUMA = (0.299, 0.587, 0.114)
"""Weights of the luminance guide (ITU-R BT.601)."""


def luminance(rgb: Tensor) -> Tensor:
    """[..., 3] colours -> [...] luminance guide."""
    return rgb @ torch.tensor(LUMA, dtype=rgb.dtype, device=rgb.device)


def slice_grid(grid: Tensor, rgb: Tensor) -> Tensor:
    """Per-pixel affine offsets read from ``grid`` by position and luminance (trilinear, border clamp).

    Args:
        grid: [12, L, Gy, Gx] offsets of ``[A | b]`` from the identity.
        rgb: [..., H, W, 3] colours (the guide is their luminance).

    Returns:
        [..., H, W, 3, 4] the interpolated offsets of each pixel.
    """
    *lead, h, w, _ = rgb.shape
    flat = rgb.reshape(-1, h, w, 3)  # [B, H, W, 3]
    b = flat.shape[0]
    ys = torch.linspace(-1.0, 1.0, h, dtype=rgb.dtype, device=rgb.device) if h > 1 else rgb.new_full((1,), -1.0)
    xs = torch.linspace(-1.0, 1.0, w, dtype=rgb.dtype, device=rgb.device) if w > 1 else rgb.new_full((1,), -1.0)
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")  # [H, W] each
    gz = luminance(flat).clamp(0.0, 1.0) * 2.0 - 1.0  # [B, H, W]
    coords = torch.stack([gx.expand(b, h, w), gy.expand(b, h, w), gz], dim=-1)  # [B, H, W, 3] as (x, y, z)
    cells = grid.to(rgb.dtype).expand(b, *grid.shape)  # [B, 12, L, Gy, Gx]
    out = F.grid_sample(cells, coords[:, None], mode="bilinear", padding_mode="border", align_corners=True)
    return out[:, :, 0].permute(0, 2, 3, 1).reshape(*lead, h, w, 3, 4)  # [B, 12, 1, H, W] -> [..., H, W, 3, 4]


def apply_grid(rgb: Tensor, grid: Tensor) -> Tensor:
    """``rgb + dA @ rgb + db`` per pixel, ``[dA | db]`` sliced from ``grid`` (:func:`slice_grid`).

    Args:
        rgb: [..., H, W, 3] colours.
        grid: [12, L, Gy, Gx] offsets from the identity.

    Returns:
        [..., H, W, 3] transformed colours (not clamped); ``rgb`` itself, bit for bit, for a zero grid.
    """
    offset = slice_grid(grid, rgb)  # [..., H, W, 3, 4]
    return rgb + (offset[..., :3] @ rgb[..., None])[..., 0] + offset[..., 3]


def total_variation(grid: Tensor) -> Tensor:
    """Sum over the grid's three axes of the mean squared difference between neighbouring cells.

    Args:
        grid: [12, L, Gy, Gx].
    """
    return sum((grid.diff(dim=d) ** 2).mean() for d in (1, 2, 3) if grid.shape[d] > 1) + grid.new_zeros(())


class BilateralAppearance(PerImageAppearance):
    """Trainable bilateral grids ([12, L, Gy, Gx] offsets from the identity) of the training images.

    Args:
        num_images: number of training images.
        lr: Adam learning rate.
        device: where the grids live.
        cells: ``Gx = Gy`` cells across the image.
        bins: ``L`` luminance bins.
        reg: weight of the mean squared offset from the identity per cell (``appearance_reg``).
        tv: weight of :func:`total_variation` (``appearance_tv``).
    """

    kind = "bilateral"
    compact = True

    def __init__(
        self,
        num_images: int,
        lr: float,
        device: torch.device | str = "cpu",
        cells: int = 16,
        bins: int = 8,
        reg: float = 0.0,
        tv: float = 10.0,
    ):
        super().__init__(torch.zeros(12, bins, cells, cells), num_images, lr, device)
        self.reg, self.tv = reg, tv

    def __call__(self, v: int, rgb: Tensor) -> Tensor:
        """[..., H, W, 3] render of training image ``v`` in that image's appearance."""
        return apply_grid(rgb, self.params[v])

    def regularisers(self, v: int) -> dict[str, Tensor]:
        """``appearance_reg`` (squared offset per cell, summed over its 12 entries, mean over cells)
        and ``appearance_tv`` (:func:`total_variation`); a term with weight 0 is left out."""
        grid = self.params[v]  # [12, L, Gy, Gx]
        terms = {}
        if self.reg > 0:
            terms["appearance_reg"] = self.reg * grid.square().sum(0).mean()
        if self.tv > 0:
            terms["appearance_tv"] = self.tv * total_variation(grid)
        return terms
