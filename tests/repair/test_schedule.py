"""Repair rounds: when they start, where their cameras go, the loss weight (hand values), the orbit."""

from __future__ import annotations

import math

import pytest
import torch

from recon.cameras import Cameras
from recon.config import RepairConfig
from recon.data.synthetic import look_at
from recon.repair.schedule import loss_weight, orbit_cameras, round_at, round_fraction, round_steps


def test_rounds_and_fractions_by_hand():
    c = RepairConfig(rounds=3, first=0.3, last=0.6, farthest=0.5)
    assert round_steps(c, 1000) == [300, 450, 600]
    assert [round_at(c, 1000, s) for s in (0, 299, 300, 449, 450, 600, 999)] == [-1, -1, 0, 0, 1, 2, 2]
    assert [round_fraction(c, k) for k in range(3)] == pytest.approx([1 / 6, 1 / 3, 1 / 2])  # farther each round
    assert round_steps(RepairConfig(rounds=1, first=0.5), 10) == [5]
    assert round_steps(RepairConfig(rounds=0), 10) == []


def test_loss_weight_rises_and_falls_by_hand():
    c = RepairConfig(rounds=3, first=0.3, last=0.6, stop=0.9, ramp=0.1, weight=0.3)
    hand = {0: 0.0, 299: 0.0, 300: 0.0, 325: 0.075, 350: 0.15, 400: 0.3, 700: 0.3, 850: 0.15, 899: 0.003, 900: 0.0,
            999: 0.0}  # fmt: skip
    assert {s: loss_weight(c, 1000, s) for s in hand} == pytest.approx(hand)
    assert loss_weight(RepairConfig(ramp=0.0, weight=0.2), 1000, 300) == 0.2
    assert loss_weight(RepairConfig(rounds=0), 1000, 500) == 0.0


def test_orbit_circles_what_the_cameras_look_at():
    target = torch.tensor([0.5, -0.2, 0.3], dtype=torch.float64)
    a = torch.tensor([10.0, 50.0, 95.0, 140.0], dtype=torch.float64).deg2rad()
    eyes = target + torch.stack([3.0 * a.cos(), 3.0 * a.sin(), torch.full_like(a, 1.2)], -1)
    K = torch.tensor([[40.0, 0, 24], [0, 40.0, 20], [0, 0, 1]]).expand(4, 3, 3)
    cams = Cameras.create(K, look_at(eyes, target), 48, 40)
    orbit = orbit_cameras(cams, 6)
    centers = orbit.centers.double()
    rel = centers - target
    assert torch.allclose(rel[:, 2], torch.full((6,), 1.2, dtype=torch.float64), atol=1e-4)  # same height
    assert torch.allclose(rel[:, :2].norm(dim=-1), torch.full((6,), 3.0, dtype=torch.float64), atol=1e-4)
    angles = torch.atan2(rel[:, 1], rel[:, 0])
    steps = torch.remainder(angles.roll(-1) - angles, 2 * math.pi)
    assert torch.allclose(steps, torch.full((6,), math.pi / 3, dtype=torch.float64), atol=1e-4)  # evenly spaced
    uv, z = orbit.project(target.float()[None])  # every orbit camera sees the target at its principal point
    assert torch.allclose(uv[:, 0], torch.tensor([24.0, 20.0]).expand(6, 2), atol=1e-3) and bool((z > 0).all())
