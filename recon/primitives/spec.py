"""A primitive family is plain data: a dict of raw tensors sharing the leading N + a frozen spec.

The spec names, for every raw parameter, the activation that turns it into the value the
rasterizer takes (``exp`` for log-scales, ``sigmoid`` for opacity logits...). Nothing here owns an
optimizer, densification or file I/O.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import torch
from torch import Tensor

from recon.geometry import normalize_quats

_LN4 = math.log(4.0)


def _log_bounded(x: Tensor) -> Tensor:
    """``2 exp(ln4 tanh(x / ln4))``: in (0.5, 8), exactly 2 at 0, like ``2 exp(x)`` near 0 (GES' beta)."""
    return 2.0 * torch.exp(_LN4 * torch.tanh(x / _LN4))


def _log_bounded_inverse(y: Tensor) -> Tensor:
    return _LN4 * torch.atanh((torch.log(y / 2.0) / _LN4).clamp(-1 + 1e-6, 1 - 1e-6))


ACTIVATIONS: dict[str, Callable[[Tensor], Tensor]] = {
    "identity": lambda x: x,
    "exp": torch.exp,
    "sigmoid": torch.sigmoid,
    "normalize": normalize_quats,
    "exp_plus_0.01": lambda x: 0.01 + torch.exp(x),
    "2exp_bounded": _log_bounded,
}
INVERSES: dict[str, Callable[[Tensor], Tensor]] = {
    "identity": lambda y: y,
    "exp": torch.log,
    "sigmoid": torch.logit,
    "normalize": lambda y: y,
    "exp_plus_0.01": lambda y: torch.log((y - 0.01).clamp_min(1e-8)),
    "2exp_bounded": _log_bounded_inverse,
}


@dataclass(frozen=True)
class PrimitiveSpec:
    """Activations of one primitive family.

    Attributes:
        name: ``"gaussian"``, ``"triangle"``, ``"convex"`` or ``"ges"``.
        activations: raw parameter name -> activation name (keys of :data:`ACTIVATIONS`).
            SH coefficients (``sh0``, ``shN``) are listed as ``identity``.
    """

    name: str
    activations: Mapping[str, str]

    @property
    def param_names(self) -> tuple[str, ...]:
        return tuple(self.activations)

    def activate(self, params: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """Activated values of every parameter (same keys)."""
        missing = set(self.activations) - set(params)
        if missing:
            raise KeyError(f"{self.name} parameters miss {sorted(missing)}")
        return {k: ACTIVATIONS[a](params[k]) for k, a in self.activations.items()}

    def activate_one(self, name: str, raw: Tensor) -> Tensor:
        """Activated value of one raw parameter (any rows of ``params[name]``)."""
        return ACTIVATIONS[self.activations[name]](raw)

    def inverse(self, name: str, value: Tensor) -> Tensor:
        """Raw parameter whose activation is ``value``."""
        return INVERSES[self.activations[name]](value)

    def check(self, params: Mapping[str, Tensor]) -> int:
        """Validates keys and the shared leading dimension; returns N."""
        if set(params) != set(self.activations):
            raise ValueError(f"{self.name} parameters must be {sorted(self.activations)}, got {sorted(params)}")
        sizes = {k: int(v.shape[0]) for k, v in params.items()}
        if len(set(sizes.values())) != 1:
            raise ValueError(f"{self.name} parameters disagree on N: {sizes}")
        return next(iter(sizes.values()))


def opacity_term(weight: float, spec: PrimitiveSpec, params: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """``{"opacity_reg": weight x mean activated opacity}`` (a loss term), or ``{}`` when ``weight`` is 0."""
    if weight <= 0:
        return {}
    return {"opacity_reg": weight * spec.activate_one("opacities", params["opacities"]).mean()}


def random_points_in_box(n: int, lo: Tensor, hi: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """[n, 3] uniform points in the box ``[lo, hi]``."""
    u = torch.rand(n, 3, generator=generator, dtype=torch.float32)
    return lo.float() + u * (hi.float() - lo.float())


def fibonacci_sphere(k: int, dtype: torch.dtype = torch.float32) -> Tensor:
    """[k, 3] unit directions evenly spread on the sphere (z from 1 to -1)."""
    if k == 1:
        return torch.tensor([[0.0, 0.0, 1.0]], dtype=dtype)
    i = torch.arange(k, dtype=torch.float64)
    z = 1.0 - 2.0 * i / (k - 1)
    r = (1.0 - z * z).clamp_min(0.0).sqrt()
    phi = i * torch.pi * (3.0 - 5.0**0.5)
    return torch.stack([r * phi.cos(), r * phi.sin(), z], dim=-1).to(dtype)
