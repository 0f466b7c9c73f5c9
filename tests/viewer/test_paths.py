"""Camera paths: interpolation, JSON files, and the default orbit / spiral paths."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from recon.errors import ConfigError
from recon.geometry import quat_to_rotmat_np
from viewer.cameras import ViewPose, look_at_pose, pose_to_cameras
from viewer.paths import CameraPath, focus_point, interpolate, orbit_path, slerp, spiral_path

Rotation = pytest.importorskip("scipy.spatial.transform").Rotation
Slerp = pytest.importorskip("scipy.spatial.transform").Slerp


def _ring(n: int = 8, radius: float = 3.0, height: float = 1.0, centre=(0.5, -0.2, 0.1)):
    centre = np.asarray(centre)
    poses = [look_at_pose(centre + [radius * math.cos(a), radius * math.sin(a), height], centre,
                          np.array([0.0, 0.0, 1.0]), 0.8)
             for a in np.linspace(0, 2 * math.pi, n, endpoint=False)]
    return pose_to_cameras(poses, 64, 48), centre


def _keys(n: int, seed: int = 0) -> list[ViewPose]:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        q = rng.normal(size=4)
        out.append(ViewPose(q / np.linalg.norm(q), rng.normal(size=3), float(rng.uniform(0.5, 1.0))))
    return out


def test_interpolation_passes_through_key_frames():
    keys = _keys(4)
    frames = interpolate(keys, 3 * 10 + 1)  # key k lands exactly on frame 10 k
    for k, key in enumerate(keys):
        f = frames[10 * k]
        np.testing.assert_allclose(f.position, key.position, atol=1e-9)
        np.testing.assert_allclose(quat_to_rotmat_np(f.wxyz), quat_to_rotmat_np(key.wxyz), atol=1e-9)
        assert f.fov == pytest.approx(key.fov)


def test_two_key_frames_midpoint_and_slerp_match_scipy():
    keys = _keys(2, seed=1)
    frames = interpolate(keys, 5)
    np.testing.assert_allclose(frames[2].position, 0.5 * (keys[0].position + keys[1].position),
                               atol=1e-9)
    rots = Rotation.from_quat(np.stack([np.roll(k.wxyz, -1) for k in keys]))  # scipy: xyzw
    oracle = Slerp([0.0, 1.0], rots)([0.25, 0.5, 0.75]).as_matrix()
    for i, t in enumerate([0.25, 0.5, 0.75]):
        np.testing.assert_allclose(quat_to_rotmat_np(frames[i + 1].wxyz), oracle[i], atol=1e-9)
        np.testing.assert_allclose(quat_to_rotmat_np(slerp(keys[0].wxyz, keys[1].wxyz, t)),
                                   oracle[i], atol=1e-9)


def test_loop_closes_smoothly():
    keys = _keys(3, seed=2)
    frames = interpolate(keys, 30, loop=True)
    assert len(frames) == 30
    # frame 10 is key 1, frame 20 key 2; the last step heads back to key 0.
    np.testing.assert_allclose(frames[10].position, keys[1].position, atol=1e-9)
    step_last = np.linalg.norm(frames[-1].position - keys[0].position)
    step_typ = np.median([np.linalg.norm(frames[i + 1].position - frames[i].position) for i in range(29)])
    assert step_last < 4 * step_typ


def test_json_round_trip(tmp_path):
    path = CameraPath(keyframes=_keys(3), fps=24.0, seconds=2.5, loop=True, width=320, height=200)
    file = path.save(tmp_path / "sub" / "path.json")
    loaded = CameraPath.load(file)
    assert (loaded.fps, loaded.seconds, loaded.loop, loaded.width, loaded.height) == (24.0, 2.5, True, 320, 200)
    assert loaded.num_frames == 60
    for a, b in zip(path.keyframes, loaded.keyframes):
        np.testing.assert_allclose(a.position, b.position)
        np.testing.assert_allclose(a.wxyz, b.wxyz)
    cams = loaded.cameras(7)
    assert len(cams) == 7 and cams.width == 320 and cams.height == 200


@pytest.mark.parametrize("edit,message", [
    (lambda d: d.update(extra=1), "unknown keys"),
    (lambda d: d.update(version=9), "unsupported version"),
    (lambda d: d.update(keyframes=[]), "no key frames"),
    (lambda d: d["keyframes"][0].update(fov=4.0), "fov"),
    (lambda d: d["keyframes"][0].pop("wxyz"), "malformed"),
])
def test_loader_rejects_bad_files(tmp_path, edit, message):
    data = CameraPath(keyframes=_keys(2)).to_json()
    edit(data)
    file = tmp_path / "p.json"
    file.write_text(json.dumps(data))
    with pytest.raises(ConfigError, match=message) as err:
        CameraPath.load(file)
    assert "p.json" in str(err.value)


def test_loader_missing_and_garbage(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        CameraPath.load(tmp_path / "nope.json")
    (tmp_path / "g.json").write_text("{not json")
    with pytest.raises(ConfigError, match="JSON"):
        CameraPath.load(tmp_path / "g.json")


def test_focus_point_of_a_ring_is_its_centre():
    cams, centre = _ring()
    np.testing.assert_allclose(focus_point(cams), centre, atol=1e-4)


def test_orbit_circles_the_focus_and_looks_at_it():
    cams, centre = _ring(radius=3.0, height=1.0)
    poses = orbit_path(cams, 24)
    assert len(poses) == 24
    pos = np.stack([p.position for p in poses])
    np.testing.assert_allclose(pos[:, 2], centre[2] + 1.0, atol=1e-4)  # mean height kept
    np.testing.assert_allclose(np.linalg.norm(pos[:, :2] - centre[:2], axis=-1), 3.0, atol=1e-4)
    uv, _ = pose_to_cameras(poses, 64, 48).project(torch.as_tensor(centre[None], dtype=torch.float32))
    np.testing.assert_allclose(uv[:, 0].numpy(), np.tile([32.0, 24.0], (24, 1)), atol=1e-2)
    # Consecutive frames are evenly spaced around the full circle.
    steps = np.linalg.norm(np.diff(pos, axis=0), axis=-1)
    np.testing.assert_allclose(steps, 2 * 3.0 * math.sin(math.pi / 24), rtol=1e-4)


def test_spiral_stays_near_forward_facing_cameras():
    # Forward-facing rig: cameras on a small grid all looking down +z at a scene 5 units away.
    target = np.array([0.0, 0.0, 5.0])
    poses = [look_at_pose(np.array([x, y, 0.0]), target + [x, y, 0.0], np.array([0.0, -1.0, 0.0]), 0.8)
             for x in (-0.2, 0.0, 0.2) for y in (-0.1, 0.1)]
    cams = pose_to_cameras(poses, 64, 48)
    spiral = spiral_path(cams, 40)
    pos = np.stack([p.position for p in spiral])
    assert np.abs(pos[:, 0]).max() <= 0.2 + 1e-6 and np.abs(pos[:, 1]).max() <= 0.1 + 1e-6
    assert np.ptp(pos[:, 0]) > 0.3  # it actually moves
    focus = focus_point(cams)
    uv, z = pose_to_cameras(spiral, 64, 48).project(torch.as_tensor(focus[None], dtype=torch.float32))
    assert bool((z > 0).all())
    np.testing.assert_allclose(uv[:, 0].numpy(), np.tile([32.0, 24.0], (40, 1)), atol=1e-2)
