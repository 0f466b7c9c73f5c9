"""PSNR / SSIM against analytic values, scipy filtering and pytorch_msssim."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from recon.eval.metrics import average_error, composite, psnr, ssim, ssim_map


def _images(b=2, h=24, w=20, dtype=torch.float64):
    gen = torch.Generator().manual_seed(1)
    gt = torch.rand(b, h, w, 3, generator=gen, dtype=dtype) * 0.6 + 0.2
    pred = (gt + 0.15 * torch.randn(b, h, w, 3, generator=gen, dtype=dtype)).clamp(0, 1)
    return pred, gt


def test_psnr_of_constant_offsets():
    _, gt = _images()
    assert psnr(gt[0] + 0.1, gt[0]).item() == pytest.approx(20.0, abs=1e-9)
    offsets = torch.tensor([0.1, 0.01], dtype=gt.dtype)[:, None, None, None]
    assert torch.allclose(psnr(gt - offsets, gt), torch.tensor([20.0, 40.0], dtype=gt.dtype))
    assert math.isinf(psnr(gt, gt)[0].item())


def test_masked_psnr_ignores_pixels_outside_the_mask():
    _, gt = _images(b=1)
    gt = gt[0]
    mask = torch.zeros(24, 20)
    mask[5:15, 4:12] = 1
    pred = gt + 0.05
    pred[mask == 0] = torch.rand(int((mask == 0).sum()), 3, dtype=gt.dtype)  # garbage outside
    # -10 log10(0.05^2) = 26.0206 dB on the 80 mask pixels
    assert psnr(pred, gt, mask=mask).item() == pytest.approx(-10 * math.log10(0.0025), abs=1e-9)
    assert psnr(pred, gt).item() < 20  # unmasked PSNR sees the garbage
    # a full mask is the plain metric
    assert psnr(pred, gt, mask=torch.ones(24, 20)).item() == pytest.approx(psnr(pred, gt).item())
    with pytest.raises(ValueError, match="empty"):
        psnr(pred, gt, mask=torch.zeros(24, 20))


def _ssim_scipy(x: np.ndarray, y: np.ndarray) -> float:
    """3DGS SSIM from scipy's zero-padded Gaussian filter (radius 5 = truncate * sigma)."""
    from scipy.ndimage import gaussian_filter

    def blur(a):
        return np.stack(
            [
                gaussian_filter(a[..., c], 1.5, mode="constant", cval=0.0, truncate=5 / 1.5)
                for c in range(a.shape[-1])
            ],
            -1,
        )

    mx, my = blur(x), blur(y)
    sxx, syy, sxy = blur(x * x) - mx**2, blur(y * y) - my**2, blur(x * y) - mx * my
    c1, c2 = 0.01**2, 0.03**2
    m = ((2 * mx * my + c1) * (2 * sxy + c2)) / ((mx**2 + my**2 + c1) * (sxx + syy + c2))
    return float(m.mean())


def test_ssim_matches_scipy_reference_including_borders():
    pytest.importorskip("scipy")
    pred, gt = _images()
    ours = ssim(pred, gt)
    assert ours.shape == (2,)
    for i in range(2):
        assert ours[i].item() == pytest.approx(
            _ssim_scipy(pred[i].numpy(), gt[i].numpy()), abs=1e-10
        )
    assert ssim(pred[1], gt[1]).item() == pytest.approx(ours[1].item(), abs=1e-12)


def test_ssim_interior_matches_pytorch_msssim():
    pytorch_msssim = pytest.importorskip("pytorch_msssim")
    pred, gt = _images(h=40, w=36)
    ref = pytorch_msssim.ssim(
        pred.permute(0, 3, 1, 2),
        gt.permute(0, 3, 1, 2),
        data_range=1.0,
        size_average=False,
        win_size=11,
        win_sigma=1.5,
        K=(0.01, 0.03),
    )
    # pytorch_msssim uses 'valid' filtering: our 'same' map without its 5-pixel border
    interior = ssim_map(pred, gt)[:, 5:-5, 5:-5].flatten(1).mean(1)
    assert torch.allclose(interior, ref.to(interior.dtype), atol=1e-6)


def test_ssim_identity_range_and_gradient():
    pred, gt = _images(b=1, h=12, w=12)
    assert ssim(gt, gt).item() == pytest.approx(1.0, abs=1e-12)
    assert -1.0 <= ssim(pred, gt).item() < 0.9
    assert ssim(pred.float(), gt.float()).dtype == torch.float32
    x = pred[0, :, :, :1].clone().requires_grad_(True)
    assert torch.autograd.gradcheck(lambda a: ssim(a, gt[0, :, :, :1]), (x,), eps=1e-6, atol=1e-6)


def test_masked_ssim_composites_on_white():
    pred, gt = _images(b=1)
    mask = torch.zeros(1, 24, 20)
    mask[:, 6:18, 5:15] = 1
    other = pred.clone()
    other[mask[..., None].expand_as(other) == 0] = 0.0  # change only outside the mask
    assert ssim(pred, gt, mask=mask).item() == pytest.approx(
        ssim(other, gt, mask=mask).item(), abs=1e-12
    )
    white = composite(pred, mask)
    assert torch.all(white[0][mask[0] == 0] == 1.0) and torch.equal(
        white[0][mask[0] == 1], pred[0][mask[0] == 1]
    )
    by_hand = _ssim_scipy(white[0].numpy(), composite(gt, mask)[0].numpy())
    assert ssim(pred, gt, mask=mask).item() == pytest.approx(by_hand, abs=1e-10)
    black = composite(pred, mask, background=0.0)
    assert torch.all(black[0][mask[0] == 0] == 0.0)


def test_bad_shapes_are_rejected():
    a = torch.rand(8, 8, 3)
    with pytest.raises(ValueError, match="differ in shape"):
        psnr(a, torch.rand(8, 9, 3))
    with pytest.raises(ValueError, match=r"\[H, W, C\]"):
        ssim(torch.rand(8, 3), torch.rand(8, 3))
    with pytest.raises(ValueError, match="mask"):
        psnr(a, a, mask=torch.ones(4, 4))


def test_average_error_geometric_mean():
    # terms 10^-2, sqrt(0.25) = 0.5, 0.25 -> (0.00125)^(1/3)
    assert average_error(20.0, 0.75, 0.25) == pytest.approx(0.00125 ** (1 / 3), rel=1e-12)
