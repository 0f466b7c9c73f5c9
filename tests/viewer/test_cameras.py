"""Camera conversion between viser's client camera and recon's Cameras.

Oracle: viser's own ``transforms.SO3``/``SE3`` and its documented convention
(``P_world = R(wxyz) p_camera + position``, OpenCV camera axes, vertical fov like three.js).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from recon.geometry import quat_to_rotmat_np, rotmat_to_quat_np
from viewer.cameras import ViewPose, cameras_to_poses, fit_resolution, look_at_pose, pose_to_cameras

tf = pytest.importorskip("viser.transforms")


def _random_quats(n: int, seed: int = 0) -> np.ndarray:
    q = np.random.default_rng(seed).normal(size=(n, 4))
    return q / np.linalg.norm(q, axis=-1, keepdims=True)


def test_quaternion_matches_viser_so3():
    for q in _random_quats(20):
        np.testing.assert_allclose(quat_to_rotmat_np(q), tf.SO3(q).as_matrix(), atol=1e-12)
        back = rotmat_to_quat_np(tf.SO3(q).as_matrix())
        assert min(np.abs(back - q).max(), np.abs(back + q).max()) < 1e-10


def test_matrix_to_quat_all_branches():
    # 180-degree turns about each axis exercise the non-trace branches of Shepperd's method.
    for R in (np.diag([1.0, -1, -1]), np.diag([-1.0, 1, -1]), np.diag([-1.0, -1, 1]), np.eye(3)):
        np.testing.assert_allclose(quat_to_rotmat_np(rotmat_to_quat_np(R)), R, atol=1e-12)


@pytest.mark.parametrize("width,height", [(640, 480), (300, 500)])
def test_point_lands_where_viser_convention_says(width, height):
    rng = np.random.default_rng(1)
    for q in _random_quats(5, seed=2):
        position = rng.normal(size=3)
        fov = 0.9
        # World points in front of the camera, built in viser's camera frame.
        p_cam = np.concatenate([rng.uniform(-0.5, 0.5, (10, 2)), rng.uniform(1, 5, (10, 1))], 1)
        p_world = (tf.SE3.from_rotation_and_translation(tf.SO3(q), position) @ p_cam)
        f = 0.5 * height / math.tan(0.5 * fov)  # three.js: fov spans the image height
        expected = np.stack([f * p_cam[:, 0] / p_cam[:, 2] + width / 2,
                             f * p_cam[:, 1] / p_cam[:, 2] + height / 2], -1)
        cams = pose_to_cameras(ViewPose(q, position, fov), width, height)
        import torch

        uv, z = cams.project(torch.as_tensor(p_world, dtype=torch.float32))
        np.testing.assert_allclose(uv[0].numpy(), expected, atol=2e-3 * width)
        np.testing.assert_allclose(z[0].numpy(), p_cam[:, 2], rtol=1e-5)


def test_optical_axis_hits_image_centre():
    pose = look_at_pose(np.array([2.0, -1.0, 3.0]), np.zeros(3), np.array([0.0, 0.0, 1.0]), 0.7)
    cams = pose_to_cameras(pose, 200, 100)
    import torch

    uv, z = cams.project(torch.zeros(1, 3))
    np.testing.assert_allclose(uv[0, 0].numpy(), [100.0, 50.0], atol=1e-3)
    assert float(z[0, 0]) == pytest.approx(math.sqrt(14.0), rel=1e-5)
    # A point above the target (world +z = up) appears above the centre (smaller v).
    uv_up, _ = cams.project(torch.tensor([[0.0, 0.0, 0.5]]))
    assert float(uv_up[0, 0, 1]) < 50.0


def test_cameras_to_poses_round_trip():
    poses = [ViewPose(q, np.random.default_rng(i).normal(size=3), 0.5 + 0.1 * i)
             for i, q in enumerate(_random_quats(4, seed=3))]
    cams = pose_to_cameras(poses, 320, 240)
    back = cameras_to_poses(cams)
    for a, b in zip(poses, back):
        np.testing.assert_allclose(quat_to_rotmat_np(b.wxyz), quat_to_rotmat_np(a.wxyz), atol=1e-5)
        np.testing.assert_allclose(b.position, a.position, atol=1e-5)
        assert b.fov == pytest.approx(a.fov, rel=1e-5)


def test_fit_resolution():
    assert fit_resolution(16 / 9, 512) == (512, 288)
    assert fit_resolution(0.5, 400) == (200, 400)
    assert fit_resolution(float("nan"), 100) == (100, 100)
