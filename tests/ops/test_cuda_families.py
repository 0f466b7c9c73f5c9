"""The family table of the compiled kernels (cuda/include/families.h).

On CPU: the generic ``project_fwd`` / ``project_bwd`` entry points against the pure-PyTorch
reference twin for every family, and the checks of the shared bindings. On a GPU (``-m cuda``):
the CUDA projection and the batched shared-memory CUDA rasterizer against the CPU kernels, for
every family and tile sizes 8, 16 and 32, on tiles whose lists span several batches.
"""

from __future__ import annotations

import pytest
import torch

from recon.ops import reference as ref
from recon.ops.family import CONVEX, GAUSSIAN, TRIANGLE
from tests.ops.test_kernels_gaussians import cameras, gaussians, rel_err
from tests.ops.test_kernels_triangles_convexes import convexes, triangles

kernels = pytest.importorskip("recon.ops.kernels")
_ok, _why = kernels.available("cpu")
pytestmark = pytest.mark.skipif(not _ok, reason=f"CPU kernels unavailable: {_why}")

# family -> (id, projection inputs, how many of them are differentiable)
FAMILIES = {
    "gaussian": (GAUSSIAN.kernel_id, ("means", "quats", "scales"), 3),
    "triangle": (TRIANGLE.kernel_id, ("vertices",), 1),
    "convex": (CONVEX.kernel_id, ("points", "delta", "sigma", "opacities"), 1),
}
REFERENCE = {"gaussian": ref.project_gaussians, "triangle": ref.project_triangles, "convex": ref.project_convexes}
PROJECT = {
    "gaussian": kernels.project_gaussians,
    "triangle": kernels.project_triangles,
    "convex": kernels.project_convexes,
}


def scene(family: str, N: int) -> dict[str, torch.Tensor]:
    torch.manual_seed(N)
    if family == "gaussian":
        return gaussians(N)
    p = triangles(N) if family == "triangle" else convexes(N)
    return p


@pytest.mark.parametrize("family", FAMILIES)
def test_generic_projection_matches_reference(family):
    V, N, W, H = 2, 300, 64, 48
    fid, names, n_grad = FAMILIES[family]
    p = scene(family, N)
    viewmats, Ks = cameras(V, W, H)
    outs = kernels.library().project_fwd(fid, [p[k] for k in names], viewmats, Ks, W, H, 0.01, 1e10, 0.3)
    x = [p[k].clone().requires_grad_() for k in names[:n_grad]]
    refs = REFERENCE[family](*x, *(p[k] for k in names[n_grad:]), viewmats, Ks, W, H)
    assert len(outs) == len(refs)  # means2d, depths, shape2d, (hull), radii
    radii = refs[-1]
    valid = radii.gt(0).all(-1)  # [V, N]
    assert valid.sum() > V * N // 2
    assert torch.equal(outs[-1], radii)
    for out, r in zip(outs[:-1], refs[:-1]):
        assert out.shape == r.shape and out.dtype == r.dtype
        if out.dtype == torch.int32:  # convex hull indices
            assert torch.equal(out, r)
        else:  # convex footprint centres: a double-precision vertex search, ~1e-5 apart
            torch.testing.assert_close(out[valid], r.detach()[valid], atol=1e-3, rtol=1e-5)
    # backward with random cotangents of means2d, depths and the 2D shape on visible rows
    cots = [torch.randn_like(refs[i]) * valid.reshape(V, N, *[1] * (refs[i].dim() - 2)) for i in range(3)]
    torch.autograd.backward(
        [r for r in refs[:3] if r.requires_grad], [c for r, c in zip(refs, cots) if r.requires_grad]
    )
    grads = kernels.library().project_bwd(fid, [p[k] for k in names[:n_grad]], viewmats, Ks, W, H, 0.3, outs[-1], *cots)
    assert len(grads) == n_grad
    for g, xi in zip(grads, x):
        assert g.shape == xi.shape and rel_err(xi.grad, g) < 1e-3


def test_shared_bindings_reject_bad_families_and_shapes():
    ext = kernels.library()
    viewmats, Ks = cameras(1, 32, 32)
    g = gaussians(10)
    args = (viewmats, Ks, 32, 32, 0.01, 1e10, 0.3)
    with pytest.raises(RuntimeError, match="unknown primitive family id 9"):
        ext.project_fwd(9, [g["means"], g["quats"], g["scales"]], *args)
    with pytest.raises(RuntimeError, match="takes 3 input tensors, got 1"):
        ext.project_fwd(GAUSSIAN.kernel_id, [g["means"]], *args)
    with pytest.raises(RuntimeError, match=r"projection input 1 must be \[10, 4\]"):
        ext.project_fwd(GAUSSIAN.kernel_id, [g["means"], g["scales"], g["scales"]], *args)
    c = convexes(10, K=9)
    with pytest.raises(RuntimeError, match="unsupported points per primitive 9"):
        ext.project_fwd(CONVEX.kernel_id, [c["points"], c["delta"], c["sigma"], c["opacities"]], *args)
    offsets, ids = torch.zeros(1, 2, 2, dtype=torch.int32), torch.zeros(0, dtype=torch.int32)
    feats, opac = torch.rand(1, 10, 3), torch.rand(10)
    with pytest.raises(RuntimeError, match="family 1 needs 7 window parameters, got 5"):
        ext.rasterize_fwd(TRIANGLE.kernel_id, torch.rand(1, 10, 5), None, feats, opac, None, 32, 32, 16, offsets, ids)


