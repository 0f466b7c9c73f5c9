"""CPU kernel of GES (cuda/include/window_ges.h) against its pure-PyTorch twin and the Gaussian kernel."""

from __future__ import annotations

import pytest
import torch

from recon.ops import reference
from recon.ops.family import GES
from recon.ops.rasterize import rasterize

from .test_kernels_gaussians import cameras, gaussians

kernels = pytest.importorskip("recon.ops.kernels")
_ok, _why = kernels.available("cpu")
pytestmark = pytest.mark.skipif(not _ok, reason=f"CPU kernels unavailable: {_why}")


def _ges(n: int, seed: int) -> dict[str, torch.Tensor]:
    torch.manual_seed(seed)
    return {**gaussians(n), "shape": 0.5 + 7.5 * torch.rand(n)}


def _render_and_grads(backend: str, prims, colors, viewmats, Ks, W, H, tile_size, family=GES):
    leaves = {k: v.clone().requires_grad_() for k, v in prims.items()}
    out = rasterize(family, leaves, colors, viewmats, Ks, W, H, backgrounds=torch.full((len(Ks), 3), 0.3, device=Ks.device),
                    tile_size=tile_size, backend=backend)  # fmt: skip
    cot = torch.randn(out.colors.shape, generator=torch.Generator().manual_seed(1)).to(out.colors.device)
    ((out.colors * cot).sum() + out.alphas.sum() + out.depths.sum()).backward()
    return out, {k: v.grad for k, v in leaves.items()}


@pytest.mark.parametrize(("views", "n", "tile_size"), [(1, 30, 16), (2, 200, 16), (3, 120, 8)])
def test_kernel_matches_the_reference_forward_and_gradients(views, n, tile_size):
    W, H = 64, 48
    viewmats, Ks = cameras(views, W, H)
    prims = _ges(n, seed=n)
    colors = torch.rand(n, 3)
    ref, v_ref = _render_and_grads("reference", prims, colors, viewmats, Ks, W, H, tile_size)
    ker, v_ker = _render_and_grads("cpu", prims, colors, viewmats, Ks, W, H, tile_size)
    assert ref.alphas.max() > 0.5
    assert torch.equal(ker.radii, ref.radii)
    for name in ("colors", "alphas", "max_weights"):
        torch.testing.assert_close(getattr(ker, name), getattr(ref, name), rtol=1e-4, atol=2e-5, msg=name)
    torch.testing.assert_close(ker.depths, ref.depths, rtol=1e-4, atol=2e-4)
    for k, g in v_ref.items():
        scale = float(g.abs().max())
        assert scale > 0, k  # every input, the shape included, moves the image
        torch.testing.assert_close(v_ker[k], g, rtol=1e-3, atol=1e-5 * scale, msg=k)


def test_beta_two_kernel_equals_the_gaussian_kernel():
    W, H = 64, 48
    viewmats, Ks = cameras(2, W, H)
    prims = _ges(150, seed=3)
    colors = torch.rand(150, 3)
    gauss = {k: v for k, v in prims.items() if k != "shape"}
    ges, v_ges = _render_and_grads("cpu", {**gauss, "shape": torch.full((150,), 2.0)}, colors, viewmats, Ks, W, H, 16)
    ref, v_ref = _render_and_grads("cpu", gauss, colors, viewmats, Ks, W, H, 16, family="gaussian")
    for name in ("colors", "alphas", "depths", "max_weights"):
        torch.testing.assert_close(getattr(ges, name), getattr(ref, name), rtol=1e-5, atol=1e-5, msg=name)
    for k, g in v_ref.items():
        torch.testing.assert_close(v_ges[k], g, rtol=1e-3, atol=1e-5 * float(g.abs().max()), msg=k)


def test_projection_kernel_sizes_the_footprint_like_the_reference():
    W, H = 64, 48
    viewmats, Ks = cameras(2, W, H)
    prims = _ges(300, seed=5)
    prims["opacities"][:20] = 0.9 / 255  # never reaches the alpha threshold: culled
    inputs = [prims[k] for k in GES.project_inputs]
    ker = kernels.project(GES, inputs, viewmats, Ks, W, H, 0.01, 1e10, 0.3)
    ref = reference.project(GES, inputs, viewmats, Ks, W, H, 0.01, 1e10, 0.3)
    assert torch.equal(ker[-1], ref[-1]) and (ker[-1][:, :20] == 0).all()
    visible = (ref[-1] > 0).all(-1)  # culled rows hold meaningless (finite) values
    for a, b in zip(ker[:3], ref[:3]):
        torch.testing.assert_close(a[visible], b[visible], rtol=1e-4, atol=1e-4)


def test_auto_backend_renders_ges_with_the_kernel():
    W, H = 32, 24
    viewmats, Ks = cameras(1, W, H)
    prims = _ges(20, seed=7)
    auto = rasterize(GES, prims, torch.rand(20, 3), viewmats, Ks, W, H, backend="auto")
    cpu = rasterize(GES, prims, torch.rand(20, 3), viewmats, Ks, W, H, backend="cpu")
    assert auto.alphas.sum() > 0 and torch.equal(auto.alphas, cpu.alphas)


@pytest.mark.cuda
@pytest.mark.parametrize("tile_size", [8, 16])
def test_cuda_kernel_matches_the_cpu_kernel(tile_size):
    W, H = 72, 40
    viewmats, Ks = cameras(2, W, H)
    prims = _ges(1200, seed=9)  # several shared-memory batches per tile
    colors = torch.rand(1200, 3)
    cpu, v_cpu = _render_and_grads("cpu", prims, colors, viewmats, Ks, W, H, tile_size)
    cuda = {k: v.cuda() for k, v in prims.items()}
    gpu, v_gpu = _render_and_grads("cuda", cuda, colors.cuda(), viewmats.cuda(), Ks.cuda(), W, H, tile_size)
    for name in ("colors", "alphas", "depths"):
        torch.testing.assert_close(getattr(gpu, name).cpu(), getattr(cpu, name), rtol=1e-3, atol=1e-4, msg=name)
    for k, g in v_cpu.items():
        torch.testing.assert_close(v_gpu[k].cpu(), g, rtol=1e-3, atol=1e-4 * float(g.abs().max()), msg=k)
