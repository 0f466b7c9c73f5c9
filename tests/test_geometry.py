"""recon.geometry: quaternion rotations against the matrix exponential of the axis-angle form."""

from __future__ import annotations

import math

import torch

from recon.geometry import normalize_quats, quat_to_rotmat, random_quats, random_rotations


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
