"""The blocked SIMD CPU path of GES (cuda/src/cpu_simd_windows_impl.h) against the reference twin
where it has edges: shapes at the ends of the learnt range (beta 0.5 and 8: polynomial log and
exp far from 1), pixel centres exactly on the primitive centre (p = 0, the clamp of the power),
centres on tile borders and images that are not whole tiles or whole 8-pixel vectors, hundreds of
primitives per tile (walks that stop early), and the 4-lane non-AVX instance.

Stage 3 is driven directly with hand-made 2D footprints, so the pixel offsets are exact."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from recon.ops import reference
from recon.ops.family import GAUSSIAN, GES
from recon.ops.reference.ges import ges_extent

kernels = pytest.importorskip("recon.ops.kernels")
_ok, _why = kernels.available("cpu")
pytestmark = pytest.mark.skipif(not _ok, reason=f"CPU kernels unavailable: {_why}")
REPO = Path(__file__).resolve().parents[2]


def footprints(n: int, W: int, H: int, beta: torch.Tensor, seed: int, radius_px: float = 3.0) -> dict:
    """``n`` random 2D GES footprints in one view: means2d [1,n,2] (in the image), conics [1,n,3]
    of ellipses with axes ~ ``radius_px``, shape [n], opacities [n], depths [1,n], colours [1,n,3]."""
    g = torch.Generator().manual_seed(seed)
    sx, sy = (0.4 + torch.rand(2, n, generator=g)) * radius_px  # std devs in pixels
    rho = (torch.rand(n, generator=g) - 0.5) * 1.2  # correlation
    det = (sx * sy) ** 2 * (1 - rho**2)
    conics = torch.stack([sy**2 / det, -rho * sx * sy / det, sx**2 / det], -1)  # inverse covariance
    means2d = torch.rand(n, 2, generator=g) * torch.tensor([W, H])
    return {
        "means2d": means2d[None],
        "conics": conics[None],
        "shape": beta,
        "opacities": torch.rand(n, generator=g) * 0.9 + 0.08,
        "depths": torch.rand(1, n, generator=g) + 1.0,
        "features": torch.rand(1, n, 3, generator=g),
    }


def radii_of(fp: dict) -> torch.Tensor:
    """[1,n,2] int32 ENGINE.md footprint radii: ceil(extent sqrt(diag(conic^-1)))."""
    a, b, c = fp["conics"][0].double().unbind(-1)
    det = a * c - b * b
    extent = ges_extent(fp["shape"].double(), fp["opacities"].double())
    r = torch.stack([torch.sqrt(c / det), torch.sqrt(a / det)], -1) * extent[:, None]
    return torch.ceil(r).to(torch.int32)[None]


def stage3(module, fp: dict, W: int, H: int, tile_size: int):
    """Tiles, then rasterize_to_pixels and a backward of fixed cotangents on colours and alphas.

    Returns (colors, alphas, max_weights, grads of means2d, conics, shape, opacities, features)."""
    offsets, ids = module.isect_tiles(fp["means2d"], radii_of(fp), fp["depths"], W, H, tile_size)
    leaves = {k: fp[k].clone().requires_grad_() for k in ("means2d", "conics", "shape", "opacities", "features")}
    window = (leaves["means2d"], leaves["conics"], leaves["shape"])
    colors, alphas, max_w = module.rasterize_to_pixels(
        GES, window, leaves["features"], leaves["opacities"], W, H, offsets, ids,
        backgrounds=torch.full((1, 3), 0.25), tile_size=tile_size,
    )  # fmt: skip
    gen = torch.Generator().manual_seed(5)
    ((colors * torch.randn(colors.shape, generator=gen)).sum() + alphas.sum()).backward()
    return (colors, alphas, max_w), {k: v.grad for k, v in leaves.items()}


def assert_matches_reference(fp: dict, W: int, H: int, tile_size: int = 16) -> None:
    (c_r, a_r, m_r), g_r = stage3(reference, fp, W, H, tile_size)
    (c_k, a_k, m_k), g_k = stage3(kernels, fp, W, H, tile_size)
    assert a_r.max() > 0.3  # something is drawn
    torch.testing.assert_close(c_k, c_r, rtol=0, atol=1e-4)
    torch.testing.assert_close(a_k, a_r, rtol=0, atol=1e-4)
    torch.testing.assert_close(m_k, m_r, rtol=0, atol=1e-4)
    for k, g in g_r.items():
        scale = float(g.abs().max())
        assert scale > 0, k
        torch.testing.assert_close(g_k[k], g, rtol=1e-3, atol=2e-5 * scale, msg=k)


@pytest.mark.parametrize("beta", [0.5, 0.55, 1.0, 3.7, 7.9, 8.0])
def test_shape_at_the_ends_of_the_range(beta):
    W, H, n = 40, 36, 60
    radius = 0.6 if beta < 1 else 3.0  # beta = 0.5: footprints of tens of standard deviations
    fp = footprints(n, W, H, torch.full((n,), beta), seed=int(beta * 10), radius_px=radius)
    assert_matches_reference(fp, W, H)


def test_pixel_centres_on_the_primitive_centres():
    """p = 0 and p below the power's clamp (1e-12): window 1, finite gradients (beta < 2 included)."""
    W, H, n = 32, 32, 40
    g = torch.Generator().manual_seed(11)
    fp = footprints(n, W, H, torch.rand(n, generator=g) * 3 + 0.5, seed=11)
    pix = torch.randint(0, 32, (n, 2), generator=g).float() + 0.5
    pix[1::2, 0] += 1e-7 * 32  # offsets of ~1 ulp: p ~ 1e-13 .. 1e-11, around the clamp
    fp["means2d"] = pix[None]
    fp["opacities"] = torch.rand(n, generator=g) * 0.3 + 0.1  # walks stay alive: every entry is seen
    assert_matches_reference(fp, W, H)


