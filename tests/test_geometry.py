"""recon.geometry: quaternion rotations against the matrix exponential of the axis-angle form and scipy."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from recon.geometry import (
    normalize_quats,
    quat_to_rotmat,
    quat_to_rotmat_np,
    random_quats,
    random_rotations,
    rotmat_to_quat,
    rotmat_to_quat_np,
)


def _skew(v: torch.Tensor) -> torch.Tensor:
    """[..., 3] -> [..., 3, 3] cross-product matrices."""
    x, y, z = v.unbind(-1)
    zero = torch.zeros_like(x)
    return torch.stack([zero, -z, y, z, zero, -x, -y, x, zero], -1).reshape(v.shape[:-1] + (3, 3))


def test_quat_to_rotmat_matches_matrix_exponential_of_axis_angle():
    g = torch.Generator().manual_seed(0)
    axis = torch.nn.functional.normalize(torch.randn(64, 3, generator=g, dtype=torch.float64), dim=-1)
    angle = (torch.rand(64, generator=g, dtype=torch.float64) * 2 - 1) * math.pi
    # q = (cos a/2, sin a/2 axis), scaled arbitrarily: the function normalises first.
    q = torch.cat([torch.cos(angle / 2)[:, None], torch.sin(angle / 2)[:, None] * axis], -1)
    q = q * (0.1 + 5 * torch.rand(64, 1, generator=g, dtype=torch.float64))
    expected = torch.linalg.matrix_exp(_skew(axis * angle[:, None]))  # Rodrigues, independently
    torch.testing.assert_close(quat_to_rotmat(q), expected, rtol=0, atol=1e-12)


def test_quat_to_rotmat_keeps_leading_dims_and_sign_invariance():
    q = torch.randn(2, 5, 4, dtype=torch.float64)
    R = quat_to_rotmat(q)
    assert R.shape == (2, 5, 3, 3)
    torch.testing.assert_close(R, quat_to_rotmat(-q))  # q and -q are the same rotation
    torch.testing.assert_close(normalize_quats(q).norm(dim=-1), torch.ones(2, 5, dtype=torch.float64))


def test_random_rotations_are_proper_and_reproducible():
    R = random_rotations(100, torch.Generator().manual_seed(3))
    eye = torch.eye(3).expand(100, 3, 3)
    torch.testing.assert_close(R @ R.transpose(1, 2), eye, rtol=0, atol=1e-5)
    torch.testing.assert_close(torch.linalg.det(R), torch.ones(100), rtol=0, atol=1e-5)
    torch.testing.assert_close(R, quat_to_rotmat(random_quats(100, torch.Generator().manual_seed(3))))


def test_numpy_helpers_match_scipy_rotation():
    """The numpy variants against scipy's Rotation (scalar-last quaternions there)."""
    Rotation = pytest.importorskip("scipy.spatial.transform").Rotation
    q = np.random.default_rng(0).normal(size=(3, 50, 4)) * 3  # unnormalised, leading dims
    R = quat_to_rotmat_np(q)
    assert R.shape == (3, 50, 3, 3) and R.dtype == np.float64
    expected = Rotation.from_quat(np.roll(q.reshape(-1, 4), -1, axis=1)).as_matrix().reshape(3, 50, 3, 3)
    np.testing.assert_allclose(R, expected, rtol=0, atol=1e-12)
    # back to quaternions: 180-degree turns about each axis exercise every branch of Shepperd's method
    turns = Rotation.from_rotvec(np.pi * np.array([[1.0, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 0], [0, 1, 1]]))
    rots = Rotation.concatenate([Rotation.from_matrix(expected.reshape(-1, 3, 3)), turns, Rotation.identity()])
    oracle = np.roll(rots.as_quat(canonical=True), 1, axis=1)  # [M, 4] wxyz, w >= 0
    back = rotmat_to_quat_np(rots.as_matrix())
    sign = np.where(np.abs(oracle[:, :1]) < 1e-12, np.sign((back * oracle).sum(1, keepdims=True)), 1.0)  # w = 0: q ~ -q
    np.testing.assert_allclose(back * sign, oracle, rtol=0, atol=1e-12)
    assert (back[:, 0] >= 0).all()
    np.testing.assert_allclose(quat_to_rotmat_np(back), rots.as_matrix(), rtol=0, atol=1e-12)


def test_rotmat_to_quat_inverts_quat_to_rotmat_in_torch():
    q = normalize_quats(torch.randn(4, 6, 4, dtype=torch.float64))
    q = torch.where(q[..., :1] < 0, -q, q)
    torch.testing.assert_close(rotmat_to_quat(quat_to_rotmat(q)), q, rtol=0, atol=1e-12)
