"""Analytic ray casting of textured spheres, boxes and a ground tile (the demo scene's renderer).

Exact first-hit intersections in PyTorch, batched over rays, plus smooth solid textures and
Lambert shading with one directional light. Independent of the project's rasterizer: it is the
ground-truth renderer of :mod:`recon.data.synthetic`.

Rays are ``o + t d`` with ``o``, ``d`` [R, 3]; ``d`` need not be unit length (with camera-space
``d = (x, y, 1)`` the returned ``t`` is the camera z). Misses return ``t = inf``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

_EPS = 1e-9


def _sqnorm(d: Tensor) -> Tensor:
    """[R] squared norms of d [R, 3] (column sums: faster than a reduction over the last axis)."""
    return d[:, 0] * d[:, 0] + d[:, 1] * d[:, 1] + d[:, 2] * d[:, 2]


def _sphere_terms(
    o: Tensor, d: Tensor, dd: Tensor | None, center: tuple[float, float, float], radius: float
) -> tuple[Tensor, Tensor, Tensor]:
    """Quarter discriminant, half linear term b and a = |d|^2 of |o + t d - center|^2 = radius^2."""
    a = _sqnorm(d) if dd is None else dd
    oc = o - torch.tensor(center, dtype=d.dtype)
    if oc.dim() == 1:  # one shared origin: a matrix-vector product
        b, c = d @ oc, float(oc @ oc) - radius**2
    else:
        b = oc[:, 0] * d[:, 0] + oc[:, 1] * d[:, 1] + oc[:, 2] * d[:, 2]
        c = _sqnorm(oc) - radius**2
    return b * b - a * c, b, a


@dataclass(frozen=True)
class Texture:
    """A smooth solid texture: ``albedo(p) = lerp(color0, color1, s(p))``, s in [0, 1].

    Attributes:
        kind: ``"checker"`` (soft 3D checker), ``"stripes"`` (sine bands along ``axis``) or
            ``"gradient"`` (linear ramp along ``axis`` over ``[-period, period]``).
        color0: RGB in [0, 1].
        color1: RGB in [0, 1].
        period: checker square size / stripe period / half ramp length, in local units.
        axis: local axis (0, 1, 2) for stripes and gradients.
        sharpness: checker edge sharpness (higher = crisper squares).
    """

    kind: str
    color0: tuple[float, float, float]
    color1: tuple[float, float, float]
    period: float = 0.5
    axis: int = 2
    sharpness: float = 2.5

    def albedo(self, p: Tensor) -> Tensor:
        """[P, 3] albedo at local points ``p`` [P, 3]."""
        if self.kind == "checker":
            w = math.pi / self.period
            # a quarter-period phase keeps every box face away from a zero of the sine
            prod = torch.sin(w * p[:, 0] + 0.25 * math.pi) * torch.sin(w * p[:, 1] + 0.25 * math.pi)
            prod = prod * torch.sin(w * p[:, 2] + 0.25 * math.pi)
            s = 0.5 + 0.5 * torch.tanh(self.sharpness * prod) / math.tanh(self.sharpness)
        elif self.kind == "stripes":
            s = 0.5 + 0.5 * torch.sin(2.0 * math.pi * p[:, self.axis] / self.period)
        elif self.kind == "gradient":
            s = (0.5 + 0.5 * p[:, self.axis] / self.period).clamp(0.0, 1.0)
        else:
            raise ValueError(f"unknown texture kind {self.kind!r}")
        c0 = torch.tensor(self.color0, dtype=p.dtype)
        c1 = torch.tensor(self.color1, dtype=p.dtype)
        return c0 + s[:, None] * (c1 - c0)


@dataclass(frozen=True)
class Sphere:
    """A sphere; its texture is evaluated in coordinates relative to the centre."""

    center: tuple[float, float, float]
    radius: float
    texture: Texture
    name: str = "sphere"

    def intersect(self, o: Tensor, d: Tensor, dd: Tensor | None = None) -> Tensor:
        """Ray parameter t of the first hit, inf on a miss (see the module docstring for shapes)."""
        disc, b, a = _sphere_terms(o, d, dd, self.center, self.radius)
        t = (-b - disc.clamp_min(0.0).sqrt()) / a
        return torch.where((disc >= 0) & (t > _EPS), t, math.inf)

    def normal(self, p: Tensor) -> Tensor:
        return torch.nn.functional.normalize(p - torch.tensor(self.center, dtype=p.dtype), dim=-1)

    def local(self, p: Tensor) -> Tensor:
        return p - torch.tensor(self.center, dtype=p.dtype)

    def sample(self, n: int, gen: torch.Generator, dtype: torch.dtype) -> Tensor:
        """[n, 3] points uniform on the surface."""
        v = torch.nn.functional.normalize(torch.randn(n, 3, generator=gen, dtype=dtype), dim=-1)
        return torch.tensor(self.center, dtype=dtype) + self.radius * v

    @property
    def area(self) -> float:
        return 4.0 * math.pi * self.radius**2


@dataclass(frozen=True)
class Box:
    """A box rotated by ``yaw`` radians about the world z axis; textured in its local frame."""

    center: tuple[float, float, float]
    half_size: tuple[float, float, float]
    yaw: float
    texture: Texture
    name: str = "box"

    def _rot(self, dtype: torch.dtype) -> Tensor:  # [3, 3] local -> world
        c, s = math.cos(self.yaw), math.sin(self.yaw)
        return torch.tensor([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]], dtype=dtype)

    def local(self, p: Tensor) -> Tensor:
        return (p - torch.tensor(self.center, dtype=p.dtype)) @ self._rot(p.dtype)

    def intersect(self, o: Tensor, d: Tensor, dd: Tensor | None = None) -> Tensor:
        """Slab test in the box frame, run only on rays that hit the bounding sphere; inf on a miss."""
        h = torch.tensor(self.half_size, dtype=d.dtype)
        disc, b, a = _sphere_terms(o, d, dd, self.center, float(h.norm()))
        idx = ((disc >= 0) & (-b + disc.clamp_min(0.0).sqrt() > _EPS * a)).nonzero().squeeze(1)
        t = torch.full(d.shape[:1], math.inf, dtype=d.dtype)
        if idx.numel() == 0:
            return t
        R = self._rot(d.dtype)
        ol, dl = self.local(o if o.dim() == 1 else o[idx]), d[idx] @ R
        inv = 1.0 / torch.where(dl.abs() < 1e-12, 1e-12, dl)
        t1, t2 = (-h - ol) * inv, (h - ol) * inv
        tmin = torch.minimum(t1, t2).amax(-1)
        tmax = torch.maximum(t1, t2).amin(-1)
        t[idx] = torch.where((tmax >= tmin) & (tmin > _EPS), tmin, math.inf)
        return t

    def normal(self, p: Tensor) -> Tensor:
        q = self.local(p) / torch.tensor(self.half_size, dtype=p.dtype)  # on the face: |q_k| = 1
        axis = q.abs().argmax(-1)
        n_local = (
            torch.nn.functional.one_hot(axis, 3).to(p.dtype) * q.gather(-1, axis[:, None]).sign()
        )
        return n_local @ self._rot(p.dtype).T

    def sample(self, n: int, gen: torch.Generator, dtype: torch.dtype) -> Tensor:
        """[n, 3] points uniform on the five faces other than the bottom (which rests on z=0)."""
        h = torch.tensor(self.half_size, dtype=dtype)
        # faces: +z, +-x, +-y; areas in proportion to the products of the other two half sizes
        faces = [(2, 1.0), (0, 1.0), (0, -1.0), (1, 1.0), (1, -1.0)]
        areas = torch.tensor(
            [float(h[(a + 1) % 3] * h[(a + 2) % 3]) for a, _ in faces], dtype=dtype
        )
        face = torch.multinomial(areas, n, replacement=True, generator=gen)
        q = torch.rand(n, 3, generator=gen, dtype=dtype) * 2.0 - 1.0
        for k, (axis, sign) in enumerate(faces):
            q[face == k, axis] = sign
        return (q * h) @ self._rot(dtype).T + torch.tensor(self.center, dtype=dtype)

    @property
    def area(self) -> float:
        x, y, z = self.half_size
        return 4.0 * (x * y + 2.0 * x * z + 2.0 * y * z)


@dataclass(frozen=True)
class Ground:
    """The square tile ``z = 0``, ``|x|, |y| <= half_size``, facing up."""

    half_size: float
    texture: Texture
    name: str = "ground"

    def intersect(self, o: Tensor, d: Tensor, dd: Tensor | None = None) -> Tensor:
        """Plane hit inside the tile; inf on a miss."""
        dz = torch.where(d[:, 2].abs() < 1e-12, 1e-12, d[:, 2])
        t = -o[..., 2] / dz
        x, y = o[..., 0] + t * d[:, 0], o[..., 1] + t * d[:, 1]
        inside = (x.abs() <= self.half_size) & (y.abs() <= self.half_size)
        return torch.where(inside & (t > _EPS), t, math.inf)

    def normal(self, p: Tensor) -> Tensor:
        return torch.tensor([0.0, 0.0, 1.0], dtype=p.dtype).expand_as(p)

    def local(self, p: Tensor) -> Tensor:
        return p

    def sample(self, n: int, gen: torch.Generator, dtype: torch.dtype) -> Tensor:
        xy = (torch.rand(n, 2, generator=gen, dtype=dtype) * 2.0 - 1.0) * self.half_size
        return torch.cat([xy, torch.zeros(n, 1, dtype=dtype)], dim=-1)

    @property
    def area(self) -> float:
        return 4.0 * self.half_size**2


@dataclass(frozen=True)
class SyntheticWorld:
    """Shapes, light and background of the demo scene.

    Attributes:
        objects: boxes and spheres (index ``k`` in ``objects`` has surface id ``k + 1``).
        ground: the ground tile (surface id 0).
        light_dir: direction towards the light (normalised internally).
        ambient: Lambert ambient term: ``color = albedo * (ambient + (1 - ambient) max(0, n.l))``.
        background: RGB seen by rays that hit nothing.
    """

    objects: tuple[Sphere | Box, ...]
    ground: Ground
    light_dir: tuple[float, float, float] = (0.45, 0.3, 1.0)
    ambient: float = 0.35
    background: tuple[float, float, float] = (1.0, 1.0, 1.0)

    @property
    def surfaces(self) -> tuple[Ground | Sphere | Box, ...]:
        return (self.ground, *self.objects)

    def cast(self, o: Tensor, d: Tensor) -> tuple[Tensor, Tensor]:
        """First hit of rays ``o + t d``: d [R, 3] (need not be unit), o [R, 3] or one origin [3].

        Returns:
            t [R] (inf on a miss) and the surface id [R] (-1 = background, 0 = ground, k+1 = objects[k]).
        """
        t_best = torch.full(d.shape[:1], math.inf, dtype=d.dtype)
        sid = torch.full(d.shape[:1], -1, dtype=torch.long)
        dd = _sqnorm(d)
        for k, surf in enumerate(self.surfaces):
            t = surf.intersect(o, d, dd)
            closer = t < t_best
            t_best = torch.where(closer, t, t_best)
            sid[closer] = k
        return t_best, sid

    def shade(self, p: Tensor, sid: Tensor) -> Tensor:
        """[R, 3] colour of surface points ``p`` [R, 3] on surfaces ``sid`` [R] (background for -1)."""
        out = torch.tensor(self.background, dtype=p.dtype).repeat(p.shape[0], 1)
        light = torch.nn.functional.normalize(torch.tensor(self.light_dir, dtype=p.dtype), dim=0)
        for k, surf in enumerate(self.surfaces):
            sel = sid == k
            if not bool(sel.any()):
                continue
            q = p[sel]
            lambert = (surf.normal(q) @ light).clamp_min(0.0)
            out[sel] = (
                surf.texture.albedo(surf.local(q))
                * (self.ambient + (1.0 - self.ambient) * lambert)[:, None]
            )
        return out
