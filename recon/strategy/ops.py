"""Parameter and optimizer-state surgery shared by every strategy (free functions, gsplat style).

``params`` is a dict of ``torch.nn.Parameter`` sharing the leading N; ``optimizers`` holds one
Adam per parameter (same keys). Every function replaces the parameters and keeps the Adam moments
aligned row for row: kept rows keep their moments, new rows start at zero. ``state`` tensors whose
leading size is N (per-primitive statistics) follow the same rows.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

Params = dict[str, torch.nn.Parameter]
Optimizers = dict[str, torch.optim.Optimizer]


def num_primitives(params: Params) -> int:
    return int(next(iter(params.values())).shape[0])


def device_of(params: Params) -> torch.device:
    """The parameters' device: strategy state and random draws are created there (as in gsplat)."""
    return next(iter(params.values())).device


@torch.no_grad()
def update_params_and_optimizers(
    param_fn: Callable[[str, Tensor], Tensor],
    optimizer_fn: Callable[[str, Tensor], Tensor],
    params: Params,
    optimizers: Optimizers,
    names: list[str] | None = None,
) -> None:
    """Replaces ``params[name]`` by ``param_fn(name, p)`` and each Adam moment ``m`` by
    ``optimizer_fn(key, m)`` (keys ``exp_avg``/``exp_avg_sq``), re-registering the new parameter."""
    for name in names or list(params):
        old = params[name]
        new = torch.nn.Parameter(param_fn(name, old), requires_grad=old.requires_grad)
        opt = optimizers.get(name)
        if opt is not None:
            group = opt.param_groups[0]
            st = opt.state.pop(old, None)
            if st is not None:
                for key in list(st):
                    if key != "step":
                        st[key] = optimizer_fn(key, st[key])
                opt.state[new] = st
            group["params"] = [new]
        params[name] = new


def _update_state(state: dict[str, Any], n_old: int, fn: Callable[[Tensor], Tensor]) -> None:
    for key, value in state.items():
        if isinstance(value, Tensor) and value.dim() > 0 and value.shape[0] == n_old:
            state[key] = fn(value)


@torch.no_grad()
def remove(params: Params, optimizers: Optimizers, state: dict[str, Any], mask: Tensor) -> None:
    """Deletes the rows where ``mask`` [N] is True."""
    n = num_primitives(params)
    keep = ~mask
    update_params_and_optimizers(lambda _, p: p[keep], lambda _, m: m[keep], params, optimizers)
    _update_state(state, n, lambda v: v[keep])


@torch.no_grad()
def append(params: Params, optimizers: Optimizers, state: dict[str, Any], new: dict[str, Tensor]) -> None:
    """Appends rows ``new[name]`` [M, ...] to every parameter (moments and statistics start at 0)."""
    n = num_primitives(params)
    m = int(next(iter(new.values())).shape[0])
    if m == 0:
        return
    update_params_and_optimizers(
        lambda k, p: torch.cat([p, new[k].to(p.dtype)]),
        lambda _, s: torch.cat([s, s.new_zeros((m,) + s.shape[1:])]),
        params,
        optimizers,
    )
    _update_state(state, n, lambda v: torch.cat([v, v.new_zeros((m,) + v.shape[1:])]))


@torch.no_grad()
def duplicate(params: Params, optimizers: Optimizers, state: dict[str, Any], mask: Tensor) -> None:
    """Appends a copy of the rows where ``mask`` [N] is True."""
    append(params, optimizers, state, {k: v[mask] for k, v in params.items()})


@torch.no_grad()
def set_rows(
    params: Params, optimizers: Optimizers, values: dict[str, Tensor], idx: Tensor, zero_moments: bool = True
) -> None:
    """Writes ``values[name]`` [M, ...] into rows ``idx`` [M] and zeroes their Adam moments."""

    def param_fn(name: str, p: Tensor) -> Tensor:
        p = p.detach().clone()
        if name in values:
            p[idx] = values[name].to(p.dtype)
        return p

    def opt_fn(_: str, m: Tensor) -> Tensor:
        if zero_moments:
            m = m.clone()
            m[idx] = 0
        return m

    update_params_and_optimizers(param_fn, opt_fn, params, optimizers)


@torch.no_grad()
def reset_opacity(params: Params, optimizers: Optimizers, value: float, name: str = "opacities") -> None:
    """Clamps opacities (sigmoid space) to at most ``value`` and zeroes their moments."""
    logit = math.log(value / (1.0 - value))
    update_params_and_optimizers(
        lambda _, p: p.clamp(max=logit), lambda _, m: torch.zeros_like(m), params, optimizers, names=[name]
    )
