"""When repair rounds happen, where their pseudo cameras go, and how much their loss weighs.

Pure functions of :class:`~recon.config.RepairConfig` and the number of training steps
(METHODS.md 6.6): rounds evenly spaced from ``first`` to ``last`` of the schedule; round ``k`` of
``K`` puts its pseudo cameras ``farthest x (k + 1) / K`` of the way between neighbouring training
cameras (from both ends), so the views move away from the data round by round (Difix3D+); the
loss weight rises linearly over ``ramp`` after the first round and falls to 0 over ``ramp``
before ``stop`` (GaussianObject's blend ends before the schedule does), so the last steps see
real views only. Also the orbit of pseudo cameras around an object capture (:func:`object_centred`).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from recon.cameras import Cameras
from recon.config import RepairConfig
from recon.data.synthetic import look_at
from recon.repair.source import neighbour_pairs


def round_steps(config: RepairConfig, iterations: int) -> list[int]:
    """Training step at which each round starts (strictly increasing; duplicates dropped)."""
    k = max(config.rounds, 0)
    fractions = (
        [config.first] if k == 1 else [config.first + (config.last - config.first) * i / (k - 1) for i in range(k)]
    )
    steps = sorted({max(0, round(f * iterations)) for f in fractions})
    return [s for s in steps if s < iterations]


def round_fraction(config: RepairConfig, k: int) -> float:
    """Interpolation fraction of round ``k`` between neighbouring training cameras (at most 0.5)."""
    return min(0.5, config.farthest * (k + 1) / max(config.rounds, 1))


def round_at(config: RepairConfig, iterations: int, step: int) -> int:
    """Index of the newest round started at or before ``step`` (-1 = none yet)."""
    return sum(s <= step for s in round_steps(config, iterations)) - 1


def loss_weight(config: RepairConfig, iterations: int, step: int) -> float:
    """Global weight of the pseudo-view loss at ``step``: 0 before the first round and from
    ``stop`` on, ``weight`` in between, linear ramps of length ``ramp`` at both ends."""
    steps = round_steps(config, iterations)
    if not steps:
        return 0.0
    f, start = step / iterations, steps[0] / iterations
    if f < start or f >= config.stop:
        return 0.0
    if config.ramp <= 0:
        return config.weight
    return config.weight * max(0.0, min(1.0, (f - start) / config.ramp, (config.stop - f) / config.ramp))


def _axis_centre(c2w: Tensor) -> Tensor:
    """[3] the point nearest to every optical axis (least squares) of cameras ``c2w`` [V, 4, 4]."""
    eyes, fwd = c2w[:, :3, 3], c2w[:, :3, 2]  # [V, 3]
    proj = torch.eye(3, dtype=c2w.dtype) - fwd[:, :, None] * fwd[:, None, :]  # [V, 3, 3]
    return torch.linalg.lstsq(proj.sum(0), (proj @ eyes[..., None]).sum(0)).solution[:, 0]


def _orbit_frame(cameras: Cameras) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """Cylindrical coordinates of the training cameras around what they look at.

    The centre is :func:`_axis_centre`; the axis ``up`` is the normal of the plane through the
    camera centres (their mean up direction for fewer than three); ``a``, ``b`` span the plane
    (``a`` towards the first camera).

    Returns:
        centre [3], up [3], a [3], b [3], and per camera its (azimuth, radius, height) [V, 3].
    """
    c2w = cameras.camtoworlds.double()  # [V, 4, 4] OpenCV: x right, y down, z forward
    eyes = c2w[:, :3, 3]
    center = _axis_centre(c2w)
    up = -c2w[:, :3, 1].mean(0)  # cameras' mean up; the normal of their centres' plane when there is one
    if len(eyes) >= 3:
        normal = torch.linalg.svd(eyes - eyes.mean(0)).Vh[2]
        up = normal if float(normal @ up) >= 0 else -normal
    up = up / up.norm().clamp_min(1e-12)
    rel = eyes - center
    height = rel @ up  # [V]
    flat = rel - height[:, None] * up
    a = flat[0] / flat[0].norm().clamp_min(1e-12)
    b = torch.linalg.cross(up, a)
    cyl = torch.stack([torch.atan2(flat @ b, flat @ a), flat.norm(dim=-1), height], -1)  # [V, 3]
    return center, up, a, b, cyl


def _looking_at_centre(cameras: Cameras, cyl: Tensor, center: Tensor, up: Tensor, a: Tensor, b: Tensor) -> Cameras:
    """Cameras at cylindrical coordinates ``cyl`` [P, 3] looking at ``center``, the first training camera's intrinsics."""
    az, radius, height = cyl.unbind(-1)
    ring = center + radius[:, None] * (az.cos()[:, None] * a + az.sin()[:, None] * b) + height[:, None] * up  # [P, 3]
    viewmats = look_at(ring, center, tuple(up.tolist())).to(cameras.viewmats.dtype)
    n = len(ring)
    return Cameras(
        Ks=cameras.Ks[:1].expand(n, 3, 3).clone(),
        viewmats=viewmats,
        widths=cameras.widths[:1].expand(n).clone(),
        heights=cameras.heights[:1].expand(n).clone(),
    )


