"""GES primitives: the bounded shape activation and the frequency-modulated loss (METHODS.md 3)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy.ndimage import gaussian_filter

from recon.primitives import spec
from recon.primitives.ges import GesConfig, frequency_loss_terms, frequency_mask, init_from_points
from recon.train.losses import photometric_loss

SPEC = spec("ges")


def test_shape_activation_is_two_at_zero_bounded_and_invertible():
    raw = torch.linspace(-30, 30, 601, dtype=torch.float64)
    beta = SPEC.activate_one("shape", raw)
    assert SPEC.activate_one("shape", torch.zeros(3)).eq(2.0).all()  # exactly the Gaussian at init
    assert beta.min() >= 0.5 and beta.max() <= 8.0 and (beta.diff() >= 0).all()
    assert beta[0] == pytest.approx(0.5, rel=1e-6) and beta[-1] == pytest.approx(8.0, rel=1e-6)
    inner = raw.abs() < 5
    torch.testing.assert_close(SPEC.inverse("shape", beta[inner]), raw[inner], rtol=1e-6, atol=1e-6)
    eps = 1e-6  # d beta / d raw = 2 at 0, as 2 exp(raw)
    slope = (SPEC.activate_one("shape", torch.tensor(eps, dtype=torch.float64)) - 2.0) / eps
    assert float(slope) == pytest.approx(2.0, rel=1e-4)


def test_init_is_the_gaussian_init_with_beta_two():
    pts, cols = torch.rand(20, 3), torch.rand(20, 3)
    raw = init_from_points(pts, cols, sh_degree=1, opacity=0.3)
    assert set(raw) == set(SPEC.param_names) and raw["shape"].shape == (20,)
    assert (SPEC.activate_one("shape", raw["shape"]) == 2.0).all()


def _mask_oracle(render: torch.Tensor, progress: float) -> np.ndarray:
    """METHODS.md's recipe with scipy's Gaussian filter (zero padding, radius round(3 sigma))."""
    f = 100 * progress
    s1 = 0.1 + 0.1 * (f if f < 50 else 100 - f)
    V, H, W, _ = render.shape
    gray = render.double().mean(-1, keepdim=True).permute(0, 3, 1, 2)
    small = F.interpolate(gray, size=(round(0.2 * H), round(0.2 * W)), mode="bilinear", align_corners=False)
    out = np.zeros((V, H, W, 1))
    for v in range(V):
        img = small[v, 0].numpy()
        blur = [gaussian_filter(img, s, mode="constant", truncate=round(3 * s) / s) for s in (s1, 2 * s1)]
        dog = torch.from_numpy(blur[0] - blur[1])[None, None]
        dog = F.interpolate(dog, size=(H, W), mode="bilinear", align_corners=False)[0, 0].numpy()
        band = (dog - dog.min()) / (dog.max() - dog.min())
        out[v, ..., 0] = (1 - band if f < 50 else band) > 0.5
    return out


@pytest.mark.parametrize("progress", [0.05, 0.3, 0.7, 0.95])
def test_frequency_mask_matches_the_recipe(progress):
    gen = torch.Generator().manual_seed(0)
    render = torch.rand(2, 60, 80, 3, generator=gen, dtype=torch.float64)
    render[:, :, 40:] = 0.5  # a flat half and a noisy half
    mask = frequency_mask(render, progress)
    expected = _mask_oracle(render, progress)
    assert mask.shape == (2, 60, 80, 1) and set(mask.unique().tolist()) <= {0.0, 1.0}
    assert (mask.numpy() != expected).mean() < 1e-3  # binarisation ties only
    assert 0 < mask.mean() < 1


def test_frequency_term_turns_the_loss_into_the_official_mix():
    gen = torch.Generator().manual_seed(1)
    target = torch.rand(1, 30, 40, 3, generator=gen)
    render = torch.rand(1, 30, 40, 3, generator=gen).requires_grad_()
    loss, l1 = photometric_loss(render, target, 0.2)
    terms = frequency_loss_terms(GesConfig(), render, target, l1, progress=0.8)
    mask = frequency_mask(render.detach(), 0.8)
    ssim_part = loss - 0.8 * l1
    official = 0.3 * l1 + ssim_part + 0.5 * (mask * render - mask * target).abs().mean()
    torch.testing.assert_close(loss + terms["frequency"], official)
    (loss + terms["frequency"]).backward()  # the mask carries no gradient
    assert torch.isfinite(render.grad).all()
    assert frequency_loss_terms(GesConfig(frequency_weight=0.0), render, target, l1, 0.8) == {}
