"""The tile-blocked CPU Gaussian rasterizer against the reference twin where its SIMD blocking has
edge cases: image sizes that are not multiples of the tile or of the 8-pixel vectors, tile sizes
other than 16, scenes that saturate (pixel walks stop early), and the 4-lane non-AVX path."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from recon.ops import reference as ref
from tests.ops.test_kernels_gaussians import cameras, gaussians, rel_err, render_and_grad

kernels = pytest.importorskip("recon.ops.kernels")
_ok, _why = kernels.available("cpu")
pytestmark = pytest.mark.skipif(not _ok, reason=f"CPU kernels unavailable: {_why}")
REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    "V,N,W,H,C,tile_size,with_bg",
    [
        (1, 300, 37, 29, 3, 16, True),  # partial tiles, rows of 5 and 13 pixels
        (2, 400, 45, 23, 2, 8, False),  # 8x8 tiles
        (1, 300, 50, 41, 5, 13, True),  # tiles of 169 pixels (not a multiple of 8)
        (1, 100, 7, 5, 1, 16, True),  # image smaller than one tile
        (1, 300, 64, 64, 3, 32, False),  # 32x32 tiles: max weights comparable
    ],
)
def test_blocked_kernel_matches_reference(V, N, W, H, C, tile_size, with_bg):
    torch.manual_seed(V * N + W)
    viewmats, Ks = cameras(V, W, H)
    g = gaussians(N)
    feats = torch.rand(V, N, C)
    bg = torch.rand(V, C + 1) if with_bg else None
    c_r, a_r, w_r, g_r = render_and_grad(ref, g, feats, bg, viewmats, Ks, W, H, tile_size)
    c_c, a_c, w_c, g_c = render_and_grad(kernels, g, feats, bg, viewmats, Ks, W, H, tile_size)
    assert a_r.max() > 0.5
    torch.testing.assert_close(c_c, c_r, atol=1e-4, rtol=0)
    torch.testing.assert_close(a_c, a_r, atol=1e-4, rtol=0)
    if W % tile_size == 0 and H % tile_size == 0:
        torch.testing.assert_close(w_c, w_r, atol=1e-4, rtol=0)
    for a, b in zip(g_r, g_c):
        assert rel_err(a, b) < 1e-3


def test_saturated_scene_stops_early_with_the_same_numbers():
    """Large, nearly opaque Gaussians: most walks stop (T <= 1e-4) long before the list ends."""
    torch.manual_seed(0)
    V, N, W, H, C = 1, 600, 40, 40, 3
    viewmats, Ks = cameras(V, W, H)
    g = gaussians(N)
    g["scales"] = g["scales"] * 3
    g["opacities"] = torch.rand(N) * 0.2 + 0.79
    feats = torch.rand(V, N, C)
    c_r, a_r, _, g_r = render_and_grad(ref, g, feats, None, viewmats, Ks, W, H, 16)
    c_c, a_c, _, g_c = render_and_grad(kernels, g, feats, None, viewmats, Ks, W, H, 16)
    assert (a_r > 0.99).float().mean() > 0.5  # most pixels saturated
    torch.testing.assert_close(c_c, c_r, atol=1e-4, rtol=0)
    torch.testing.assert_close(a_c, a_r, atol=1e-4, rtol=0)
    for a, b in zip(g_r, g_c):
        assert rel_err(a, b) < 1e-3


def test_baseline_simd_path_matches_reference():
    """The 4-lane (non-AVX) kernels, forced by RECON_CPU_NO_AVX in a fresh process."""
    code = (
        "from tests.ops.test_cpu_raster_gaussian import test_blocked_kernel_matches_reference as t;"
        "t(1, 300, 37, 29, 3, 16, True); t(2, 400, 45, 23, 2, 8, False)"
    )
    env = {**os.environ, "RECON_CPU_NO_AVX": "1", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
