"""3D Convex Splatting densification: split into K children, and pruning (METHODS.md 2.4)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import Tensor

from recon.primitives.convex import SPEC
from recon.strategy import ops
from recon.strategy.base import visible


def split_convexes(points: Tensor, shrink: float) -> Tensor:
    """K children per convex: child j = the parent scaled by ``shrink`` about its point j.

    Args:
        points: [M, K, 3] parent points.
        shrink: scale factor in (0, 1).

    Returns:
        [K * M, K, 3] children, child-major (all first children, then all second...).
    """
    k = points.shape[1]
    children = [points[:, j : j + 1] + shrink * (points - points[:, j : j + 1]) for j in range(k)]
    return torch.cat(children, 0)


@dataclass
class ConvexStrategy:
    """Split convexes whose mean (signed) gradient of the activated sigma is above ``grad_threshold``.

    Attributes:
        grad_threshold: split when the mean dL/dsigma over visible views exceeds this.
        shrink: child scale relative to the parent.
        opacity_factor: child opacity = parent opacity x this (activated space).
        sigma_raw_factor: child raw (log) sigma = parent raw sigma x this, as the official code
            does (multiplicative in log space, so it is not a plain scaling of sigma).
        prune_opacity: prune below this opacity.
        prune_size: prune convexes wider than this x scene_scale (after 3000 steps).
        cap_max: most convexes.
        refine_start: first refinement step.
        refine_stop: after it only pruning (every 1000 steps).
        refine_every: refinement period.
        scene_scale: world size the size threshold is relative to.

    ``grad_threshold`` and ``shrink`` are ``strategy.convex_grad`` / ``strategy.convex_shrink`` in the
    config (:func:`recon.strategy.base.from_config`).
    """

    CONFIG_NAMES: ClassVar[dict[str, str]] = {"grad_threshold": "convex_grad", "shrink": "convex_shrink"}

    grad_threshold: float = 2.5e-5
    shrink: float = 0.63
    opacity_factor: float = 0.5
    sigma_raw_factor: float = 0.88
    prune_opacity: float = 0.03
    prune_size: float = 0.3
    cap_max: int = 1_000_000
    refine_start: int = 500
    refine_stop: int = 9000
    refine_every: int = 200
    scene_scale: float = 1.0

    def initialize_state(self, params: ops.Params) -> dict[str, Any]:
        n, device = ops.num_primitives(params), ops.device_of(params)
        return {"sigma_grad": torch.zeros(n, device=device), "count": torch.zeros(n, device=device)}

    def step_pre_backward(self, params, optimizers, state, step, info) -> None:
        pass

    def step_post_backward(self, params, optimizers, state, step, info) -> None:
        grad = info.get("param_grads", {}).get("sigma")  # recorded by the trainer before zero_grad
        if grad is None:
            grad = params["sigma"].grad
        if grad is not None:
            vis = visible(info).any(0).float()  # [N]
            # d L / d sigma = d L / d raw / sigma, as sigma = exp(raw) (SPEC)
            state["sigma_grad"] += grad.detach() / SPEC.activate_one("sigma", params["sigma"].detach()) * vis
            state["count"] += vis
        refine = self.refine_start < step < self.refine_stop and step % self.refine_every == 0
        prune_only = step >= self.refine_stop and step % 1000 == 0
        if not (refine or prune_only):
            return
        if refine:
            self._split(params, optimizers, state)
        self._prune(params, optimizers, state, step)
        state["sigma_grad"].zero_()
        state["count"].zero_()

    @torch.no_grad()
    def _split(self, params, optimizers, state) -> None:
        n = ops.num_primitives(params)
        k = params["points"].shape[1]
        mean = state["sigma_grad"] / state["count"].clamp_min(1)
        sel = mean > self.grad_threshold
        budget = max(0, (self.cap_max - n) // max(k - 1, 1))
        if int(sel.sum()) > budget:
            top = torch.topk(mean, budget).indices
            sel = torch.zeros_like(sel)
            sel[top] = True
        if not bool(sel.any()):
            return
        new = {}
        for key, v in params.items():
            parent = v[sel]
            if key == "points":
                new[key] = split_convexes(parent, self.shrink)
            elif key == "opacities":
                opa = SPEC.activate_one(key, parent) * self.opacity_factor
                new[key] = SPEC.inverse(key, opa.clamp(1e-6, 1 - 1e-6)).repeat(k)
            elif key == "sigma":
                new[key] = (parent * self.sigma_raw_factor).repeat(k)
            else:
                new[key] = parent.repeat(k, *[1] * (parent.dim() - 1))
        ops.remove(params, optimizers, state, sel)
        ops.append(params, optimizers, state, new)

    @torch.no_grad()
    def _prune(self, params, optimizers, state, step: int) -> None:
        prune = SPEC.activate_one("opacities", params["opacities"]) < self.prune_opacity
        if step > 3000:
            pts = params["points"]
            size = (pts - pts.mean(1, keepdim=True)).norm(dim=-1).amax(1)
            prune |= size > self.prune_size * self.scene_scale
        if bool(prune.any()) and not bool(prune.all()):
            ops.remove(params, optimizers, state, prune)
