"""``recon export`` bad input: one-line errors and no partial file left behind; --format video."""

from __future__ import annotations

import errno
import shutil

import numpy as np
import pytest

from recon.cli import main


def run_cli(capsys, *argv) -> tuple[int, str]:
    """Exit status and stderr of ``recon export ARGV``."""
    capsys.readouterr()
    status = main(["export", *map(str, argv)])
    return status, capsys.readouterr().err


def assert_one_line_error(status: int, err: str, *words: str) -> None:
    assert status == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    for w in words:
        assert w in lines[0], lines[0]


def leftovers(folder) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_run_without_checkpoint(gaussian_run, tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    for name in ("config.json", "cameras.json"):
        shutil.copy(gaussian_run / name, run / name)
    out = tmp_path / "out"
    out.mkdir()
    assert_one_line_error(*run_cli(capsys, run, "--format", "ply", "--out", out / "g.ply"), "no checkpoint")
    assert leftovers(out) == []


def test_not_a_run(tmp_path, capsys):
    assert_one_line_error(*run_cli(capsys, tmp_path, "--format", "ply"), "not a run directory")


@pytest.mark.parametrize(("fmt", "words"), [("mesh", ["exports triangles", "--format ply, splat or tsdf"])])
def test_format_that_does_not_fit_the_primitive(gaussian_run, tmp_path, capsys, fmt, words):
    assert_one_line_error(*run_cli(capsys, gaussian_run, "--format", fmt, "--out", tmp_path / "m.ply"), *words)
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("fmt", ["ply", "splat"])
def test_gaussian_formats_refuse_triangles(triangle_run, tmp_path, capsys, fmt):
    status, err = run_cli(capsys, triangle_run, "--format", fmt, "--out", tmp_path / f"t.{fmt}")
    assert_one_line_error(status, err, "exports gaussians", "this run holds triangles", "--format mesh or tsdf")
    assert leftovers(tmp_path) == []


def test_mesh_suffix(triangle_run, tmp_path, capsys):
    assert_one_line_error(*run_cli(capsys, triangle_run, "--format", "mesh", "--out", tmp_path / "m.stl"), ".glb")


def test_existing_output_needs_overwrite(gaussian_run, tmp_path, capsys):
    from recon.export.ply import load_ply

    out = tmp_path / "g.ply"
    out.write_bytes(b"keep me")
    assert_one_line_error(
        *run_cli(capsys, gaussian_run, "--format", "ply", "--out", out), "already exists", "--overwrite"
    )
    assert out.read_bytes() == b"keep me"
    assert run_cli(capsys, gaussian_run, "--format", "ply", "--out", out, "--overwrite")[0] == 0
    assert load_ply(out)[1]["means"].shape == (150, 3)
    assert leftovers(tmp_path) == ["g.ply"]


def test_existing_folder_output_needs_overwrite(gaussian_run, tmp_path, capsys):
    out = tmp_path / "sparse"
    out.mkdir()
    (out / "mine.txt").write_text("keep")
    assert_one_line_error(*run_cli(capsys, gaussian_run, "--format", "colmap", "--out", out), "already exists")
    # --overwrite never deletes a folder of the user's, only a previous export
    status, err = run_cli(capsys, gaussian_run, "--format", "colmap", "--out", out, "--overwrite")
    assert_one_line_error(status, err, "holds other files (mine.txt)")
    assert leftovers(out) == ["mine.txt"]
    (out / "mine.txt").unlink()
    (out / "cameras.bin").write_bytes(b"an older binary model")
    assert run_cli(capsys, gaussian_run, "--format", "colmap", "--out", out, "--overwrite")[0] == 0
    assert leftovers(out) == ["cameras.txt", "images.txt", "points3D.txt"]
    assert leftovers(tmp_path) == ["sparse"]


def test_output_of_the_other_kind(gaussian_run, tmp_path, capsys):
    (tmp_path / "g.ply").mkdir()
    status, err = run_cli(capsys, gaussian_run, "--format", "ply", "--out", tmp_path / "g.ply", "--overwrite")
    assert_one_line_error(status, err, "is a folder, expected a file")
    (tmp_path / "sparse").write_text("a file")
    status, err = run_cli(capsys, gaussian_run, "--format", "colmap", "--out", tmp_path / "sparse", "--overwrite")
    assert_one_line_error(status, err, "is a file, expected a folder")
    assert leftovers(tmp_path) == ["g.ply", "sparse"]


def test_unwritable_path(gaussian_run, tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    assert_one_line_error(*run_cli(capsys, gaussian_run, "--format", "ply", "--out", blocker / "g.ply"), "cannot write")
    assert leftovers(tmp_path) == ["file"]


def test_failed_write_leaves_no_partial_file(gaussian_run, tmp_path, capsys, monkeypatch):
    from recon.export import ply

    def disk_full(path, params):
        with open(path, "wb") as f:
            f.write(b"ply\nhalf a file")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(ply, "write_gaussian_ply", disk_full)
    out = tmp_path / "g.ply"
    out.write_bytes(b"previous export")
    status, err = run_cli(capsys, gaussian_run, "--format", "ply", "--out", out, "--overwrite")
    assert_one_line_error(status, err, "writing failed", "No space left")
    assert out.read_bytes() == b"previous export"  # the old file is intact
    assert leftovers(tmp_path) == ["g.ply"]


def test_video_goes_through_recon_render(gaussian_run, tmp_path, capsys):
    import imageio.v2 as imageio

    out = tmp_path / "orbit.gif"
    assert run_cli(capsys, gaussian_run, "--format", "video", "--out", out)[0] == 0
    frames = imageio.mimread(out)
    assert len(frames) == 120 and frames[0].shape[:2] == (40, 48)  # recon render's orbit default
    assert np.ptp(np.asarray(frames[0])) > 0
    assert_one_line_error(*run_cli(capsys, gaussian_run, "--format", "video", "--out", out), "already exists")


def test_missing_mesh_package_names_the_extra(triangle_run, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(__import__("sys").modules, "trimesh", None)  # as if trimesh were not installed
    status, err = run_cli(capsys, triangle_run, "--format", "mesh", "--out", tmp_path / "m.ply", "--min-opacity", "0")
    assert_one_line_error(status, err, "needs the trimesh package", "recon[export]")
    assert leftovers(tmp_path) == []
