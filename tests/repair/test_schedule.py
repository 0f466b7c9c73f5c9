"""Repair rounds: when they start, where their cameras go, the loss weight (hand values), the orbit."""

from __future__ import annotations

import math

import pytest
import torch

from recon.cameras import Cameras
from recon.config import RepairConfig
from recon.data.synthetic import look_at
from recon.repair.rounds import RepairRounds
from recon.repair.schedule import (
    AUTO_TILT_MAX,
    loss_weight,
    neighbour_angle,
    object_centred,
    orbit_between,
    orbit_beyond,
    orbit_cameras,
    orbit_tilted,
    round_at,
    round_fraction,
    round_steps,
)
from recon.repair.source import between_cameras, neighbour_pairs


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


TARGET = torch.tensor([0.5, -0.2, 0.3], dtype=torch.float64)
K4 = torch.tensor([[40.0, 0, 24], [0, 40.0, 20], [0, 0, 1]]).expand(4, 3, 3)


def _arc(degrees=(10.0, 50.0, 95.0, 140.0)) -> Cameras:
    """Four cameras 3 from the z axis through TARGET, 1.2 above it, looking at it."""
    a = torch.tensor(degrees, dtype=torch.float64).deg2rad()
    eyes = TARGET + torch.stack([3.0 * a.cos(), 3.0 * a.sin(), torch.full_like(a, 1.2)], -1)
    return Cameras.create(K4, look_at(eyes, TARGET), 48, 40)


def _cylindrical(cams: Cameras) -> torch.Tensor:
    rel = cams.centers.double() - TARGET
    return torch.stack([torch.atan2(rel[:, 1], rel[:, 0]).rad2deg(), rel[:, :2].norm(dim=-1), rel[:, 2]], -1)


def test_orbit_between_moves_on_the_circle_not_the_chord():
    cams = _arc()
    pairs = neighbour_pairs(cams)
    mid = _cylindrical(orbit_between(cams, (0.5,)))  # [pairs, 3]: azimuth (deg), radius, height
    hand = torch.tensor([(10.0, 50.0, 95.0, 140.0)[i] / 2 + (10.0, 50.0, 95.0, 140.0)[j] / 2 for i, j in pairs])
    assert torch.allclose(mid[:, 0], hand.double(), atol=1e-3)  # halfway round the axis
    assert torch.allclose(mid[:, 1:], torch.tensor([3.0, 1.2], dtype=torch.float64).expand(len(pairs), 2), atol=1e-4)
    chord = _cylindrical(between_cameras(cams, (0.5,)))
    assert bool((chord[:, 1] < 3.0 - 1e-2).all())  # the straight line cuts inside the circle
    ends = _cylindrical(orbit_between(cams, (0.0,)))  # t = 0 puts each camera back where it was
    assert torch.allclose(ends, _cylindrical(cams)[[i for i, _ in pairs]], atol=1e-4)
    uv, z = orbit_between(cams, (0.25, 0.75)).project(TARGET.float()[None])  # and they look at the centre
    assert torch.allclose(uv[:, 0], torch.tensor([24.0, 20.0]).expand(len(uv), 2), atol=1e-3) and bool((z > 0).all())


def test_orbit_between_takes_the_shorter_way_across_the_seam():
    mid = _cylindrical(orbit_between(_arc((170.0, -170.0, 100.0, 60.0)), (0.5,)))
    assert bool((mid[:, 0].abs() > 60).all())  # 170 and -170 meet at 180, not at 0
    assert torch.allclose(mid[:, 1], torch.full((len(mid),), 3.0, dtype=torch.float64), atol=1e-4)


def test_object_centred_tells_object_captures_from_forward_facing_ones():
    assert object_centred(_arc())
    eyes = torch.tensor([[x, 0.1 * x * x, 0.0] for x in (-0.3, -0.1, 0.1, 0.3)], dtype=torch.float64)
    forward = Cameras.create(
        K4, look_at(eyes, eyes + torch.tensor([0.0, 0.0, 5.0], dtype=torch.float64), (0.0, 1.0, 0.0)), 48, 40
    )
    assert not object_centred(forward)  # parallel axes: no common centre in front of them all
    assert not object_centred(_arc()[:1])
    a = _arc((10.0, 12.0, 14.0, 16.0))
    assert not object_centred(a, min_spread_deg=10.0) and object_centred(a, min_spread_deg=5.0)  # 6 degrees apart


@pytest.mark.parametrize("orbit, capture, on_circle", [(-1, True, True), (-1, False, False), (0, True, False)])
def test_rounds_put_object_captures_on_the_orbit(orbit, capture, on_circle):
    cams = _arc()
    rounds = RepairRounds(
        RepairConfig(orbit=orbit, orbit_tilt=0.0),
        100,
        0,
        lambda step: None,
        None,
        cams,
        [],
        None,
        lambda line: None,
        object_capture=capture,
    )
    radius = _cylindrical(rounds.cameras_for_round(0))[:, 1]
    assert torch.allclose(radius, torch.full_like(radius, 3.0), atol=1e-4) == on_circle
    auto = RepairRounds(RepairConfig(), 100, 0, lambda step: None, None, cams, [], None, lambda line: None)
    assert auto.on_orbit  # decided from the cameras when not told