def orbit_cameras(cameras: Cameras, count: int) -> Cameras:
    """``count`` cameras evenly spaced on the whole circle around what the training cameras look at
    (:func:`_orbit_frame`), at their mean height above the centre and mean distance from the axis."""
    center, up, a, b, cyl = _orbit_frame(cameras)
    angles = torch.arange(count, dtype=torch.float64) * (2 * torch.pi / max(count, 1))
    ring = torch.stack([angles, cyl[:, 1].mean().expand(count), cyl[:, 2].mean().expand(count)], -1)  # [count, 3]
    return _looking_at_centre(cameras, ring, center, up, a, b)


def orbit_between(cameras: Cameras, fractions: tuple[float, ...] = (0.5,)) -> Cameras:
    """Pseudo cameras on the orbit between each training camera and its nearest neighbour (the pairs
    of :func:`~recon.repair.source.between_cameras`): azimuth (the shorter way), distance from the
    axis and height interpolated, looking at the centre. Unlike the straight line, the views stay
    at the capture's distance from the object."""
    center, up, a, b, cyl = _orbit_frame(cameras)
    rows = []
    for i, j in neighbour_pairs(cameras):
        turn = torch.remainder(cyl[j, 0] - cyl[i, 0] + torch.pi, 2 * torch.pi) - torch.pi  # in [-pi, pi)
        for t in fractions:
            rows.append(torch.stack([cyl[i, 0] + t * turn, *((1 - t) * cyl[i, 1:] + t * cyl[j, 1:])]))
    return _looking_at_centre(cameras, torch.stack(rows), center, up, a, b)


def orbit_beyond(cameras: Cameras, reach: float) -> Cameras:
    """Two pseudo cameras on the orbit past the ends of the capture's arc: beyond each outermost
    training camera (the two bordering the widest azimuth gap) by ``reach`` x its angular gap to
    its neighbour on the arc (at most half the widest gap), at that camera's distance and height,
    looking at the centre. Leave-one-out renders imitate views one neighbour gap away from the
    cameras a model saw, so the fixer knows these views' damage at ``reach`` 1."""
    center, up, a, b, cyl = _orbit_frame(cameras)
    order = torch.argsort(cyl[:, 0])
    az = cyl[order, 0]  # [V] ascending
    gaps = torch.remainder(az.roll(-1) - az, 2 * torch.pi)  # [V] gap k: from az[k] to az[k + 1]
    k = int(gaps.argmax())  # the arc runs from az[k + 1] (first) round to az[k] (last)
    last, first = int(order[k]), int(order[(k + 1) % len(az)])
    limit = 0.5 * float(gaps[k])
    inner_first = float(gaps[(k + 1) % len(az)]) if len(az) > 1 else limit
    inner_last = float(gaps[k - 1]) if len(az) > 1 else limit
    rows = [
        torch.stack([cyl[first, 0] - min(reach * inner_first, limit), cyl[first, 1], cyl[first, 2]]),
        torch.stack([cyl[last, 0] + min(reach * inner_last, limit), cyl[last, 1], cyl[last, 2]]),
    ]
    return _looking_at_centre(cameras, torch.stack(rows), center, up, a, b)


