"""MCMC strategy for Gaussians (3DGS as MCMC, gsplat's ``MCMCStrategy``), in plain PyTorch."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from recon.geometry import quat_to_rotmat
from recon.primitives.gaussian import SPEC
from recon.strategy import ops


def relocation_values(opacities: Tensor, scales: Tensor, counts: Tensor, max_n: int = 51) -> tuple[Tensor, Tensor]:
    """Opacity and scale of a Gaussian split into ``n`` copies that together render like it.

    ``o' = 1 - (1 - o)^(1/n)`` and ``s' = o / denom * s`` with
    ``denom = sum_{i=1..n} sum_{k=0..i-1} C(i-1, k) (-1)^k o'^(k+1) / sqrt(k+1)`` (MCMC paper, eq. 9).

    Args:
        opacities: [M] activated opacities.
        scales: [M, 3] activated scales.
        counts: [M] number of copies n >= 1 (clamped to ``max_n``).

    Returns:
        ([M] new opacities, [M, 3] new scales).
    """
    n = counts.clamp(1, max_n).long()
    new_o = 1.0 - (1.0 - opacities).clamp_min(0.0) ** (1.0 / n.to(opacities.dtype))
    new_o = new_o.clamp(1e-6, 1.0 - 1e-6)
    f64 = {"dtype": torch.float64, "device": opacities.device}
    binom = torch.tensor([[math.comb(i, k) for k in range(max_n)] for i in range(max_n)], **f64)
    denom = torch.zeros_like(new_o, dtype=torch.float64)
    o = new_o.double()
    for i in range(1, int(n.max()) + 1):
        ks = torch.arange(i, **f64)
        term = (binom[i - 1, :i] * (-1.0) ** ks * o[:, None] ** (ks + 1) / (ks + 1).sqrt()).sum(-1)
        denom += term * (n >= i)
    new_s = (opacities.double() / denom)[:, None] * scales.double()
    return new_o.to(opacities.dtype), new_s.to(scales.dtype)


@dataclass
class MCMCStrategy:
    """Relocate dead Gaussians, grow towards a budget, and inject position noise.

    Attributes:
        cap_max: most Gaussians.
        noise_lr: noise scale (times the current means LR).
        refine_start: first refinement step.
        refine_stop: no relocation/growth from this step on.
        refine_every: refinement period.
        prune_opacity: dead below this opacity.
    """

    cap_max: int = 1_000_000
    noise_lr: float = 5e5
    refine_start: int = 500
    refine_stop: int = 25000
    refine_every: int = 100
    prune_opacity: float = 0.005

    def initialize_state(self, params: ops.Params) -> dict[str, Any]:
        return {}

    def step_pre_backward(self, params, optimizers, state, step, info) -> None:
        pass

    def step_post_backward(self, params, optimizers, state, step, info) -> None:
        if self.refine_start < step < self.refine_stop and step % self.refine_every == 0:
            self.relocate(params, optimizers, state)
            self.add(params, optimizers, state)
        self.inject_noise(params, info["lrs"]["means"])

    @torch.no_grad()
    def _copy_from(self, params, optimizers, src: Tensor) -> dict[str, Tensor]:
        """Values for copies of rows ``src`` [M] (repeats allowed); the sources get the same
        reduced opacity and scale, so each source and its copies render like the source did."""
        opa = SPEC.activate_one("opacities", params["opacities"])
        counts = torch.bincount(src, minlength=opa.shape[0])[src] + 1  # copies incl. the source
        new_o, new_s = relocation_values(opa[src], SPEC.activate_one("scales", params["scales"][src]), counts)
        values = {k: v[src].clone() for k, v in params.items()}
        values["opacities"] = SPEC.inverse("opacities", new_o)
        values["scales"] = SPEC.inverse("scales", new_s)
        uniq, first = _first_occurrence(src)
        ops.set_rows(
            params, optimizers, {"opacities": values["opacities"][first], "scales": values["scales"][first]}, uniq
        )
        return values

    @torch.no_grad()
    def relocate(self, params, optimizers, state) -> int:
        opa = SPEC.activate_one("opacities", params["opacities"])
        dead = opa <= self.prune_opacity
        n_dead = int(dead.sum())
        alive = (~dead).nonzero().squeeze(-1)
        if n_dead == 0 or alive.numel() == 0:
            return 0
        probs = opa[alive]
        src = alive[torch.multinomial(probs, n_dead, replacement=True)]
        values = self._copy_from(params, optimizers, src)
        ops.set_rows(params, optimizers, values, dead.nonzero().squeeze(-1))
        return n_dead

    @torch.no_grad()
    def add(self, params, optimizers, state) -> int:
        n = ops.num_primitives(params)
        n_new = max(0, min(self.cap_max, int(1.05 * n)) - n)
        if n_new == 0:
            return 0
        opa = SPEC.activate_one("opacities", params["opacities"])
        src = torch.multinomial(opa, n_new, replacement=True)
        values = self._copy_from(params, optimizers, src)
        ops.append(params, optimizers, state, values)
        return n_new

    @torch.no_grad()
    def inject_noise(self, params, lr_means: float) -> None:
        opa = SPEC.activate_one("opacities", params["opacities"])
        scales = SPEC.activate_one("scales", params["scales"])
        R = quat_to_rotmat(params["quats"])  # [N, 3, 3]
        covars = R @ torch.diag_embed(scales.square()) @ R.transpose(1, 2)  # [N, 3, 3]
        gate = torch.sigmoid(-100.0 * (opa - 0.005))[:, None]  # ~1 for nearly transparent Gaussians
        noise = torch.randn_like(params["means"]) * gate * self.noise_lr * lr_means
        params["means"].add_(torch.einsum("nij,nj->ni", covars, noise))


def _first_occurrence(idx: Tensor) -> tuple[Tensor, Tensor]:
    """Unique values of ``idx`` [M] and the position of the first occurrence of each."""
    uniq, inverse = torch.unique(idx, return_inverse=True)
    pos = torch.arange(idx.shape[0], device=idx.device)
    first = torch.full((uniq.shape[0],), idx.shape[0], dtype=torch.long, device=idx.device)
    first = first.scatter_reduce(0, inverse, pos, "amin")
    return uniq, first
