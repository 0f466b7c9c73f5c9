"""``recon data inspect`` through ``recon.cli.main``: JSON facts, one-line errors on bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from recon.cli import main
from recon.data.nerfstudio import write_transforms


def _inspect_json(capsys, *args: str) -> dict:
    status = main(["data", "inspect", *args, "--json"])
    out = capsys.readouterr()
    assert status == 0, out.err
    return json.loads(out.out)


def _fails(capsys, *args: str, names: str) -> str:
    """Runs the CLI, expects a one-line ``error:`` naming ``names`` and no traceback."""
    status = main(list(args))
    err = capsys.readouterr().err.strip()
    assert status != 0
    lines = [ln for ln in err.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1, err
    assert names in lines[0], lines[0]
    assert "Traceback" not in err
    return lines[0]


def test_inspect_json_of_written_scene(tiny_scene, capsys):
    s = tiny_scene
    write_transforms(s.root / "transforms.json", s.cameras, [f"images/{n}" for n in s.names])
    info = _inspect_json(capsys, str(s.root), "--test-every", "3")
    assert info["format"] == "nerfstudio" and info["num_images"] == len(s.names)
    assert (info["width"], info["height"]) == (32, 24)
    assert info["has_poses"] and not info["has_masks"] and info["num_points"] == 0
    assert info["splits"]["protocol"] == "generic"
    assert info["splits"]["test"] == [0, 3] and info["splits"]["train"] == [1, 2, 4, 5]


def test_inspect_table_mentions_format(tiny_scene, capsys):
    assert main(["data", "inspect", str(tiny_scene.root / "images")]) == 0
    out = capsys.readouterr()
    assert "folder" in out.out and "needs_sfm" in out.out
    assert "format: folder" in out.err  # the detected format is announced on stderr


_REAL = {
    "nerf_synthetic/lego_400": {
        "format": "blender",
        "num_images": 300,
        "width": 400,
        "height": 400,
        "has_masks": True,
    },
    "dtu/scan24": {
        "format": "dtu",
        "num_images": 49,
        "width": 400,
        "height": 300,
        "has_masks": True,
    },
    "nerd_real/gold_cape": {
        "format": "llff",
        "num_images": 119,
        "width": 456,
        "height": 456,
        "has_masks": True,
    },
    "middlebury_mvs/templeSparseRing": {
        "format": "middlebury",
        "num_images": 16,
        "width": 640,
        "height": 480,
    },
    "gtsfm_lund_door/set1_lund_door": {
        "format": "colmap",
        "num_images": 12,
        "width": 1296,
        "height": 1936,
        "num_points": 11384,
    },
    "instant_ngp/fox/transforms_available.json": {
        "format": "nerfstudio",
        "num_images": 50,
        "width": 1080,
        "height": 1920,
    },
}


@pytest.mark.parametrize("scene,expected", list(_REAL.items()), ids=list(_REAL))
def test_inspect_real_scenes(shared_data: Path, capsys, scene: str, expected: dict):
    info = _inspect_json(capsys, str(shared_data / scene))
    assert info["has_poses"]
    for key, value in expected.items():
        assert info[key] == value, key
    if info["format"] == "dtu":
        assert info["splits"]["train"] == [25, 22, 28] and len(info["splits"]["test"]) == 25
    if info["format"] == "blender":
        assert info["splits"]["train"] == [26, 86, 2, 55, 75, 93, 16, 73]


def test_missing_path(tmp_path: Path, capsys):
    _fails(capsys, "data", "inspect", str(tmp_path / "nope"), names="nope: does not exist")


def test_empty_folder(tmp_path: Path, capsys):
    (tmp_path / "empty").mkdir()
    _fails(capsys, "data", "inspect", str(tmp_path / "empty"), names="empty: is an empty folder")


def test_unknown_layout_lists_what_was_looked_for(tmp_path: Path, capsys):
    (tmp_path / "notes.txt").write_text("hello")
    line = _fails(capsys, "data", "inspect", str(tmp_path), names="no known scene layout")
    assert "poses_bounds.npy" in line and "transforms.json" in line


def test_corrupt_and_truncated_images(tiny_scene, capsys):
    images = tiny_scene.root / "images"
    (images / "view_001.png").write_bytes(b"garbage, not a png")
    _fails(capsys, "data", "inspect", str(images), names="view_001.png")
    (images / "view_001.png").unlink()
    data = (images / "view_002.png").read_bytes()
    (images / "view_002.png").write_bytes(data[: len(data) // 2])
    line = _fails(capsys, "data", "inspect", str(images), "--check-images", names="view_002.png")
    assert "truncated" in line


def test_pose_rows_do_not_match_images(tmp_path: Path, capsys):
    rng = np.random.default_rng(0)
    (tmp_path / "images").mkdir()
    for i in range(5):
        Image.fromarray(rng.integers(0, 256, (12, 16, 3), dtype=np.uint8)).save(
            tmp_path / "images" / f"{i}.png"
        )
    pb = np.zeros((4, 17))
    pb[:, :15] = np.concatenate([np.eye(3), np.zeros((3, 1)), [[12], [16], [20]]], axis=1).reshape(
        15
    )
    np.save(tmp_path / "poses_bounds.npy", pb)
    line = _fails(capsys, "data", "inspect", str(tmp_path), names="poses_bounds.npy")
    assert "4 poses" in line and "5 images" in line


def test_transforms_naming_missing_files(tiny_scene, capsys):
    s = tiny_scene
    write_transforms(
        s.root / "transforms.json",
        s.cameras,
        [f"images/{n}" for n in s.names[:-1]] + ["images/lost.png"],
    )
    line = _fails(capsys, "data", "inspect", str(s.root), names="transforms.json")
    assert "images/lost.png" in line and "--skip-missing" in line
    info = _inspect_json(capsys, str(s.root), "--skip-missing")
    assert info["num_images"] == len(s.names) - 1


def test_fox_transforms_with_missing_frames(shared_data: Path, capsys):
    line = _fails(
        capsys, "data", "inspect", str(shared_data / "instant_ngp" / "fox"), names="transforms.json"
    )
    assert "17 of 67" in line and "transforms_available.json" in line
