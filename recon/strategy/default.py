"""gsplat-style default strategy for Gaussians: clone, split, prune, opacity reset (METHODS.md 8)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from recon.errors import ConfigError
from recon.geometry import quat_to_rotmat
from recon.primitives.gaussian import SPEC
from recon.strategy import ops
from recon.strategy.base import visible


@dataclass
class DefaultStrategy:
    """Adaptive density control of 3DGS, as gsplat's ``DefaultStrategy``.

    Attributes:
        prune_opacity: prune below this opacity.
        grow_grad2d: mean 2D gradient (NDC units) above which a Gaussian grows.
        grow_scale3d: clone when max scale <= this x scene_scale, else split.
        prune_scale3d: prune Gaussians larger than this x scene_scale (after the first reset).
        refine_start: first refinement step.
        refine_stop: no refinement from this step on.
        refine_every: refinement period.
        reset_every: opacity reset period (opacities clamped to 2 x prune_opacity).
        absgrad: use ``means2d.absgrad`` (AbsGS) when the backend provides it.
        scene_scale: world size the 3D thresholds are relative to.
    """

    prune_opacity: float = 0.005
    grow_grad2d: float = 2e-4
    grow_scale3d: float = 0.01
    prune_scale3d: float = 0.1
    refine_start: int = 500
    refine_stop: int = 15000
    refine_every: int = 100
    reset_every: int = 3000
    absgrad: bool = False
    scene_scale: float = 1.0

    def initialize_state(self, params: ops.Params) -> dict[str, Any]:
        n, device = ops.num_primitives(params), ops.device_of(params)
        return {"grad2d": torch.zeros(n, device=device), "count": torch.zeros(n, device=device)}

    def step_pre_backward(self, params, optimizers, state, step, info) -> None:
        if info["means2d"].requires_grad:
            info["means2d"].retain_grad()

    def _accumulate(self, state: dict[str, Any], info: dict[str, Any]) -> None:
        m2d = info["means2d"]
        grad = getattr(m2d, "absgrad", None) if self.absgrad else m2d.grad
        if grad is None:
            if self.absgrad:
                raise ConfigError(
                    "strategy.absgrad needs a backend that provides means2d.absgrad",
                    hint="set strategy.absgrad false or use the gsplat backend on CUDA",
                )
            return
        grad = grad.detach().clone()  # [V, N, 2]
        grad[..., 0] *= info["width"] / 2.0 * info["n_cameras"]
        grad[..., 1] *= info["height"] / 2.0 * info["n_cameras"]
        vis = visible(info)  # [V, N]
        norms = grad.norm(dim=-1) * vis  # [V, N]
        state["grad2d"] += norms.sum(0)
        state["count"] += vis.float().sum(0)

    def step_post_backward(self, params, optimizers, state, step, info) -> None:
        if step >= self.refine_stop:
            return
        self._accumulate(state, info)
        if step > self.refine_start and step % self.refine_every == 0:
            self._grow(params, optimizers, state)
            self._prune(params, optimizers, state, step)
            state["grad2d"].zero_()
            state["count"].zero_()
        if step > 0 and step % self.reset_every == 0:
            ops.reset_opacity(params, optimizers, 2.0 * self.prune_opacity)

    @torch.no_grad()
    def _grow(self, params, optimizers, state) -> None:
        grads = state["grad2d"] / state["count"].clamp_min(1)
        high = grads > self.grow_grad2d
        small = SPEC.activate_one("scales", params["scales"]).max(-1).values <= self.grow_scale3d * self.scene_scale
        ops.duplicate(params, optimizers, state, high & small)
        n_dup = int((high & small).sum())
        split = high & ~small
        split = torch.cat([split, split.new_zeros(n_dup)])
        if bool(split.any()):
            split_gaussians(params, optimizers, state, split)

    @torch.no_grad()
    def _prune(self, params, optimizers, state, step: int) -> None:
        opacities = SPEC.activate_one("opacities", params["opacities"])
        prune = opacities < self.prune_opacity
        if step > self.reset_every:
            prune |= (
                SPEC.activate_one("scales", params["scales"]).max(-1).values > self.prune_scale3d * self.scene_scale
            )
        if bool(prune.all()):
            prune[opacities.argmax()] = False  # never remove everything
        if bool(prune.any()):
            ops.remove(params, optimizers, state, prune)


@torch.no_grad()
def split_gaussians(params: ops.Params, optimizers: ops.Optimizers, state: dict[str, Any], mask: torch.Tensor) -> None:
    """Replaces each selected Gaussian by 2 samples from it with scales / 1.6 (3DGS split)."""
    scales = SPEC.activate_one("scales", params["scales"][mask])  # [M, 3]
    R = quat_to_rotmat(params["quats"][mask])  # [M, 3, 3]
    noise = torch.randn(2, *scales.shape, device=scales.device)  # [2, M, 3]
    samples = torch.einsum("mij,smj->smi", R, scales * noise)  # [2, M, 3]
    new = {k: v[mask].repeat(2, *([1] * (v.dim() - 1))) for k, v in params.items()}
    new["means"] = (params["means"][mask][None] + samples).reshape(-1, 3)
    new["scales"] = SPEC.inverse("scales", scales / 1.6).repeat(2, 1)
    ops.remove(params, optimizers, state, mask)
    ops.append(params, optimizers, state, new)
