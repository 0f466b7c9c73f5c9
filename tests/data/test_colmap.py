"""COLMAP models: ours -> ours, ours -> pycolmap, pycolmap -> ours (text and binary)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from recon.data.colmap import (
    ColmapCamera,
    model_from_cameras,
    read_model_binary,
    read_model_text,
    write_model_binary,
    write_model_text,
)
from recon.data.formats import load_scene
from recon.data.images import distort_normalized
from recon.errors import DataError
from recon.geometry import quat_to_rotmat_np, rotmat_to_quat_np

pycolmap = pytest.importorskip("pycolmap")  # the independent reader/writer (extra: priors)


def _cfw(image) -> np.ndarray:
    c = image.cam_from_world
    return (c() if callable(c) else c).matrix()


def test_quaternion_round_trip():
    rng = np.random.default_rng(0)
    for _ in range(10):
        q = rng.normal(size=4)
        q /= np.linalg.norm(q)
        q = q if q[0] >= 0 else -q
        R = quat_to_rotmat_np(q)
        np.testing.assert_allclose(R @ R.T, np.eye(3), atol=1e-12)
        np.testing.assert_allclose(rotmat_to_quat_np(R), q, atol=1e-9)


@pytest.mark.parametrize("writer", ["text", "binary"])
def test_write_read_scene_round_trip(tiny_scene, writer: str):
    s = tiny_scene
    model = model_from_cameras(s.cameras, s.names, s.points, s.colors)
    model_dir = s.root / "sparse" / "0"
    (write_model_text if writer == "text" else write_model_binary)(model, model_dir)
    scene = load_scene(s.root, verbose=False)
    assert scene.format == "colmap" and scene.names == s.names
    torch.testing.assert_close(scene.cameras.Ks, s.cameras.Ks)
    torch.testing.assert_close(scene.cameras.viewmats, s.cameras.viewmats, atol=1e-5, rtol=0)
    assert scene.cameras.widths.tolist() == s.cameras.widths.tolist()
    torch.testing.assert_close(scene.points.double(), torch.as_tensor(s.points), atol=1e-6, rtol=0)
    torch.testing.assert_close(
        scene.point_colors.double(), torch.as_tensor(s.colors), atol=1e-6, rtol=0
    )
    np.testing.assert_allclose(scene.images[3].numpy(), s.images[3] / 255.0, atol=1e-6)

    # pycolmap, an independent reader, sees the same model.
    rec = pycolmap.Reconstruction(str(model_dir))
    assert rec.num_images() == len(s.names) and rec.num_points3D() == len(s.points)
    for image in rec.images.values():
        i = s.names.index(image.name)
        np.testing.assert_allclose(
            _cfw(image), s.cameras.viewmats[i, :3].double().numpy(), atol=1e-5
        )
        K = s.cameras.Ks[i].double().numpy()
        np.testing.assert_allclose(
            rec.cameras[image.camera_id].params, [K[0, 0], K[1, 1], K[0, 2], K[1, 2]]
        )


def test_reads_model_written_by_pycolmap(shared_data: Path, tmp_path: Path):
    src = shared_data / "gtsfm_lund_door" / "set1_lund_door" / "colmap_ground_truth"
    rec = pycolmap.Reconstruction(str(src))
    (tmp_path / "bin").mkdir()
    (tmp_path / "txt").mkdir()
    rec.write_binary(str(tmp_path / "bin"))
    rec.write_text(str(tmp_path / "txt"))
    for model in (read_model_binary(tmp_path / "bin"), read_model_text(tmp_path / "txt")):
        assert set(model.images) == set(rec.images)
        for iid, image in rec.images.items():
            ours = model.images[iid]
            assert ours.name == image.name
            np.testing.assert_allclose(ours.viewmat()[:3], _cfw(image), atol=1e-6)
            assert len(ours.point3D_ids) == image.num_points2D()
        cam = model.cameras[1]
        assert cam.model == "SIMPLE_RADIAL" and (cam.width, cam.height) == (1296, 1936)
        np.testing.assert_allclose(cam.params, rec.cameras[1].params)
        assert len(model.points.ids) == rec.num_points3D() == 11384
        pid = int(model.points.ids[100])
        np.testing.assert_allclose(model.points.xyz[100], rec.points3D[pid].xyz, atol=1e-9)
        assert model.points.rgb[100].tolist() == rec.points3D[pid].color.tolist()
        assert len(model.points.tracks[100]) == rec.points3D[pid].track.length()


def test_our_binary_writer_reproduces_pycolmap_model(shared_data: Path, tmp_path: Path):
    src = shared_data / "gtsfm_lund_door" / "set1_lund_door" / "colmap_ground_truth"
    model = read_model_text(src)
    write_model_binary(model, tmp_path / "ours")
    rec = pycolmap.Reconstruction(str(tmp_path / "ours"))
    ref = pycolmap.Reconstruction(str(src))
    assert rec.num_points3D() == ref.num_points3D()
    assert rec.compute_num_observations() == ref.compute_num_observations()
    for iid in ref.images:
        np.testing.assert_allclose(_cfw(rec.images[iid]), _cfw(ref.images[iid]), atol=1e-12)


@pytest.mark.parametrize(
    "model,params",
    [
        ("SIMPLE_PINHOLE", [80.0, 40.0, 30.0]),
        ("PINHOLE", [80.0, 82.0, 40.0, 30.0]),
        ("SIMPLE_RADIAL", [80.0, 40.0, 30.0, -0.08]),
        ("RADIAL", [80.0, 40.0, 30.0, -0.08, 0.02]),
        ("OPENCV", [80.0, 82.0, 40.0, 30.0, -0.08, 0.02, 0.003, -0.001]),
    ],
)
def test_camera_models_project_like_pycolmap(model: str, params: list[float]):
    K, dist = ColmapCamera(1, model, 80, 60, np.array(params)).intrinsics()
    ref_cam = pycolmap.Camera(model=model, width=80, height=60, params=params)
    pts = np.random.default_rng(1).uniform([-0.4, -0.3, 1.0], [0.4, 0.3, 2.0], size=(25, 3))
    ref = ref_cam.img_from_cam(pts)
    xy = distort_normalized(torch.as_tensor(pts[:, :2] / pts[:, 2:]), torch.as_tensor(dist)).numpy()
    ours = np.stack([K[0, 0] * xy[:, 0] + K[0, 2], K[1, 1] * xy[:, 1] + K[1, 2]], axis=-1)
    np.testing.assert_allclose(ours, ref, atol=1e-9)


def test_radial_scene_is_undistorted_on_load(tiny_scene):
    s = tiny_scene
    model = model_from_cameras(s.cameras, s.names)
    for cam in model.cameras.values():  # turn every camera into a distorted OPENCV camera
        cam.model, cam.params = "OPENCV", np.concatenate([cam.params, [-0.2, 0.05, 0.0, 0.0]])
    write_model_binary(model, s.root / "sparse")
    scene = load_scene(s.root, verbose=False)
    assert scene.cameras.dist is None  # images were resampled to the ideal pinhole
    torch.testing.assert_close(scene.cameras.Ks, s.cameras.Ks)
    centre = (slice(10, 14), slice(14, 18))  # barely moved by the distortion near the centre
    np.testing.assert_allclose(
        scene.images[0][centre].numpy(), s.images[0][centre] / 255.0, atol=0.25
    )
    assert not np.allclose(scene.images[0].numpy(), s.images[0] / 255.0, atol=1e-3)


def test_pincushion_scene_zooms_in_without_blank_border(tiny_scene):
    s = tiny_scene
    model = model_from_cameras(s.cameras, s.names)
    for cam in model.cameras.values():
        cam.model, cam.params = "OPENCV", np.concatenate([cam.params, [0.3, 0.0, 0.0, 0.0]])
    write_model_text(model, s.root / "sparse" / "0")
    scene = load_scene(s.root, verbose=False)
    zoom = scene.cameras.Ks[:, 0, 0] / s.cameras.Ks[:, 0, 0]
    assert bool((zoom > 1.01).all())
    torch.testing.assert_close(scene.cameras.Ks[:, 1, 1] / s.cameras.Ks[:, 1, 1], zoom)
    torch.testing.assert_close(scene.cameras.Ks[:, :2, 2], s.cameras.Ks[:, :2, 2])
    for img in scene.images:  # random non-black input: a blank (zero) pixel means a hole
        assert float(img.amax(dim=-1).min()) > 0.0


def test_unsupported_model_and_truncated_file_are_data_errors(tiny_scene):
    s = tiny_scene
    model = model_from_cameras(s.cameras, s.names)
    model.cameras[1].model = "OPENCV_FISHEYE"
    model.cameras[1].params = np.concatenate([model.cameras[1].params, np.zeros(4)])
    write_model_binary(model, s.root / "sparse" / "0")
    with pytest.raises(
        DataError, match=r"sparse/0: camera 1 uses the unsupported model OPENCV_FISHEYE"
    ):
        load_scene(s.root, verbose=False)
    data = (s.root / "sparse" / "0" / "images.bin").read_bytes()
    (s.root / "sparse" / "0" / "images.bin").write_bytes(data[:100])
    with pytest.raises(DataError, match=r"images.bin: is truncated"):
        load_scene(s.root, verbose=False)
