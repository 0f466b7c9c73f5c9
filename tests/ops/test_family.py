"""The family table of the engine (recon/ops/family.py): one pipeline and one projection Function
for every family, checked against the reference twin and the compiled extension's bindings."""

from __future__ import annotations

import pytest
import torch

from recon.ops import RasterInputError, reference
from recon.ops.family import FAMILIES
from recon.ops.rasterize import rasterize, rasterize_convexes, rasterize_gaussians, rasterize_triangles
from tests.ops.test_kernels_gaussians import cameras, gaussians
from tests.ops.test_kernels_triangles_convexes import convexes, triangles

W, H = 48, 32


def _inputs(name: str, n: int) -> dict[str, torch.Tensor]:
    if name in ("gaussian", "ges"):
        p = gaussians(n)
        return p if name == "gaussian" else {**p, "shape": 0.5 + 3 * torch.rand(n)}
    return triangles(n) if name == "triangle" else convexes(n)


def test_table_matches_the_public_ops_and_the_reference_signatures():
    assert set(FAMILIES) == {"gaussian", "triangle", "convex", "ges"}
    compiled = [f.kernel_id for f in FAMILIES.values() if f.kernel_id is not None]
    assert len(set(compiled)) == len(compiled)
    for fam in FAMILIES.values():
        names = [i.name for i in fam.inputs]
        assert "opacities" in names and fam.position in names
        assert set(fam.project_inputs) <= set(names)
        assert fam.reference_project is getattr(reference, f"project_{fam.plural}")
        assert fam.reference_to_pixels is getattr(reference, f"rasterize_{fam.plural}_to_pixels")


@pytest.mark.parametrize("name", ["gaussian", "triangle", "convex"])
def test_generic_pipeline_equals_the_named_op(name):
    torch.manual_seed(0)
    viewmats, Ks = cameras(2, W, H)
    p = _inputs(name, 40)
    colors = torch.rand(40, 3)
    common = {"backend": "reference", "backgrounds": torch.rand(2, 3)}
    named = {
        "gaussian": lambda: rasterize_gaussians(p["means"], p["quats"], p["scales"], p["opacities"], colors, viewmats,
                                                Ks, W, H, **common),
        "triangle": lambda: rasterize_triangles(p["vertices"], colors, p["opacities"], p["sigma"], viewmats, Ks, W, H,
                                                **common),
        "convex": lambda: rasterize_convexes(p["points"], colors, p["opacities"], p["delta"], p["sigma"], viewmats,
                                             Ks, W, H, **common),
    }[name]()  # fmt: skip
    generic = rasterize(name, p, colors, viewmats, Ks, W, H, **common)
    assert named.colors.abs().sum() > 0  # something is on screen
    for a, b in zip((named.colors, named.alphas, named.depths, named.radii), (generic.colors, generic.alphas,
                                                                              generic.depths, generic.radii)):  # fmt: skip
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_bad_family_and_option_are_input_errors():
    viewmats, Ks = cameras(1, W, H)
    p = triangles(4)
    with pytest.raises(RasterInputError, match="unknown primitive family 'splat'"):
        rasterize("splat", p, torch.rand(4, 3), viewmats, Ks, W, H)
    with pytest.raises(RasterInputError, match=r"rasterize_triangles: unknown option\(s\) \['eps2d'\]"):
        rasterize("triangle", p, torch.rand(4, 3), viewmats, Ks, W, H, eps2d=0.3)


kernels = pytest.importorskip("recon.ops.kernels")
_ok, _why = kernels.available("cpu")


@pytest.mark.skipif(not _ok, reason=f"CPU kernels unavailable: {_why}")
def test_every_family_has_its_projection_kernels():
    """Each record with a kernel id is a family of the C++ table (families.h) with the same inputs."""
    ext = kernels.load_extension()
    for fam in (f for f in FAMILIES.values() if f.kernel_id is not None):
        num_inputs, num_grad, _, _ = ext.project_layout(fam.kernel_id, 6 if fam.name == "convex" else 0)
        assert (num_inputs, num_grad) == (len(fam.project_inputs), fam.num_grad_inputs)
    with pytest.raises(RuntimeError, match="unknown primitive family id 9"):
        ext.project_layout(9, 0)


@pytest.mark.skipif(not _ok, reason=f"CPU kernels unavailable: {_why}")
@pytest.mark.parametrize("name", [n for n, f in FAMILIES.items() if f.kernel_id is not None])
@pytest.mark.parametrize("used", [(1,), (0, 2)])
def test_projection_function_routes_partial_gradients_like_the_reference(name, used):
    """One autograd Function for all families: unused outputs get zero cotangents, and only the
    family's differentiable inputs receive gradients, as autograd gives through the reference."""
    torch.manual_seed(1)
    fam = FAMILIES[name]
    viewmats, Ks = cameras(2, W, H)
    p = _inputs(name, 50)
    grads = []
    for module in (reference, kernels):
        xs = [p[k].clone().requires_grad_() for k in fam.project_inputs]
        outs = module.project(fam, xs, viewmats, Ks, W, H, 0.01, 1e10, *fam.options.values())
        visible = (outs[-1] > 0).any(-1)  # [V, N]
        loss = sum((outs[i] * visible.reshape(visible.shape + (1,) * (outs[i].dim() - 2))).square().sum() for i in used)
        loss.backward()
        grads.append([x.grad for x in xs])
    assert grads[0][0].abs().sum() > 0  # the position always moves the outputs
    for i, (g_ref, g_ker) in enumerate(zip(*grads)):
        if i < fam.num_grad_inputs:  # (depths alone do not depend on quats or scales: None)
            zero = torch.zeros_like(p[fam.project_inputs[i]])
            torch.testing.assert_close(g_ker if g_ker is not None else zero, g_ref if g_ref is not None else zero,
                                       rtol=1e-3, atol=1e-3)  # fmt: skip
        else:  # e.g. a convex's opacity only sizes its box: no gradient in either backend
            assert g_ref is None and (g_ker is None or not g_ker.any())