def test_orbit_beyond_goes_past_the_ends_of_the_arc():
    cams = _arc()  # 10, 50, 95, 140 degrees: ends 10 (inner gap 40) and 140 (inner gap 45)
    out = _cylindrical(orbit_beyond(cams, 0.5))
    assert torch.allclose(out[:, 0], torch.tensor([10.0 - 20.0, 140.0 + 22.5], dtype=torch.float64), atol=1e-3)
    assert torch.allclose(out[:, 1:], torch.tensor([3.0, 1.2], dtype=torch.float64).expand(2, 2), atol=1e-4)
    far = _cylindrical(orbit_beyond(_arc((0.0, 100.0, 160.0, 220.0)), 5.0))  # widest gap 220 -> 360: 70 past each
    assert torch.allclose(far[:, 0], torch.tensor([0.0 - 70.0, 220.0 + 70.0 - 360.0], dtype=torch.float64), atol=1e-3)
    uv, _ = orbit_beyond(cams, 1.0).project(TARGET.float()[None])
    assert torch.allclose(uv[:, 0], torch.tensor([24.0, 20.0]).expand(2, 2), atol=1e-3)


def test_rounds_add_the_cameras_beyond_the_arc_farther_each_round():
    cams = _arc()
    config = RepairConfig(rounds=2, farthest=0.5, orbit_beyond=1.0, orbit_tilt=0.0)
    rounds = RepairRounds(config, 100, 0, lambda step: None, None, cams, [], None, print, object_capture=True)
    plain = RepairRounds(RepairConfig(rounds=2, farthest=0.5, orbit_tilt=0.0), 100, 0, lambda step: None, None, cams, [], None, print)
    for k, t in ((0, 0.25), (1, 0.5)):
        got, base = rounds.cameras_for_round(k), plain.cameras_for_round(k)
        assert len(got) == len(base) + 2 and torch.allclose(got.viewmats[: len(base)], base.viewmats, atol=1e-6)
        assert torch.allclose(got.viewmats[len(base) :], orbit_beyond(cams, 2 * t).viewmats, atol=1e-6)


def test_orbit_tilted_moves_each_camera_up_and_down_on_its_sphere():
    cams = _arc()  # elevation atan2(1.2, 3) above the centre, distance hypot(3, 1.2)
    out = _cylindrical(orbit_tilted(cams, 10.0))  # [8, 3]: 4 raised, then 4 lowered
    dist, e0 = math.hypot(3.0, 1.2), math.atan2(1.2, 3.0)
    for rows, e in ((out[:4], e0 + math.radians(10)), (out[4:], e0 - math.radians(10))):
        assert torch.allclose(rows[:, 0], _cylindrical(cams)[:, 0], atol=1e-3)  # same azimuths
        assert torch.allclose(rows[:, 1], torch.full((4,), dist * math.cos(e), dtype=torch.float64), atol=1e-4)
        assert torch.allclose(rows[:, 2], torch.full((4,), dist * math.sin(e), dtype=torch.float64), atol=1e-4)
    uv, z = orbit_tilted(cams, 10.0).project(TARGET.float()[None])
    assert torch.allclose(uv[:, 0], torch.tensor([24.0, 20.0]).expand(8, 2), atol=1e-3) and bool((z > 0).all())
    rounds = RepairRounds(RepairConfig(rounds=2, orbit_tilt=20.0), 100, 0, lambda step: None, None, cams, [], None,
                          print, object_capture=True)  # fmt: skip
    last = rounds.cameras_for_round(1)  # farthest round: the whole tilt
    assert torch.allclose(last.viewmats[-8:], orbit_tilted(cams, 20.0).viewmats, atol=1e-6)


def test_automatic_tilt_is_the_angle_between_neighbouring_cameras_at_most_45_degrees():
    cams = _arc((10.0, 40.0, 75.0, 115.0))  # gaps 30, 35, 40: each camera's nearest is the previous one
    hand = [math.degrees(math.acos((9 * math.cos(math.radians(d)) + 1.44) / 10.44)) for d in (30, 35, 40)]
    assert neighbour_angle(cams) == pytest.approx(sum(hand) / 3, abs=1e-4)  # directions from TARGET, 1.2 up
    assert sum(hand) / 3 < AUTO_TILT_MAX == 45.0
    rounds = RepairRounds(RepairConfig(rounds=2, orbit_tilt=-1), 100, 0, lambda step: None, None, cams, [], None,
                          print, object_capture=True)  # fmt: skip
    assert rounds.tilt == pytest.approx(sum(hand) / 3)
    wide = _arc((0.0, 90.0, 180.0, 270.0))  # four views of a 360-degree capture, 82 degrees apart seen from TARGET
    assert neighbour_angle(wide) > 80
    capped = RepairRounds(RepairConfig(rounds=2, orbit_tilt=-1), 100, 0, lambda step: None, None, wide, [], None,
                          print, object_capture=True)  # fmt: skip
    assert capped.tilt == AUTO_TILT_MAX
    assert torch.allclose(capped.cameras_for_round(1).viewmats[-8:], orbit_tilted(wide, AUTO_TILT_MAX).viewmats, atol=1e-6)
    assert torch.allclose(rounds.cameras_for_round(1).viewmats[-8:], orbit_tilted(cams, rounds.tilt).viewmats, atol=1e-6)
    flat = RepairRounds(RepairConfig(orbit_tilt=-1), 100, 0, lambda step: None, None, cams, [], None, print,
                        object_capture=False)  # fmt: skip
    assert len(flat.cameras_for_round(0)) == len(neighbour_pairs(cams)) * 2  # not an object: no tilt
