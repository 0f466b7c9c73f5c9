"""Gaussians against an oracle nobody here wrote: gsplat's pure-torch projection and tiles.

gsplat's ``_rasterize_to_pixels`` needs CUDA, so the images are composited by a plain per-pixel
loop over gsplat's own sorted tile lists with the 3DGS rules, written in this file.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from recon.ops import rasterize_gaussians
from recon.ops import reference as R
from recon.ops.sh import eval_sh_colors

from .scenes import cameras, random_gaussians

torch_impl = pytest.importorskip("gsplat.cuda._torch_impl", reason="gsplat not importable")

ALPHA_MAX, ALPHA_MIN, T_MIN = 0.99, 1.0 / 255.0, 1e-4


def _scene(n, views, w, h, seed):
    means, quats, scales, opac = random_gaussians(n, dtype=torch.float32, scale=0.08, spread=0.7)
    g = torch.Generator().manual_seed(seed)
    means = means + 0.05 * torch.randn(means.shape, generator=g)
    means[:3] = torch.tensor([[0.0, 0.0, -5.0], [0.1, 0.2, -3.5], [6.0, 0.0, 0.0]])  # culled
    viewmats, Ks = cameras(views, w, h, dtype=torch.float32)
    return means, quats, scales, opac, viewmats, Ks


def _gsplat_projection(means, quats, scales, viewmats, Ks, w, h):
    covars, _ = torch_impl._quat_scale_to_covar_preci(quats, scales, True, False)
    radii, means2d, depths, conics, _ = torch_impl._fully_fused_projection(
        means, covars, viewmats, Ks, w, h, eps2d=0.3, near_plane=0.01, far_plane=1e10
    )
    return radii, means2d, depths, conics


def _gsplat_tiles(means2d, radii, depths, w, h, tile_size=16):
    tw, th = (w + tile_size - 1) // tile_size, (h + tile_size - 1) // tile_size
    _, isect_ids, flatten_ids = torch_impl._isect_tiles(means2d, radii, depths, tile_size, tw, th)
    offsets = torch_impl._isect_offset_encode(isect_ids, means2d.shape[0], tw, th)
    return offsets, flatten_ids


def _composite_oracle(means2d, conics, feats, opac, offsets, flat, w, h, bg, tile_size=16):
    """Per pixel, walk the tile's sorted list front to back with the 3DGS rules."""
    V, N = conics.shape[:2]
    C = feats.shape[-1]
    TH, TW = offsets.shape[1:]
    flat_off = offsets.reshape(-1).tolist() + [flat.numel()]
    m, q, f, o, ids = (t.double().numpy() if t.is_floating_point() else t.numpy()
                       for t in (means2d, conics, feats, opac, flat))  # fmt: skip
    img = np.zeros((V, h, w, C))
    alpha = np.zeros((V, h, w))
    for v in range(V):
        for y in range(h):
            for x in range(w):
                tile = (v * TH + y // tile_size) * TW + x // tile_size
                T, out = 1.0, np.zeros(C)
                for fid in ids[flat_off[tile] : flat_off[tile + 1]]:
                    vv, n = divmod(int(fid), N)
                    dx, dy = x + 0.5 - m[vv, n, 0], y + 0.5 - m[vv, n, 1]
                    a, b, c = q[vv, n]
                    power = 0.5 * (a * dx * dx + c * dy * dy) + b * dx * dy
                    if power < 0:
                        continue
                    al = min(ALPHA_MAX, o[n] * np.exp(-power))
                    if al < ALPHA_MIN:
                        continue
                    nt = T * (1 - al)
                    if nt <= T_MIN:
                        break
                    out += f[vv, n] * al * T
                    T = nt
                img[v, y, x] = out + T * bg[v]
                alpha[v, y, x] = 1 - T
    return img, alpha


@pytest.mark.parametrize(
    "n,views,w,h,seed", [(60, 1, 24, 20, 0), (150, 2, 40, 33, 1), (200, 1, 48, 32, 2)]
)
def test_projection_and_tiles_match_gsplat(n, views, w, h, seed):
    means, quats, scales, opac, viewmats, Ks = _scene(n, views, w, h, seed)
    g_radii, g_means2d, g_depths, g_conics = _gsplat_projection(
        means, quats, scales, viewmats, Ks, w, h
    )
    means2d, depths, conics, radii = R.project_gaussians(means, quats, scales, viewmats, Ks, w, h)
    assert torch.equal(radii, g_radii)
    vis = (radii > 0).all(-1)
    assert vis.sum() > n // 4 and not vis[:, :3].any()
    torch.testing.assert_close(means2d[vis], g_means2d[vis], rtol=1e-5, atol=1e-4)
    torch.testing.assert_close(depths, g_depths, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(conics[vis], g_conics[vis], rtol=1e-4, atol=1e-6)
    # Tiles from gsplat's own inputs, so that both see the same floats.
    offsets, flat = R.isect_tiles(g_means2d, g_radii, g_depths, w, h)
    g_offsets, g_flat = _gsplat_tiles(g_means2d, g_radii, g_depths, w, h)
    assert torch.equal(offsets, g_offsets.to(torch.int32))
    assert torch.equal(flat, g_flat.to(torch.int32))


@pytest.mark.parametrize("channels", [1, 3, 7])
def test_images_match_gsplat_pipeline_with_3dgs_compositing(channels):
    n, views, w, h = 80, 2, 24, 20
    means, quats, scales, opac, viewmats, Ks = _scene(n, views, w, h, seed=channels)
    feats = torch.rand(n, channels)
    bgs = torch.rand(views, channels)
    ours = rasterize_gaussians(means, quats, scales, opac, feats, viewmats, Ks, w, h,
                               backgrounds=bgs, backend="reference")  # fmt: skip
    g_radii, g_means2d, g_depths, g_conics = _gsplat_projection(
        means, quats, scales, viewmats, Ks, w, h
    )
    g_offsets, g_flat = _gsplat_tiles(g_means2d, g_radii, g_depths, w, h)
    img, alpha = _composite_oracle(
        g_means2d, g_conics, feats[None].expand(views, -1, -1), opac, g_offsets, g_flat, w, h,
        bgs.double().numpy(),
    )  # fmt: skip
    assert (alpha > 0.5).mean() > 0.1
    np.testing.assert_allclose(ours.colors.detach().numpy(), img, atol=1e-5)
    np.testing.assert_allclose(ours.alphas[..., 0].detach().numpy(), alpha, atol=1e-5)


def test_sh_colors_match_gsplat_spherical_harmonics():
    n = 40
    means, *_ = random_gaussians(n)
    viewmats, _ = cameras(3, 16, 16)
    coeffs = torch.randn(n, 16, 3, dtype=torch.float64)
    for degree in range(4):
        ours = eval_sh_colors(coeffs, degree, means, viewmats)  # [V, N, 3]
        campos = torch.linalg.inv(viewmats)[:, :3, 3]
        dirs = means[None] - campos[:, None]
        ref = torch_impl._spherical_harmonics(degree, dirs, coeffs[None].expand(3, -1, -1, -1))
        torch.testing.assert_close(ours, (ref + 0.5).clamp_min(0.0), rtol=1e-12, atol=1e-12)
