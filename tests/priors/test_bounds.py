"""Per-view depth bounds for the plane sweep (recon.priors.bounds)."""

from __future__ import annotations

import numpy as np
import torch

from recon.priors.bounds import depth_bounds


def _look_at(centre, target) -> torch.Tensor:
    """[4, 4] OpenCV world-to-camera of a camera at ``centre`` looking at ``target``."""
    c, t = np.asarray(centre, float), np.asarray(target, float)
    z = (t - c) / np.linalg.norm(t - c)
    up = np.array([0.0, 1.0, 0.0]) if abs(z[1]) < 0.9 else np.array([1.0, 0.0, 0.0])
    x = np.cross(up, z)
    x /= np.linalg.norm(x)
    y = np.cross(z, x)
    R = np.stack([x, y, z])  # rows: camera axes in world coordinates
    vm = np.eye(4)
    vm[:3, :3], vm[:3, 3] = R, -R @ c
    return torch.from_numpy(vm)


def _percentile_bounds(depths: np.ndarray, margin: float) -> np.ndarray:
    """The documented rule, computed independently: 1st/99th percentile widened by ``margin``."""
    lo, hi = np.quantile(depths, [0.01, 0.99])
    return np.array([lo * (1 - margin), hi * (1 + margin)])


def test_bounds_ignore_points_behind_the_camera():
    rng = np.random.default_rng(0)
    front = np.c_[rng.uniform(-0.5, 0.5, (200, 2)), rng.uniform(2.0, 4.0, 200)]  # depths 2..4
    behind = np.c_[rng.uniform(-3, 3, (2000, 2)), rng.uniform(-9.0, -0.01, 2000)]
    pts = torch.from_numpy(np.concatenate([front, behind]))
    b = depth_bounds(torch.eye(4)[None].double(), pts, margin=0.2)
    np.testing.assert_allclose(b[0].numpy(), _percentile_bounds(front[:, 2], 0.2), rtol=1e-5)


def test_view_without_points_in_front_takes_its_neighbours_bounds():
    # A 360-degree ring around an object at the origin; camera 3 was misregistered facing away.
    rng = np.random.default_rng(1)
    pts = rng.normal(0.0, 0.3, (500, 3))
    ring = [(3 * np.cos(a), 0.2, 3 * np.sin(a)) for a in np.linspace(0, 2 * np.pi, 8, endpoint=False)]
    vms = [_look_at(c, (0, 0, 0)) for c in ring]
    vms[3] = _look_at(ring[3], 2 * np.asarray(ring[3]))  # looks outwards: every point is behind it
    viewmats = torch.stack(vms)
    b = depth_bounds(viewmats, torch.from_numpy(pts), margin=0.2).double().numpy()
    assert (b[:, 0] > 0).all() and (b[:, 1] > b[:, 0]).all()
    for i in (0, 2, 4):  # views with points: their own percentiles
        z = pts @ viewmats[i, 2, :3].numpy() + viewmats[i, 2, 3].numpy()
        np.testing.assert_allclose(b[i], _percentile_bounds(z[z > 0], 0.2), rtol=1e-5)
    # view 3: the nearest view with points (2 and 4 are equally near; the first wins), widened by the distance
    d = np.linalg.norm(np.asarray(ring[3]) - np.asarray(ring[2]))
    far = b[2, 1] + d
    np.testing.assert_allclose(b[3], [max(b[2, 0] - d, 1e-3 * far), far], rtol=1e-5)
    # the widened range contains every point's distance from camera 3 (what a plane sweep facing
    # the object would need)
    dist = np.linalg.norm(pts - np.asarray(ring[3]), axis=1)
    assert b[3, 0] <= np.quantile(dist, 0.01) and b[3, 1] >= np.quantile(dist, 0.99)


def test_bounds_without_points_stay_positive_when_the_focus_is_behind_a_view():
    # Two opposite cameras of a 6-camera ring face outwards: the mean viewing direction cancels,
    # the focus point falls back to the ring centre (depth 3 for the inward views, -3 behind the
    # outward ones, which used to give negative bounds).
    ring = [(3 * np.cos(a), 0.0, 3 * np.sin(a)) for a in np.linspace(0, 2 * np.pi, 6, endpoint=False)]
    vms = [_look_at(c, (0, 0, 0)) for c in ring]
    for i in (0, 3):
        vms[i] = _look_at(ring[i], 2 * np.asarray(ring[i]))
    b = depth_bounds(torch.stack(vms)).double().numpy()
    assert (b[:, 0] > 0).all() and (b[:, 1] > b[:, 0]).all()
    for i in (1, 2, 4, 5):
        np.testing.assert_allclose(b[i], [1.0, 9.0], rtol=1e-5)  # a third to three times depth 3
    for i in (0, 3):  # the nearest inward neighbour (60 degrees away on a radius-3 ring: d = 3)
        np.testing.assert_allclose(b[i], [1e-3 * 12.0, 12.0], rtol=1e-5)
