"""Value checks (finite, ranges) read values back: on the CPU by default, elsewhere only when asked.

A GPU is stood in for by the "meta" device: its tensors have shapes, dtypes and a device but no
values, so any value check made on them raises instead of silently syncing.
"""

from __future__ import annotations

import pytest
import torch

from recon.ops import RasterInputError, rasterize_convexes, rasterize_gaussians, rasterize_triangles
from recon.ops import rasterize as rasterize_module
from recon.ops.validate import InputChecker, value_checks_enabled

from .scenes import cameras, random_gaussians

W, H = 16, 12


class _Validated(Exception):
    """Raised in place of the backend: validation finished."""


def _calls(device: str) -> dict:
    """Valid arguments of the three ops, with out-of-range / non-finite values to catch."""
    means, quats, scales, opac = random_gaussians(5, dtype=torch.float32)
    viewmats, Ks = cameras(2, W, H, dtype=torch.float32)
    quats[0] = 0.0  # zero quaternion
    opac[1] = float("nan")
    common = dict(viewmats=viewmats, Ks=Ks, colors=torch.rand(5, 3), opacities=opac)
    calls = {
        rasterize_gaussians: dict(means=means, quats=quats, scales=scales, **common),
        rasterize_triangles: dict(vertices=torch.rand(5, 3, 3), sigma=-torch.ones(5), **common),
        rasterize_convexes: dict(points=torch.rand(5, 6, 3), delta=torch.ones(5), sigma=torch.zeros(5), **common),
    }
    return {op: {k: v.to(device) for k, v in kw.items()} for op, kw in calls.items()}


@pytest.mark.parametrize("flag", [None, "auto"])
def test_default_checks_values_on_the_cpu_only(monkeypatch, flag):
    monkeypatch.delenv("RECON_CHECK_VALUES", raising=False)
    if flag is not None:
        monkeypatch.setenv("RECON_CHECK_VALUES", flag)
    assert value_checks_enabled(torch.device("cpu"))
    assert not value_checks_enabled(torch.device("cuda"))
    assert not value_checks_enabled(torch.device("meta"))
    for op, kw in _calls("cpu").items():
        with pytest.raises(RasterInputError, match="opacities contains NaN|zero quaternion"):
            op(**kw, width=W, height=H, backend="reference")


@pytest.mark.parametrize("op", [rasterize_gaussians, rasterize_triangles, rasterize_convexes])
def test_no_value_is_read_off_the_cpu_by_default(monkeypatch, op):
    monkeypatch.delenv("RECON_CHECK_VALUES", raising=False)
    monkeypatch.setattr(rasterize_module, "resolve_backend", lambda *a: (_ for _ in ()).throw(_Validated()))
    kw = _calls("meta")[op]
    with pytest.raises(_Validated):  # shapes, dtypes and devices checked; no value read back
        op(**kw, width=W, height=H, backend="reference")
    monkeypatch.setenv("RECON_CHECK_VALUES", "1")  # debugging: values are read, which meta cannot do
    with pytest.raises((RuntimeError, NotImplementedError)) as err:
        op(**kw, width=W, height=H, backend="reference")
    assert not isinstance(err.value, _Validated)


def test_shapes_and_devices_are_still_checked_without_value_checks(monkeypatch):
    monkeypatch.setenv("RECON_CHECK_VALUES", "0")
    chk = InputChecker("op")
    assert chk.tensor("a", torch.full((3,), float("nan")), ("N",), min_value=0.0) is not None  # values unchecked
    with pytest.raises(RasterInputError, match=r"b must have shape \[N\] with N=3"):
        chk.tensor("b", torch.zeros(4), ("N",))
    with pytest.raises(RasterInputError, match="c is on meta but the other inputs are on cpu"):
        chk.tensor("c", torch.zeros(3, device="meta"), ("N",))
