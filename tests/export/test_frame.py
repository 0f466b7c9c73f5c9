"""Exports stay in the scene's own frame: DTU cameras come out where DTU's world_mat puts them."""

from __future__ import annotations

import numpy as np
import pytest

from recon.cli import main


def test_dtu_cameras_export_in_dtus_world_frame(shared_data, tmp_path):
    pycolmap = pytest.importorskip("pycolmap")
    from recon.config import TrainConfig, override, save_config
    from recon.data.dtu import parse_dtu
    from recon.data.splits import Split
    from recon.run import write_cameras

    scene = shared_data / "dtu" / "scan24"
    if not (scene / "cameras_sphere.npz").is_file():
        pytest.skip("no DTU scene in the shared data")
    source = parse_dtu(scene, prefer_factor=4)
    run = tmp_path / "run"  # a run folder before its first checkpoint: cameras need none
    run.mkdir()
    save_config(override(TrainConfig(), **{"data.path": str(scene)}), run / "config.json")
    n = len(source.names)
    write_cameras(run, source.cameras, source.names, Split([0, 1, 2], list(range(3, n)), "dtu"), str(scene))
    assert main(["export", str(run), "--format", "colmap", "--out", str(tmp_path / "sparse")]) == 0

    npz = np.load(scene / "cameras_sphere.npz")
    rec = pycolmap.Reconstruction(str(tmp_path / "sparse"))
    assert rec.num_images() == n
    for image in rec.images.values():
        i = source.names.index(image.name)
        P = npz[f"world_mat_{i}"][:3].astype(np.float64)  # K [R | t] in DTU's world frame (millimetres)
        centre = -np.linalg.solve(P[:, :3], P[:, 3])  # the camera centre: P [C; 1] = 0
        np.testing.assert_allclose(image.projection_center(), centre, rtol=1e-5, atol=1e-3)
        S = npz[f"scale_mat_{i}"].astype(np.float64)  # unit sphere -> world: not applied by recon
        assert np.linalg.norm(np.linalg.solve(S, np.append(centre, 1.0))[:3] - centre) > 1.0
