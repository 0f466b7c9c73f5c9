"""Cameras: every pose convention projects analytically known points to known pixels."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from recon.cameras import Cameras, decompose_projection, intrinsics_matrix

F, CX, CY, W, H = 100.0, 64.0, 48.0, 128, 96
K = intrinsics_matrix(F, F, CX, CY)


def _rot(axis: str, angle: float) -> np.ndarray:
    c, s = math.cos(angle), math.sin(angle)
    return {
        "x": np.array([[1, 0, 0], [0, c, -s], [0, s, c]]),
        "y": np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]]),
        "z": np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]]),
    }[axis]


def _random_rotation(rng: np.random.Generator) -> np.ndarray:
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    q = q * np.sign(np.diag(r))
    return q if np.linalg.det(q) > 0 else -q


def test_opencv_c2w_projects_known_points():
    # Camera at z = -5 with identity rotation looks down +z; x right, y down.
    c2w = np.eye(4)
    c2w[2, 3] = -5.0
    cams = Cameras.from_opencv_c2w(c2w, K, W, H)
    pts = torch.tensor([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [1.0, -2.0, 5.0]])
    uv, depth = cams.project(pts)
    expected = torch.tensor(
        [[CX, CY], [CX + F / 5, CY], [CX, CY + F / 5], [CX + F / 10, CY - 2 * F / 10]]
    )
    torch.testing.assert_close(uv[0], expected, atol=1e-4, rtol=0)
    torch.testing.assert_close(depth[0], torch.tensor([5.0, 5.0, 5.0, 10.0]))
    torch.testing.assert_close(cams.centers[0], torch.tensor([0.0, 0.0, -5.0]))


def test_opengl_c2w_projects_known_points():
    # OpenGL camera at z = +5, identity rotation: looks down -z with y up, so world +y is image up.
    c2w = np.eye(4)
    c2w[2, 3] = 5.0
    cams = Cameras.from_opengl_c2w(c2w, K, W, H)
    uv, depth = cams.project(torch.tensor([[1.0, 1.0, 0.0], [0.0, 0.0, -5.0]]))
    torch.testing.assert_close(
        uv[0], torch.tensor([[CX + F / 5, CY - F / 5], [CX, CY]]), atol=1e-4, rtol=0
    )
    torch.testing.assert_close(depth[0], torch.tensor([5.0, 10.0]))
    torch.testing.assert_close(
        cams.opengl_c2w()[0].double(), torch.as_tensor(c2w), atol=1e-6, rtol=0
    )


def test_opengl_c2w_rotated_camera_looks_at_origin():
    # Camera on +x axis at distance 4, turned to look at the origin (rotation about y by +90 deg
    # maps the OpenGL back axis +z to +x).
    c2w = np.eye(4)
    c2w[:3, :3] = _rot("y", math.pi / 2)
    c2w[:3, 3] = [4.0, 0.0, 0.0]
    cams = Cameras.from_opengl_c2w(c2w, K, W, H)
    # Origin at the centre; world +y up in the image; world -z (camera's right side) to the right.
    uv, depth = cams.project(torch.tensor([[0.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, -1.0]]))
    expected = torch.tensor([[CX, CY], [CX, CY - F / 4], [CX + F / 4, CY]])
    torch.testing.assert_close(uv[0], expected, atol=1e-4, rtol=0)
    torch.testing.assert_close(depth[0], torch.full((3,), 4.0))


def test_llff_pose_matches_opengl():
    # LLFF columns are (down, right, back): the same camera as the OpenGL one at z = +5.
    down, right, back, t = [0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, 0.0, 5.0]
    pose = np.stack([down, right, back, t], axis=1)[None]  # [1, 3, 4]
    cams = Cameras.from_llff(pose, K, W, H)
    uv, _ = cams.project(torch.tensor([[1.0, 1.0, 0.0]]))
    torch.testing.assert_close(uv[0], torch.tensor([[CX + F / 5, CY - F / 5]]), atol=1e-4, rtol=0)


@pytest.mark.parametrize("scale", [1.0, 0.01, -3.0])
def test_from_projection_projects_like_P(scale: float):
    rng = np.random.default_rng(1)
    R, t = _random_rotation(rng), np.array([0.1, -0.2, 6.0])
    P = scale * K @ np.hstack([R, t[:, None]])
    cams = Cameras.from_projection(P[None], W, H)
    X = rng.uniform(-1, 1, size=(20, 3))
    Xh = np.hstack([X, np.ones((20, 1))])
    ref = Xh @ P.T
    ref = ref[:, :2] / ref[:, 2:]
    uv, depth = cams.project(torch.as_tensor(X, dtype=torch.float32))
    np.testing.assert_allclose(uv[0].numpy(), ref, atol=1e-3)
    assert bool((depth > 0).all()), "points in front of the camera must have positive depth"


def test_decompose_projection_round_trip():
    rng = np.random.default_rng(0)
    for _ in range(20):
        Kr = intrinsics_matrix(*rng.uniform(50, 3000, 2), *rng.uniform(0, 1000, 2))
        Kr[0, 1] = rng.uniform(-2, 2)  # small skew survives
        R, t = _random_rotation(rng), rng.normal(size=3) * 5
        s = rng.uniform(0.1, 10) * rng.choice([-1.0, 1.0])
        K2, view = decompose_projection(s * Kr @ np.hstack([R, t[:, None]]))
        np.testing.assert_allclose(K2, Kr, rtol=1e-9, atol=1e-7)
        np.testing.assert_allclose(view[:3, :3], R, atol=1e-9)
        np.testing.assert_allclose(view[:3, 3], t, atol=1e-7)
        np.testing.assert_allclose(view[3], [0, 0, 0, 1])


def test_rescale_and_with_sizes_keep_pixel_geometry():
    c2w = np.eye(4)
    c2w[:3, 3] = [0.3, -0.2, -4.0]
    cams = Cameras.from_opencv_c2w(c2w, K, W, H)
    pts = torch.tensor([[0.5, 0.25, 1.0], [-1.0, 0.7, 0.0]])
    uv, _ = cams.project(pts)
    # Box downscale by 4: pixel (i+0.5)*4 of the full image is the centre of pixel i.
    small = cams.rescale(4)
    assert (small.width, small.height) == (W // 4, H // 4)
    torch.testing.assert_close(small.project(pts)[0], uv / 4)
    resized = cams.with_sizes(W * 2, H * 3)
    torch.testing.assert_close(resized.project(pts)[0], uv * torch.tensor([2.0, 3.0]))


def test_indexing_and_centers():
    c2ws = np.tile(np.eye(4), (3, 1, 1))
    c2ws[:, :3, 3] = [[1, 2, 3], [4, 5, 6], [7, 8, 9]]
    cams = Cameras.from_opengl_c2w(c2ws, np.tile(K, (3, 1, 1)), [10, 20, 30], 5)
    sub = cams[[2, 0]]
    torch.testing.assert_close(sub.centers, torch.tensor([[7.0, 8, 9], [1, 2, 3]]))
    assert sub.widths.tolist() == [30, 10]
    with pytest.raises(ValueError):
        _ = cams.width  # mixed sizes have no common width