def render(family: str, p: dict[str, torch.Tensor], feats, bg, viewmats, Ks, W: int, H: int, tile_size: int):
    """Stages 1-3 of the compiled backend on the tensors' device; (colors, alphas, max_weights), tile lists."""
    names = FAMILIES[family][1]
    m2, d, *shape, radii = PROJECT[family](*(p[k] for k in names), viewmats, Ks, W, H)
    offsets, ids = kernels.isect_tiles(m2, radii, d, W, H, tile_size)
    f = torch.cat([feats, d[..., None]], dim=-1)
    common = (f, p["opacities"], W, H, offsets, ids)
    if family == "gaussian":
        out = kernels.rasterize_gaussians_to_pixels(m2, shape[0], *common, backgrounds=bg, tile_size=tile_size)
    elif family == "triangle":
        out = kernels.rasterize_triangles_to_pixels(shape[0], p["sigma"], *common, backgrounds=bg, tile_size=tile_size)
    else:
        out = kernels.rasterize_convexes_to_pixels(
            shape[0], shape[1], p["delta"], p["sigma"], d, *common, backgrounds=bg, tile_size=tile_size
        )
    return out, (offsets, ids)


# Rasterization parameters that get gradients, per family (besides features and backgrounds).
RASTER_GRADS = {
    "gaussian": ("means", "quats", "scales", "opacities"),
    "triangle": ("vertices", "sigma", "opacities"),
    "convex": ("points", "delta", "sigma", "opacities"),
}


def compare_devices(family: str, tile_size: int, device: str) -> None:
    """Renders one dense scene with the CPU kernels and on `device`; outputs and gradients agree."""
    V, W, H, C = 2, 72, 40, 3  # edge tiles are partial for every tile size
    N = {"gaussian": 1500, "triangle": 3000, "convex": 1000}[family]  # several batches per tile
    p, (viewmats, Ks) = scene(family, N), cameras(V, W, H)
    feats, bg = torch.rand(V, N, C), torch.rand(V, C + 1)
    cot_c, cot_a = torch.randn(V, H, W, C + 1), torch.randn(V, H, W, 1)
    images, grads = {}, {}
    for dev in ("cpu", device):
        q = {k: v.to(dev).requires_grad_(k in RASTER_GRADS[family]) for k, v in p.items()}
        f, b = feats.to(dev).requires_grad_(), bg.to(dev).requires_grad_()
        cams = (viewmats.to(dev), Ks.to(dev))
        (colors, alphas, max_w), (offsets, ids) = render(family, q, f, b, *cams, W, H, tile_size)
        ((colors * cot_c.to(dev)).sum() + (alphas * cot_a.to(dev)).sum()).backward()
        images[dev] = [t.detach().cpu() for t in (colors, alphas, max_w)]
        grads[dev] = [t.grad.cpu() for t in [*(q[k] for k in RASTER_GRADS[family]), f, b]]
        if dev == "cpu":  # lists span several batches; opaque pixels stop their walk early
            counts = torch.diff(offsets.flatten().long(), append=torch.tensor([ids.numel()]))
            assert counts.max() > 2 * min(tile_size**2, 256), counts.max()
            assert (alphas > 0.99).float().mean() > 0.1
    for a, b in zip(images["cpu"], images[device]):
        torch.testing.assert_close(b, a, atol=1e-4, rtol=1e-3)
    for a, b in zip(grads["cpu"], grads[device]):
        assert rel_err(a, b) < 2e-3


@pytest.mark.cuda
@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("tile_size", [8, 16, 32])
def test_cuda_rasterization_matches_cpu(family, tile_size):
    compare_devices(family, tile_size, "cuda")


@pytest.mark.cuda
@pytest.mark.parametrize("family", FAMILIES)
def test_cuda_projection_matches_cpu(family):
    V, N, W, H = 3, 2000, 64, 48
    fid, names, n_grad = FAMILIES[family]
    p, (viewmats, Ks) = scene(family, N), cameras(V, W, H)
    ext, results, radii = kernels.library(), {}, None
    for dev in ("cpu", "cuda"):
        cams = (viewmats.to(dev), Ks.to(dev))
        outs = ext.project_fwd(fid, [p[k].to(dev) for k in names], *cams, W, H, 0.01, 1e10, 0.3)
        radii = outs[-1].cpu() if radii is None else radii  # the CPU culling for both backwards
        torch.manual_seed(0)
        cots = [torch.randn(o.shape).to(dev) for o in outs[:3]]
        grads = ext.project_bwd(fid, [p[k].to(dev) for k in names[:n_grad]], *cams, W, H, 0.3, radii.to(dev), *cots)
        results[dev] = [t.cpu() for t in outs], [g.cpu() for g in grads]
    (outs_cpu, grads_cpu), (outs_cuda, grads_cuda) = results["cpu"], results["cuda"]
    both = outs_cpu[-1].gt(0).all(-1) & outs_cuda[-1].gt(0).all(-1)  # [V, N]
    assert both.float().mean() > 0.4 and (outs_cpu[-1] == outs_cuda[-1]).float().mean() > 0.999
    for a, b in zip(outs_cpu[:-1], outs_cuda[:-1]):
        if a.dtype == torch.int32:  # convex hulls
            assert torch.equal(a[both], b[both])
        else:
            torch.testing.assert_close(b[both], a[both], atol=1e-3, rtol=1e-5)
    for a, b in zip(grads_cpu, grads_cuda):
        assert rel_err(a, b) < 1e-4
