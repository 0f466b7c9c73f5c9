"""The compiled kernels as ``torch.library`` ops (cuda/src/bindings.cpp, recon/ops/kernels.py).

``torch.library.opcheck`` on every op and family (schema, fake implementation against the real
kernel's outputs, autograd registration, and AOT dispatch with dynamic shapes, which compares
gradients through the traced op with eager ones), gradients through the ops against the
pure-PyTorch reference twin, and ``torch.compile`` of a render function against eager.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from recon.ops.family import FAMILIES
from recon.ops.rasterize import rasterize
from tests.ops.test_family import _inputs
from tests.ops.test_kernels_gaussians import cameras, rel_err

kernels = pytest.importorskip("recon.ops.kernels")
_ok, _why = kernels.available("cpu")
pytestmark = pytest.mark.skipif(not _ok, reason=f"CPU kernels unavailable: {_why}")

REPO = Path(__file__).resolve().parents[2]
COMPILED = [name for name, fam in FAMILIES.items() if fam.kernel_id is not None]
W, H, TILE = 24, 16, 8  # 3 x 2 tiles


def _op_args(name: str, n: int = 10, views: int = 2, with_bg: bool = True) -> dict[str, tuple]:
    """Arguments of each ``torch.ops.recon`` op for a small scene of family ``name``, differentiable
    inputs requiring grad; the backward ops get the forward ops' saved outputs and random cotangents."""
    torch.manual_seed(n)
    fam, p = FAMILIES[name], _inputs(name, n)
    viewmats, Ks = cameras(views, W, H)
    inputs = [p[k] for k in fam.project_inputs]
    eps2d = float(fam.options.get("eps2d", 0.0))
    lib = kernels.library()
    m2, d, *geometry, radii = lib.project_fwd(fam.kernel_id, inputs, viewmats, Ks, W, H, 0.01, 1e10, eps2d)
    assert radii.gt(0).any()  # something is on screen
    offsets, ids = lib.isect_tiles(m2, radii, d, W, H, TILE)
    wparams, hull = fam.pack_window(*fam.window(m2, d, tuple(geometry), p))
    feats, opac = torch.rand(views, n, 4), p["opacities"]
    bg = torch.rand(views, 4) if with_bg else None
    raster = (fam.kernel_id, wparams, hull, feats, opac, bg, W, H, TILE, offsets, ids)
    colors, alphas, trans, last_ids, _ = lib.rasterize_fwd(*raster)
    grad_inputs = [x.clone().requires_grad_() for x in inputs[: fam.num_grad_inputs]]
    cotangents = [torch.randn_like(t) for t in (m2, d, geometry[0])]
    return {
        "project_fwd": (fam.kernel_id, grad_inputs + inputs[fam.num_grad_inputs :], viewmats, Ks, W, H, 0.01, 1e10,
                        eps2d),
        "project_bwd": (fam.kernel_id, inputs[: fam.num_grad_inputs], viewmats, Ks, W, H, eps2d, radii, *cotangents),
        "isect_tiles": (m2, radii, d, W, H, TILE),
        "rasterize_fwd": tuple(t.clone().requires_grad_() if i in (1, 3, 4, 5) and t is not None else t
                               for i, t in enumerate(raster)),
        "rasterize_bwd": (*raster, trans, last_ids, torch.randn_like(colors), torch.randn_like(alphas)),
    }  # fmt: skip


@pytest.mark.parametrize("name", COMPILED)
@pytest.mark.parametrize("op", ["project_fwd", "project_bwd", "isect_tiles", "rasterize_fwd", "rasterize_bwd"])
def test_opcheck(name, op):
    args = _op_args(name)[op]
    torch.library.opcheck(getattr(torch.ops.recon, op).default, args)


def test_opcheck_without_backgrounds_and_with_empty_tile_lists():
    args = _op_args("gaussian", with_bg=False)
    torch.library.opcheck(torch.ops.recon.rasterize_fwd.default, args["rasterize_fwd"])
    far = _op_args("triangle")["isect_tiles"]
    radii = torch.zeros_like(far[1])  # everything culled: no intersections
    offsets, ids = torch.ops.recon.isect_tiles(far[0], radii, *far[2:])
    assert ids.numel() == 0 and offsets.eq(0).all()
    torch.library.opcheck(torch.ops.recon.isect_tiles.default, (far[0], radii, *far[2:]))


def test_fake_tensors_follow_the_family_table():
    """Fake projection outputs take their layout from the C++ Projector (hull only for convexes)."""
    from torch._subclasses.fake_tensor import FakeTensorMode

    for name in COMPILED:
        fam, args = FAMILIES[name], _op_args(name)["project_fwd"]
        real = torch.ops.recon.project_fwd(*args)
        with FakeTensorMode() as mode:
            fake_args = [mode.from_tensor(a) if isinstance(a, torch.Tensor) else a for a in args]
            fake_args[1] = [mode.from_tensor(x) for x in args[1]]
            fake = torch.ops.recon.project_fwd(*fake_args)
        assert [(f.shape, f.dtype) for f in fake] == [(r.shape, r.dtype) for r in real], name
        assert len(real) == (5 if fam.name == "convex" else 4)


