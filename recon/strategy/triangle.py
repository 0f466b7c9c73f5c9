"""Triangle Splatting's sampling-based densification and dead pruning (METHODS.md 1.5)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from recon.primitives.triangle import SPEC
from recon.strategy import ops
from recon.strategy.base import visible


def subdivide(vertices: Tensor) -> Tensor:
    """Midpoint subdivision: [M, 3, 3] -> [4M, 3, 3] (three corner triangles + the middle one)."""
    a, b, c = vertices.unbind(1)
    ab, bc, ca = (a + b) / 2, (b + c) / 2, (c + a) / 2
    tris = [torch.stack(t, 1) for t in ((a, ab, ca), (ab, b, bc), (ca, bc, c), (ab, bc, ca))]
    return torch.cat(tris, 0)


def in_plane_noise(vertices: Tensor) -> Tensor:
    """[M, 3] uniform offsets within +-0.75 x the bounding box, normal component removed."""
    extent = vertices.max(1).values - vertices.min(1).values  # [M, 3]
    noise = (torch.rand_like(extent) - 0.5) * extent * 1.5
    normal = torch.linalg.cross(vertices[:, 1] - vertices[:, 0], vertices[:, 2] - vertices[:, 0])
    normal = normal / normal.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    return noise - (noise * normal).sum(-1, keepdim=True) * normal


@dataclass
class TriangleStrategy:
    """Every ``refine_every`` steps in (refine_start, refine_stop): remove dead triangles and
    resample ``min(cap, growth N) - N + #dead`` new ones from live triangles.

    Attributes:
        dead_blend: dead when the max blending weight over the last interval is below this.
        prune_opacity: dead at or below this opacity.
        cap_max: most triangles.
        growth: budget growth per refinement.
        split_size: projected radius (px) above which a sampled triangle is subdivided.
        refine_start: first refinement step.
        refine_stop: after it only dead triangles are removed (every ``refine_every``).
        refine_every: refinement period.
    """

    dead_blend: float = 0.022
    prune_opacity: float = 0.014
    cap_max: int = 4_000_000
    growth: float = 1.3
    split_size: float = 24.0
    refine_start: int = 500
    refine_stop: int = 25000
    refine_every: int = 500

    def initialize_state(self, params: ops.Params) -> dict[str, Any]:
        n, device = ops.num_primitives(params), ops.device_of(params)
        return {"max_blend": torch.zeros(n, device=device), "max_radius": torch.zeros(n, device=device), "round": 0}

    def step_pre_backward(self, params, optimizers, state, step, info) -> None:
        pass

    def step_post_backward(self, params, optimizers, state, step, info) -> None:
        mw = info["max_weights"].detach().amax(0)  # [N]
        state["max_blend"] = torch.maximum(state["max_blend"], mw)
        radius = (info["radii"].float().amax(-1) * visible(info)).amax(0)  # [N]
        state["max_radius"] = torch.maximum(state["max_radius"], radius)
        if step <= self.refine_start or step % self.refine_every != 0:
            return
        dead = self._dead(params, state)
        if step < self.refine_stop:
            self._resample(params, optimizers, state, dead)
        elif bool(dead.any()) and not bool(dead.all()):
            ops.remove(params, optimizers, state, dead)
        state["max_blend"].zero_()
        state["max_radius"].zero_()

    def _dead(self, params: ops.Params, state: dict[str, Any]) -> Tensor:
        opa = SPEC.activate_one("opacities", params["opacities"].detach())
        return (state["max_blend"] < self.dead_blend) | (opa <= self.prune_opacity)

    @torch.no_grad()
    def _resample(self, params, optimizers, state, dead: Tensor) -> None:
        n = ops.num_primitives(params)
        n_dead = int(dead.sum())
        n_add = max(0, min(self.cap_max, int(self.growth * n)) - n + n_dead)
        state["round"] += 1
        opa = SPEC.activate_one("opacities", params["opacities"])
        sigma = SPEC.activate_one("sigma", params["sigma"])
        weights = (opa if state["round"] % 2 == 1 else 1.0 / sigma).clone()
        weights[dead] = 0.0
        n_add = min(n_add, int((weights > 0).sum()))
        if n_add == 0:
            if n_dead and n_dead < n:
                ops.remove(params, optimizers, state, dead)
            return
        picked = torch.multinomial(weights, n_add, replacement=False)  # [S]
        big = state["max_radius"][picked] > self.split_size
        new = self._children(params, picked[big], picked[~big])
        removed = dead.clone()
        removed[picked] = True
        ops.remove(params, optimizers, state, removed)
        ops.append(params, optimizers, state, new)

    @staticmethod
    def _children(params: ops.Params, split_ids: Tensor, clone_ids: Tensor) -> dict[str, Tensor]:
        out: dict[str, list[Tensor]] = {k: [] for k in params}
        if split_ids.numel():
            for k, v in params.items():
                out[k].append(
                    subdivide(v[split_ids]) if k == "vertices" else v[split_ids].repeat(4, *[1] * (v.dim() - 1))
                )
        if clone_ids.numel():
            verts = params["vertices"][clone_ids]  # [C, 3, 3]
            opa = SPEC.activate_one("opacities", params["opacities"][clone_ids])
            halved = SPEC.inverse("opacities", (1.0 - (1.0 - opa).sqrt()).clamp(1e-6, 1 - 1e-6))  # two copies = one
            for k, v in params.items():
                if k == "vertices":
                    out[k].append(torch.cat([verts, verts + in_plane_noise(verts)[:, None, :]]))
                elif k == "opacities":
                    out[k].append(torch.cat([halved, halved]))
                else:
                    out[k].append(v[clone_ids].repeat(2, *[1] * (v.dim() - 1)))
        return {k: torch.cat(v) for k, v in out.items()}
