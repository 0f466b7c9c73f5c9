"""Optimizer-state surgery keeps Adam moments aligned with their rows."""

from __future__ import annotations

import torch

from recon.strategy import ops


def _setup(n: int = 6):
    params = {"a": torch.nn.Parameter(torch.randn(n, 3)), "b": torch.nn.Parameter(torch.randn(n))}
    opts = {k: torch.optim.Adam([p], lr=0.1) for k, p in params.items()}
    loss = (params["a"] ** 2).sum() + (params["b"] ** 3).sum()
    loss.backward()
    for o in opts.values():
        o.step()
        o.zero_grad()
    return params, opts


def _moments(params, opts, name):
    st = opts[name].state[params[name]]
    return st["exp_avg"].clone(), st["exp_avg_sq"].clone()


def test_remove_keeps_moments_of_kept_rows():
    params, opts = _setup()
    old_a, old_m = params["a"].detach().clone(), _moments(params, opts, "a")
    state = {"grad2d": torch.arange(6.0), "scalar": 3}
    mask = torch.tensor([True, False, False, True, False, True])
    ops.remove(params, opts, state, mask)
    keep = ~mask
    torch.testing.assert_close(params["a"].detach(), old_a[keep])
    new_m = _moments(params, opts, "a")
    torch.testing.assert_close(new_m[0], old_m[0][keep])
    torch.testing.assert_close(new_m[1], old_m[1][keep])
    torch.testing.assert_close(state["grad2d"], torch.tensor([1.0, 2.0, 4.0]))
    assert state["scalar"] == 3
    assert opts["a"].param_groups[0]["params"][0] is params["a"]


def test_duplicate_and_append_zero_new_moments():
    params, opts = _setup()
    old_m = _moments(params, opts, "b")
    mask = torch.tensor([False, True, False, False, True, False])
    ops.duplicate(params, opts, {}, mask)
    assert params["b"].shape == (8,)
    m = _moments(params, opts, "b")
    torch.testing.assert_close(m[0][:6], old_m[0])
    assert bool((m[0][6:] == 0).all()) and bool((m[1][6:] == 0).all())
    torch.testing.assert_close(params["b"][6:].detach(), params["b"][[1, 4]].detach())
    # the optimizer still steps the new parameter
    params["b"].sum().backward()
    opts["b"].step()
    assert opts["b"].state[params["b"]]["exp_avg"].shape == (8,)


def test_set_rows_and_reset_opacity():
    params, opts = _setup()
    idx = torch.tensor([0, 2])
    ops.set_rows(params, opts, {"b": torch.tensor([5.0, 6.0])}, idx)
    assert params["b"][0].item() == 5.0 and params["b"][2].item() == 6.0
    m = _moments(params, opts, "a")
    assert bool((m[0][idx] == 0).all()) and bool((m[0][1] != 0).any())
    params["opacities"] = torch.nn.Parameter(torch.full((6,), 3.0))
    opts["opacities"] = torch.optim.Adam([params["opacities"]], lr=0.1)
    ops.reset_opacity(params, opts, 0.01)
    torch.testing.assert_close(torch.sigmoid(params["opacities"]).detach(), torch.full((6,), 0.01))