@pytest.mark.parametrize("name", COMPILED)
def test_gradients_through_the_ops_match_the_reference(name):
    """The public op on the compiled backend (the registered ops and their autograd) against the
    reference twin: image, and gradients of every input and of the 2D translation handle."""
    torch.manual_seed(3)
    p, colors = _inputs(name, 30), torch.rand(30, 3)
    viewmats, Ks = cameras(2, W, H)
    bg = torch.rand(2, 3)
    results = {}
    for backend in ("cpu", "reference"):
        x = {k: v.clone().requires_grad_() for k, v in p.items()}
        c = colors.clone().requires_grad_()
        out = rasterize(name, x, c, viewmats, Ks, W, H, backgrounds=bg, backend=backend)
        torch.manual_seed(4)
        loss = sum((o * torch.randn_like(o)).sum() for o in (out.colors, out.alphas, out.depths))
        loss.backward()
        results[backend] = [out.colors, out.alphas, out.depths, c.grad, out.means2d.grad] + [x[k].grad for k in p]
    assert results["cpu"][0].abs().sum() > 0
    for got, want in zip(results["cpu"], results["reference"]):
        assert got is not None and want is not None
        # the reference's gradient of the collinear (culled) convex 0 is NaN, the kernels' is 0
        want = torch.where(want.isfinite(), want, 0.0)
        assert rel_err(want.detach(), got.detach()) < 2e-3


def _render_fn(name: str):
    def render(p: dict[str, torch.Tensor], colors: torch.Tensor, viewmats: torch.Tensor, Ks: torch.Tensor):
        return rasterize(name, p, colors, viewmats, Ks, W, H, backend="cpu")

    return render


@pytest.mark.parametrize("name", ["gaussian", "convex"])  # both graph-break kinds; opcheck covers the others' AOT
def test_torch_compile_matches_eager(name):
    """``torch.compile`` (aot_eager: the ops traced with their fake implementations and autograd
    formulas into forward and backward graphs) renders and differentiates as eager, the 2D
    footprint gradient of densification (``means2d.grad``) included."""
    torch._dynamo.reset()
    torch.manual_seed(5)
    p, colors = _inputs(name, 30), torch.rand(30, 3)
    viewmats, Ks = cameras(2, W, H)
    # graph breaks: means2d.retain_grad() (Gaussians) or the leaf translation handle (triangles, convexes)
    compiled = torch.compile(_render_fn(name), backend="aot_eager")
    results = []
    for fn in (_render_fn(name), compiled):
        x = {k: v.clone().requires_grad_() for k, v in p.items()}
        c = colors.clone().requires_grad_()
        out = fn(x, c, viewmats, Ks)
        torch.manual_seed(6)
        sum((o * torch.randn_like(o)).sum() for o in (out.colors, out.alphas, out.depths)).backward()
        results.append([out.colors, out.alphas, out.depths, out.means2d.grad, c.grad] + [x[k].grad for k in p])
    assert results[0][0].abs().sum() > 0
    for want, got in zip(*results):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", COMPILED)
def test_torch_compile_renders_without_grad_in_one_graph(name):
    """A viewer's ``render_fn`` under ``no_grad`` compiles to a single graph (``fullgraph``), the
    data-dependent intersection count included, and renders as eager."""
    torch._dynamo.reset()
    torch.manual_seed(7)
    p, colors = _inputs(name, 30), torch.rand(30, 3)
    viewmats, Ks = cameras(2, W, H)
    compiled = torch.compile(_render_fn(name), backend="aot_eager", fullgraph=True)
    with torch.no_grad():
        want, got = _render_fn(name)(p, colors, viewmats, Ks), compiled(p, colors, viewmats, Ks)
    for field in ("colors", "alphas", "depths", "radii"):
        torch.testing.assert_close(getattr(got, field), getattr(want, field), rtol=1e-5, atol=1e-6)


_FRESH_PROCESS = """
import torch
from recon.ops import _extension
from recon.ops.rasterize import rasterize

torch.manual_seed(0)
p = {"means": torch.randn(20, 3) * 0.3, "quats": torch.randn(20, 4), "scales": torch.rand(20, 3) * 0.1 + 0.05,
     "opacities": torch.rand(20) * 0.8 + 0.1}
viewmats, Ks = torch.eye(4)[None].clone(), torch.tensor([[[20.0, 0, 12], [0, 20.0, 8], [0, 0, 1]]])
viewmats[0, 2, 3] = 3.0
assert _extension._module is None
def render(p):
    return rasterize("gaussian", p, torch.ones(20, 3), viewmats, Ks, 24, 16, backend="cpu").colors
grads = []
for fn in (torch.compile(render, backend="aot_eager"), render):
    x = {k: v.clone().requires_grad_() for k, v in p.items()}
    fn(x).sum().backward()
    grads.append(x["means"].grad)
assert grads[0].abs().sum() > 0 and torch.allclose(grads[0], grads[1], rtol=1e-5, atol=1e-6)
"""


def test_compile_before_any_eager_call_in_a_fresh_process():
    """The first call is compiled: the extension loads during the trace, and its fake and autograd
    halves are registered on load (``set_python_module`` names their module), not on an eager call."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    proc = subprocess.run(
        [sys.executable, "-c", _FRESH_PROCESS], check=False, capture_output=True, text=True, env=env, timeout=600
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
