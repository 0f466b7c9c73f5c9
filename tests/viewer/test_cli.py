"""``recon render`` and ``recon view`` on a tiny run written with the trainer's own writers."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from recon.cli import main
from recon.run import load_run
from viewer.cameras import pose_to_cameras
from viewer.loading import load_viewable
from viewer.paths import CameraPath, orbit_path
from viewer.render import RenderSettings, make_render_fn

imageio = pytest.importorskip("imageio.v2")
pytest.importorskip("imageio_ffmpeg")


def test_load_viewable_matches_run(tiny_run):
    v = load_viewable(tiny_run)
    run = load_run(tiny_run)
    assert list(v.sets) == ["gaussian"] and v.sets["gaussian"].sh_degree == 1
    assert v.split == {"train": [0, 1, 2, 3], "test": [4, 5]} and len(v.cameras) == 6
    for k, t in run.params.items():
        assert bool((v.sets["gaussian"].params[k] == t).all())


def test_render_orbit_video(tiny_run, tmp_path):
    out = tmp_path / "orbit.mp4"
    assert main(["render", str(tiny_run), "--path", "orbit", "--out", str(out), "--frames", "6",
                 "--backend", "reference"]) == 0
    frames = imageio.mimread(out)
    assert len(frames) == 6 and frames[0].shape == (48, 64, 3)
    # Frame 3 of the video is the render of the 4th orbit pose (up to video compression).
    v = load_viewable(tiny_run)
    pose = orbit_path(v.cameras, 6)[3]
    expected = make_render_fn(v.sets, backend="reference")(pose_to_cameras(pose, 64, 48), RenderSettings())
    assert expected.std() > 5  # the scene is visible, not an empty frame
    assert np.abs(frames[3].astype(float) - expected).mean() < 6.0


def test_render_saved_path(tiny_run, tmp_path):
    v = load_viewable(tiny_run)
    path = CameraPath(keyframes=orbit_path(v.cameras, 4), fps=5, seconds=1.0, width=40, height=30)
    path.save(tiny_run / "camera_paths" / "p.json")
    out = tmp_path / "p.mp4"
    # A relative name resolves inside RUN/camera_paths, where the viewer saves paths.
    assert main(["render", str(tiny_run), "--path", "p.json", "--out", str(out), "--mode", "depth",
                 "--backend", "reference"]) == 0
    frames = imageio.mimread(out)
    assert len(frames) == 5 and frames[0].shape == (30, 40, 3)


def test_corrupt_checkpoint_is_a_clear_error(tiny_run, tmp_path, capsys):
    ckpt = next((tiny_run / "checkpoints").glob("*.safetensors"))
    ckpt.write_bytes(b"\x00garbage" * 10)
    assert main(["view", str(tiny_run), "--port", "0"]) == 2
    err = capsys.readouterr().err
    assert "cannot read the checkpoint" in err and str(tiny_run) in err
    assert main(["render", str(tiny_run), "--out", str(tmp_path / "x.mp4")]) == 2


def test_missing_inputs_are_clear_errors(tmp_path, tiny_run, capsys):
    assert main(["view", str(tmp_path / "nowhere")]) == 2
    assert "no such run directory" in capsys.readouterr().err
    (tmp_path / "notes.txt").write_text("hi")
    assert main(["view", str(tmp_path / "notes.txt")]) == 2
    assert main(["render", str(tiny_run), "--path", "missing.json", "--out", str(tmp_path / "m.mp4")]) == 2
    assert "camera path file not found" in capsys.readouterr().err


def test_view_and_render_a_ply_written_by_gsplat(tiny_run, tmp_path):
    """A PLY written by another tool (gsplat's exporter) reads back to the same parameters."""
    gsplat_export = pytest.importorskip("gsplat").export_splats
    from viewer.loading import read_gaussian_ply

    p = load_run(tiny_run).params
    ply = tmp_path / "splats.ply"
    gsplat_export(means=p["means"], scales=p["scales"], quats=p["quats"], opacities=p["opacities"],
                  sh0=p["sh0"], shN=p["shN"], format="ply", save_to=str(ply))
    primitive, params = read_gaussian_ply(ply)
    assert primitive == "gaussian"
    for k in ("means", "scales", "quats", "opacities", "sh0", "shN"):
        torch.testing.assert_close(params[k], p[k].float(), msg=k)
    v = load_viewable(ply)
    assert v.cameras is None and v.sets["gaussian"].sh_degree == 1
    path = CameraPath(keyframes=orbit_path(load_viewable(tiny_run).cameras, 3), fps=3, seconds=1.0,
                      width=32, height=24)
    path.save(tmp_path / "p.json")
    out = tmp_path / "ply.mp4"
    assert main(["render", str(ply), "--path", str(tmp_path / "p.json"), "--out", str(out),
                 "--backend", "reference"]) == 0
    assert len(imageio.mimread(out)) == 3


def test_view_shows_the_runs_prior_cloud(tiny_run):
    """A cloud saved in RUN/priors (as training does) is what the viewer draws, read back exactly."""
    import torch

    from recon.priors.init import PointCloud, save_priors

    g = torch.Generator().manual_seed(1)
    cloud = PointCloud(torch.randn(50, 3, generator=g), torch.rand(50, 3, generator=g), "mvs")
    assert load_viewable(tiny_run).points is None  # no scene folder, no priors yet
    save_priors(tiny_run, cloud, None)
    v = load_viewable(tiny_run)
    assert np.allclose(v.points, cloud.points.numpy(), atol=1e-6)
    assert np.allclose(v.point_colors, cloud.colors.numpy(), atol=1 / 255)
