"""The primitive family table: every family renders through ``render()`` exactly as its public op
called with hand-activated parameters (the per-family branches the table replaced)."""

from __future__ import annotations

import math

import pytest
import torch

from recon.cameras import Cameras
from recon.ops import rasterize_convexes, rasterize_gaussians, rasterize_triangles
from recon.ops.rasterize import rasterize
from recon.primitives import FAMILIES, family
from recon.render.render import render
from tests.ops.scenes import cameras

W, H = 40, 32


def _by_hand(name: str, raw: dict[str, torch.Tensor], viewmats, Ks, colors):
    """The op each family used to be branched to, with its activations written out."""
    opac = torch.sigmoid(raw["opacities"])
    common = {"sh_degree": 1, "backend": "reference"}
    if name in ("gaussian", "ges"):
        quats = raw["quats"] / raw["quats"].norm(dim=-1, keepdim=True)
        if name == "ges":  # beta = 2 exp(ln4 tanh(raw / ln4))
            beta = 2 * torch.exp(math.log(4) * torch.tanh(raw["shape"] / math.log(4)))
            inputs = {"means": raw["means"], "quats": quats, "scales": raw["scales"].exp(), "opacities": opac}
            return rasterize("ges", {**inputs, "shape": beta}, colors, viewmats, Ks, W, H, **common)
        return rasterize_gaussians(raw["means"], quats, raw["scales"].exp(), opac, colors, viewmats, Ks, W, H, **common)
    if name == "triangle":
        sigma = 0.01 + raw["sigma"].exp()
        return rasterize_triangles(raw["vertices"], colors, opac, sigma, viewmats, Ks, W, H, **common)
    delta, sigma = raw["delta"].exp(), raw["sigma"].exp()
    return rasterize_convexes(raw["points"], colors, opac, delta, sigma, viewmats, Ks, W, H, **common)


def test_table_entries_agree_with_their_modules():
    for name, fam in FAMILIES.items():
        assert fam.name == fam.spec.name == fam.raster.name == name
        assert {i.name for i in fam.raster.inputs} <= set(fam.spec.param_names)
        assert fam.spec.activations[fam.position] == "identity"  # positions are world coordinates
        assert fam.strategies
    with pytest.raises(ValueError, match="unknown primitive 'splat'"):
        family("splat")


@pytest.mark.parametrize("name", list(FAMILIES))
def test_render_through_the_table_equals_the_hand_activated_op(name):
    torch.manual_seed(0)
    viewmats, Ks = cameras(2, W, H, dtype=torch.float32)
    fam = family(name)
    pts, cols = torch.rand(30, 3) - 0.5, torch.rand(30, 3)
    raw = fam.init_from_points(pts, cols, sh_degree=1)
    raw["opacities"] = raw["opacities"] + 2.0  # well visible
    if "shape" in raw:
        assert (fam.spec.activate_one("shape", raw["shape"]) == 2.0).all()  # starts as the Gaussian
        raw["shape"] = torch.randn(30)
    out = render(name, raw, Cameras.create(Ks, viewmats, W, H), sh_degree=1, backend="reference")
    colors = torch.cat([raw["sh0"], raw["shN"]], 1)
    expected = _by_hand(name, raw, viewmats, Ks, colors)
    assert out.alpha.amax() > 0.5
    torch.testing.assert_close(out.rgb, expected.colors, rtol=0, atol=1e-6)
    torch.testing.assert_close(out.depth, expected.depths, rtol=0, atol=1e-6)
    torch.testing.assert_close(fam.centers(raw), fam.raster.centers(raw))