@pytest.mark.parametrize(("W", "H", "tile_size"), [(37, 29, 16), (45, 23, 8), (50, 41, 13)])
def test_tile_borders_and_partial_tiles(W, H, tile_size):
    """Centres on tile borders and corners (boxes cut by tiles), images of partial tiles and rows
    that are not whole vectors."""
    n = 80
    g = torch.Generator().manual_seed(W)
    fp = footprints(n, W, H, torch.rand(n, generator=g) * 7.5 + 0.5, seed=W, radius_px=2.0)
    border = torch.arange(1, 4, dtype=torch.float32) * tile_size  # 8, 16, ... on the grid lines
    fp["means2d"][0, : n // 2, 0] = border[torch.arange(n // 2) % 3].clamp(max=W - 1)
    fp["means2d"][0, : n // 4, 1] = border[torch.arange(n // 4) % 2].clamp(max=H - 1)
    assert_matches_reference(fp, W, H, tile_size)


def test_hundreds_of_primitives_per_tile_stop_early():
    """~2000 overlapping footprints over 2x2 tiles: most walks stop (T <= 1e-4) mid-list."""
    W, H, n = 32, 32, 2000
    g = torch.Generator().manual_seed(2)
    fp = footprints(n, W, H, torch.rand(n, generator=g) * 4 + 0.7, seed=2, radius_px=4.0)
    fp["opacities"] = torch.rand(n, generator=g) * 0.3 + 0.6
    _, ids = kernels.isect_tiles(fp["means2d"], radii_of(fp), fp["depths"], W, H, 16)
    assert ids.numel() > 4 * 300  # hundreds per tile
    assert_matches_reference(fp, W, H)


def test_beta_two_composites_exactly_like_the_gaussian_kernel():
    """beta = 2 takes the Gaussian numbers: identical images, identical gradients of the shared
    parameters (not just close)."""
    W, H, n = 40, 40, 300
    fp = footprints(n, W, H, torch.full((n,), 2.0), seed=4)
    offsets, ids = kernels.isect_tiles(fp["means2d"], radii_of(fp), fp["depths"], W, H, 16)
    outs = []
    for family, window in ((GES, ("means2d", "conics", "shape")), (GAUSSIAN, ("means2d", "conics"))):
        leaves = {k: fp[k].clone().requires_grad_() for k in ("means2d", "conics", "opacities", "features")}
        tensors = [leaves.get(k, fp[k]) for k in window]
        colors, alphas, max_w = kernels.rasterize_to_pixels(
            family, tensors, leaves["features"], leaves["opacities"], W, H, offsets, ids
        )
        ((colors * torch.linspace(-1, 1, colors.numel()).view_as(colors)).sum() + alphas.sum()).backward()
        outs.append([colors, alphas, max_w] + [leaves[k].grad for k in sorted(leaves)])
    assert outs[0][1].max() > 0.5
    for a, b in zip(*outs):
        assert torch.equal(a, b)


def test_baseline_simd_path_matches_reference():
    """The 4-lane (non-AVX) instance, forced by RECON_CPU_NO_AVX in a fresh process."""
    code = (
        "from tests.ops.test_kernels_ges_blocked import test_shape_at_the_ends_of_the_range as t, "
        "test_tile_borders_and_partial_tiles as b; t(0.5); t(3.7); b(37, 29, 16)"
    )
    env = {**os.environ, "RECON_CPU_NO_AVX": "1", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
