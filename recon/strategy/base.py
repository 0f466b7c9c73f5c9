"""The hook signature every strategy shares, so the trainer never branches on the strategy.

Per training step the trainer calls::

    strategy.step_pre_backward(params, optimizers, state, step, info)
    loss.backward()
    strategy.step_post_backward(params, optimizers, state, step, info)
    for opt in optimizers.values(): opt.step(); opt.zero_grad()

``info`` holds the render's ``means2d`` [V, N, 2] (with ``.grad`` after backward), ``radii``
[V, N, 2], ``max_weights`` [V, N], ``width``, ``height``, ``n_cameras`` and ``lrs`` (current
learning rate per parameter). ``state`` is a dict of tensors (per-primitive statistics) and plain
scalars; the checkpoint stores it as is.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Protocol, TypeVar

from recon.strategy.ops import Optimizers, Params

S = TypeVar("S")


class Strategy(Protocol):
    """Densify / prune / relocate hooks (hyper-parameters are the dataclass fields)."""

    def initialize_state(self, params: Params) -> dict[str, Any]: ...

    def step_pre_backward(
        self, params: Params, optimizers: Optimizers, state: dict[str, Any], step: int, info: dict[str, Any]
    ) -> None: ...

    def step_post_backward(
        self, params: Params, optimizers: Optimizers, state: dict[str, Any], step: int, info: dict[str, Any]
    ) -> None: ...


class NoStrategy:
    """Keeps the primitives fixed in number."""

    def initialize_state(self, params: Params) -> dict[str, Any]:
        return {}

    def step_pre_backward(self, params, optimizers, state, step, info) -> None:
        pass

    def step_post_backward(self, params, optimizers, state, step, info) -> None:
        pass


def visible(info: dict[str, Any]) -> Any:
    """[V, N] bool: primitive projected into the view (radii > 0)."""
    return (info["radii"] > 0).any(-1)


def from_config(cls: type[S], config: Any, **values: Any) -> S:
    """A strategy whose hyper-parameters come from ``config`` (a ``StrategyConfig``) by name.

    Every field of ``cls`` named like a field of ``config`` takes its value (a class may rename one
    in its ``CONFIG_NAMES``: field -> config name); unset (None) options keep the strategy's own
    default; ``values`` (run-time values such as ``scene_scale``) are set where ``cls`` has them.
    So an option of the config reaches every strategy that has it, with nothing copied by hand.
    """
    if not dataclasses.is_dataclass(cls):
        return cls()
    renames = getattr(cls, "CONFIG_NAMES", {})
    kwargs = {}
    for f in dataclasses.fields(cls):
        value = values.get(f.name, getattr(config, renames.get(f.name, f.name), None))
        if value is not None:
            kwargs[f.name] = value
    return cls(**kwargs)
