"""When repair rounds happen, where their pseudo cameras go, and how much their loss weighs.

Pure functions of :class:`~recon.config.RepairConfig` and the number of training steps
(METHODS.md 6.6): rounds evenly spaced from ``first`` to ``last`` of the schedule; round ``k`` of
``K`` puts its pseudo cameras ``farthest x (k + 1) / K`` of the way between neighbouring training
cameras (from both ends), so the views move away from the data round by round (Difix3D+); the
loss weight rises linearly over ``ramp`` after the first round and falls to 0 over ``ramp``
before ``stop`` (GaussianObject's blend ends before the schedule does), so the last steps see
real views only. Also the orbit of pseudo cameras around an object capture.
"""

from __future__ import annotations

import torch

from recon.cameras import Cameras
from recon.config import RepairConfig
from recon.data.synthetic import look_at


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


def orbit_cameras(cameras: Cameras, count: int) -> Cameras:
    """``count`` cameras on a circle around what the training cameras look at.

    The centre is the point nearest to every optical axis (least squares); the circle's axis is the
    normal of the plane through the camera centres (their mean up direction for fewer than three),
    its height and radius the cameras' mean height above the centre and mean distance from the axis.
    Each orbit camera looks at the centre with the first training camera's intrinsics.
    """
    c2w = cameras.camtoworlds.double()  # [V, 4, 4] OpenCV: x right, y down, z forward
    eyes, fwd = c2w[:, :3, 3], c2w[:, :3, 2]  # [V, 3]
    proj = torch.eye(3, dtype=torch.float64) - fwd[:, :, None] * fwd[:, None, :]  # [V, 3, 3]
    center = torch.linalg.lstsq(proj.sum(0), (proj @ eyes[..., None]).sum(0)).solution[:, 0]  # [3]
    up = -c2w[:, :3, 1].mean(0)  # cameras' mean up; the normal of their centres' plane when there is one
    if len(eyes) >= 3:
        normal = torch.linalg.svd(eyes - eyes.mean(0)).Vh[2]
        up = normal if float(normal @ up) >= 0 else -normal
    up = up / up.norm().clamp_min(1e-12)
    rel = eyes - center
    height = float((rel @ up).mean())
    flat = rel - (rel @ up)[:, None] * up
    radius = float(flat.norm(dim=-1).mean())
    a = flat[0] / flat[0].norm().clamp_min(1e-12)
    b = torch.linalg.cross(up, a)
    angles = torch.arange(count, dtype=torch.float64) * (2 * torch.pi / max(count, 1))
    ring = center + radius * (angles.cos()[:, None] * a + angles.sin()[:, None] * b) + height * up  # [count, 3]
    viewmats = look_at(ring, center, tuple(up.tolist())).to(cameras.viewmats.dtype)
    n = len(ring)
    return Cameras(
        Ks=cameras.Ks[:1].expand(n, 3, 3).clone(),
        viewmats=viewmats,
        widths=cameras.widths[:1].expand(n).clone(),
        heights=cameras.heights[:1].expand(n).clone(),
    )