def orbit_tilted(cameras: Cameras, degrees: float) -> Cameras:
    """Each training camera moved up and down by ``degrees`` of elevation on the sphere around the
    centre (its distance to the centre and its azimuth kept), looking at the centre: ``2 V`` cameras,
    the raised ones first. Object captures often ring the object at one height while the views to
    render lie above and below the ring (DTU: the test views span about -25 to +30 degrees)."""
    center, up, a, b, cyl = _orbit_frame(cameras)
    az, radius, height = cyl.unbind(-1)
    dist, elevation = torch.hypot(radius, height), torch.atan2(height, radius)  # [V]
    rows = []
    for sign in (1.0, -1.0):
        e = elevation + sign * math.radians(degrees)
        rows.append(torch.stack([az, dist * e.cos(), dist * e.sin()], -1))
    return _looking_at_centre(cameras, torch.cat(rows), center, up, a, b)


AUTO_TILT_MAX = 45.0
"""Largest automatic ``orbit_tilt`` (degrees): on a wide-baseline 360-degree capture the spacing
(108 degrees for gold_cape's three views) would lift the pseudo cameras over the top and under
the object, where the fixer has nothing to go by (one of gold_cape's test views went empty)."""


def auto_tilt(cameras: Cameras) -> float:
    """The automatic ``orbit_tilt``: :func:`neighbour_angle`, at most :data:`AUTO_TILT_MAX`."""
    return min(neighbour_angle(cameras), AUTO_TILT_MAX)


def neighbour_angle(cameras: Cameras) -> float:
    """Mean angle in degrees between neighbouring cameras (the pairs of
    :func:`~recon.repair.source.neighbour_pairs`) seen from what they look at (:func:`_axis_centre`):
    the capture's own angular spacing, the automatic ``orbit_tilt``."""
    c2w = cameras.camtoworlds.double()  # [V, 4, 4]
    rel = c2w[:, :3, 3] - _axis_centre(c2w)
    dirs = rel / rel.norm(dim=-1, keepdim=True).clamp_min(1e-12)  # [V, 3]
    pairs = neighbour_pairs(cameras)
    cos = torch.stack([dirs[i] @ dirs[j] for i, j in pairs]).clamp(-1, 1)  # [P]
    return math.degrees(float(cos.acos().mean())) if pairs else 0.0


def object_centred(cameras: Cameras, max_angle_deg: float = 20.0, min_spread_deg: float = 10.0) -> bool:
    """Whether the cameras look at a common centre from different directions (an object capture).

    True when the centre nearest to every optical axis lies in front of each camera within
    ``max_angle_deg`` of its optical axis, and the directions from the centre to the cameras
    spread over at least ``min_spread_deg`` (forward-facing captures look the same way from nearly
    the same place: their axes almost never meet).
    """
    if len(cameras) < 2:
        return False
    c2w = cameras.camtoworlds.double()
    center = _axis_centre(c2w)
    to_center = center - c2w[:, :3, 3]  # [V, 3]
    dist = to_center.norm(dim=-1).clamp_min(1e-12)
    cos_axis = (to_center * c2w[:, :3, 2]).sum(-1) / dist  # [V]
    dirs = -to_center / dist[:, None]
    spread = float((dirs @ dirs.T).clamp(-1, 1).min().acos())
    return bool((cos_axis >= math.cos(math.radians(max_angle_deg))).all()) and spread >= math.radians(min_spread_deg)
