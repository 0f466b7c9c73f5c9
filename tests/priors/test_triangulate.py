"""Triangulation on known poses: epipolar matching, and DTU's 3-view protocol against its masks."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from recon.priors.triangulate import epipolar_match, fundamental_from_poses

pycolmap = pytest.importorskip("pycolmap")


def _look_at(eye: np.ndarray) -> np.ndarray:
    """[4, 4] world-to-camera (OpenCV) pose looking from ``eye`` at the origin."""
    z = -eye / np.linalg.norm(eye)
    x = np.cross([0.0, 1.0, 0.0], z)
    x /= np.linalg.norm(x)
    R = np.stack([x, np.cross(z, x), z])
    vm = np.eye(4)
    vm[:3, :3], vm[:3, 3] = R, -R @ eye
    return vm


def _project(K, vm, X):
    x = (X @ vm[:3, :3].T + vm[:3, 3]) @ K.T
    return x[:, :2] / x[:, 2:]


def test_fundamental_and_epipolar_match():
    rng = np.random.default_rng(0)
    K = np.array([[300.0, 0, 160], [0, 300, 120], [0, 0, 1]])
    vm1, vm2 = _look_at(np.array([0.0, 0.0, -4.0])), _look_at(np.array([2.5, 0.5, -3.0]))
    X = rng.uniform(-1, 1, (200, 3))
    x1, x2 = _project(K, vm1, X), _project(K, vm2, X)
    F = fundamental_from_poses(K, vm1, K, vm2)
    residual = np.einsum("ni,ij,nj->n", np.c_[x2, np.ones(200)], F, np.c_[x1, np.ones(200)])
    assert np.abs(residual).max() < 1e-9

    desc = rng.uniform(0, 1, (200, 128)).astype(np.float32)
    noisy = desc + 0.05 * rng.standard_normal(desc.shape).astype(np.float32)
    perm = rng.permutation(200)  # view 2 lists its features in another order
    m = epipolar_match(x1, desc, x2[perm], noisy[perm], F)
    assert len(m) == 200 and np.array_equal(perm[m[:, 1]], m[:, 0])

    # A perfect descriptor twin far from the epipolar line is never a candidate ...
    lines = np.c_[x1, np.ones(200)] @ F.T  # epipolar lines in view 2
    off = x2 + 15.0 * lines[:, :2] / np.linalg.norm(lines[:, :2], axis=1, keepdims=True)
    off = off[perm]
    m = epipolar_match(x1, desc, np.r_[x2[perm], off], np.r_[noisy[perm], desc[perm]], F)
    assert len(m) == 200 and np.array_equal(perm[m[:, 1]], m[:, 0])
    chunked = epipolar_match(x1, desc, np.r_[x2[perm], off], np.r_[noisy[perm], desc[perm]], F, chunk=7)
    assert np.array_equal(chunked, m)
    # ... while a look-alike on the line makes the match ambiguous (ratio test).
    m = epipolar_match(x1[:1], desc[:1], np.r_[x2[:1], x2[:1] + 0.2], np.r_[noisy[:1], noisy[:1]], F)
    assert len(m) == 0
    assert epipolar_match(x1, desc, x2[:0], desc[:0], F).shape == (0, 2)


def test_dtu_three_views_land_on_the_object(shared_data, tmp_path):
    """DTU scan24's 3-view protocol: COLMAP's default matching finds ~0 points; the relaxed,
    known-pose epipolar pass must give hundreds, and the object masks (never used by the
    triangulation) are the oracle: the points must project inside all three of them."""
    from recon.data.formats import load_scene
    from recon.priors.triangulate import triangulate_known_poses

    scene = load_scene(shared_data / "dtu" / "scan24", verbose=False)
    train = [25, 22, 28]
    cloud = triangulate_known_poses(scene, train, tmp_path, num_threads=2)
    report = json.loads((tmp_path / "triangulation.json").read_text())
    assert [p["pass"] for p in report["passes"]] == ["default", "relaxed"]
    assert report["passes"][0]["points"] < 100 <= report["passes"][1]["points"] == len(cloud)
    assert cloud.source == "sfm" and len(cloud) > 100

    P = cloud.points.double()
    inside = torch.ones(len(P), dtype=torch.bool)
    for i in train:
        cam = P @ scene.cameras.viewmats[i, :3, :3].double().T + scene.cameras.viewmats[i, :3, 3].double()
        uvw = cam @ scene.cameras.Ks[i].double().T
        u = (uvw[:, 0] / uvw[:, 2]).floor().long()
        v = (uvw[:, 1] / uvw[:, 2]).floor().long()
        mask = scene.masks[i]
        ok = (cam[:, 2] > 0) & (u >= 0) & (u < mask.shape[1]) & (v >= 0) & (v < mask.shape[0])
        hit = torch.zeros(len(P), dtype=torch.bool)
        hit[ok] = mask[v[ok], u[ok]] > 0.5
        inside &= hit
    assert float(inside.float().mean()) >= 0.9
