"""Bad cameras and pose files are rejected at load, naming the file and the frame; ``recon data
inspect`` agrees with what :func:`load_scene` produces and prints strict JSON only."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from recon.cameras import Cameras
from recon.cli import main
from recon.data.colmap import model_from_cameras, write_model_text
from recon.data.formats import load_scene, parse_scene
from recon.data.nerfstudio import write_transforms
from recon.data.scene import SceneData
from recon.errors import DataError

from .test_formats import _ring, _write_images, write_llff

NAN = float("nan")


def _poisoned(cams: Cameras, i: int, where: str) -> Cameras:
    """``cams`` with a NaN in view ``i``'s focal length or camera position."""
    Ks, viewmats = cams.Ks.clone(), cams.viewmats.clone()
    if where == "fx":
        Ks[i, 0, 0] = NAN
    else:
        viewmats[i, 0, 3] = NAN
    return Cameras(Ks=Ks, viewmats=viewmats, widths=cams.widths, heights=cams.heights)


def _nerfstudio(root: Path, cams: Cameras, names: list[str]) -> Path:
    write_transforms(root / "transforms.json", cams, [f"images/{n}" for n in names])
    return root / "transforms.json"


def _blender(root: Path, cams: Cameras, names: list[str]) -> Path:
    # camera_angle_x and OpenGL camera-to-world frames; views 4 and 5 in the test file.
    c2w = cams.opengl_c2w().double().numpy()
    for split, ids in (("train", range(4)), ("test", range(4, len(names)))):
        fx = float(cams.Ks[ids[0], 0, 0])
        angle = 2 * math.atan(0.5 * int(cams.widths[0]) / fx) if not math.isnan(fx) else NAN
        frames = [{"file_path": f"images/{Path(names[i]).stem}", "transform_matrix": c2w[i].tolist()} for i in ids]
        (root / f"transforms_{split}.json").write_text(json.dumps({"camera_angle_x": angle, "frames": frames}))
    return root / "transforms_test.json"


def _colmap(root: Path, cams: Cameras, names: list[str]) -> Path:
    write_model_text(model_from_cameras(cams, names), root / "sparse" / "0")
    return root / "sparse" / "0"


def _llff(root: Path, cams: Cameras, names: list[str]) -> Path:
    write_llff(root, cams, factor=1)
    return root / "poses_bounds.npy"


def _dtu(root: Path, cams: Cameras, names: list[str]) -> Path:
    mats = {}
    for i in range(len(cams)):
        P = np.eye(4)
        P[:3, :4] = cams.Ks[i].double().numpy() @ cams.viewmats[i, :3].double().numpy()
        mats[f"world_mat_{i}"] = P
    np.savez(root / "cameras_sphere.npz", **mats)
    _write_images(root / "image", [f"{i:06d}.png" for i in range(len(cams))], 32, 24)
    return root / "cameras_sphere.npz"


def _middlebury(root: Path, cams: Cameras, names: list[str]) -> Path:
    lines = []
    for i in range(len(cams)):
        K, V = cams.Ks[i].double().numpy(), cams.viewmats[i].double().numpy()
        lines.append(f"obj{i:04d}.png " + " ".join(f"{v:.12g}" for v in [*K.ravel(), *V[:3, :3].ravel(), *V[:3, 3]]))
    (root / "obj_par.txt").write_text("\n".join(lines) + "\n")
    _write_images(root, [f"obj{i:04d}.png" for i in range(len(cams))], 32, 24)
    return root / "obj_par.txt"


WRITERS = {
    "nerfstudio": _nerfstudio,
    "blender": _blender,
    "colmap": _colmap,
    "llff": _llff,
    "dtu": _dtu,
    "middlebury": _middlebury,
}


def _scene_copy(s, root: Path) -> Path:
    """A copy of the tiny scene's images in ``root/images``."""
    (root / "images").mkdir(parents=True)
    for n in s.names:
        (root / "images" / n).write_bytes((s.root / "images" / n).read_bytes())
    return root


@pytest.mark.parametrize("where", ["fx", "pose"])
@pytest.mark.parametrize("fmt", list(WRITERS))
def test_nan_camera_is_rejected_naming_file_and_frame(tiny_scene, tmp_path: Path, fmt: str, where: str):
    s = tiny_scene
    clean = _scene_copy(s, tmp_path / "clean")
    WRITERS[fmt](clean, s.cameras, s.names)
    view_4 = load_scene(clean, format=fmt, verbose=False).names[4]  # how the format names view 4
    bad = _scene_copy(s, tmp_path / "bad")
    camera_file = WRITERS[fmt](bad, _poisoned(s.cameras, 4, where), s.names)
    with pytest.raises(DataError) as err:
        load_scene(bad, format=fmt, verbose=False)
    msg = str(err.value)
    assert msg.startswith(str(camera_file)) and Path(view_4).stem in msg, msg
    assert "not finite" in msg and "\n" not in msg


def test_nonpositive_focal_and_many_bad_views(tiny_scene):
    s = tiny_scene
    cams = s.cameras
    Ks = cams.Ks.clone()
    Ks[2, 1, 1] = -5.0
    bad_focal = Cameras(Ks, cams.viewmats, cams.widths, cams.heights)
    write_transforms(s.root / "transforms.json", bad_focal, [f"images/{n}" for n in s.names])
    with pytest.raises(DataError, match=r"view_002.png has intrinsics focal length not positive \(.*fy=-5"):
        parse_scene(s.root, verbose=False)
    viewmats = cams.viewmats.clone()
    viewmats[:, 2, 2] = float("inf")
    inf_cams = Cameras(cams.Ks, viewmats, cams.widths, cams.heights)
    with pytest.raises(DataError, match=r"view view_000.png has pose not finite.*; 5 more views are bad"):
        SceneData(images=[torch.zeros(24, 32, 3)] * 6, cameras=inf_cams, names=s.names, format="x", root=s.root)


def test_inspect_rejects_nan_with_one_line_and_never_prints_nan(tiny_scene, capsys):
    s = tiny_scene
    write_transforms(s.root / "transforms.json", _poisoned(s.cameras, 1, "fx"), [f"images/{n}" for n in s.names])
    assert main(["data", "inspect", str(s.root), "--json"]) != 0
    out = capsys.readouterr()
    assert out.out == "" and "NaN" not in out.out
    lines = [ln for ln in out.err.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1 and "transforms.json" in lines[0] and "images/view_001.png" in lines[0]


@pytest.mark.parametrize(
    "content",
    [b"garbage bytes, not an array", "pickled", "strings", "shape"],
)
def test_garbage_poses_bounds_names_the_layout(tmp_path: Path, ring, content):
    write_llff(tmp_path, _ring(ring, 3, 32, 24, f=30.0), factor=1)
    path = tmp_path / "poses_bounds.npy"
    if content == "pickled":
        np.save(path, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    elif content == "strings":
        np.save(path, np.full((3, 17), "x"))
    elif content == "shape":
        np.save(path, np.zeros((3, 15)))
    else:
        path.write_bytes(content)
    with pytest.raises(DataError) as err:
        load_scene(tmp_path, verbose=False)
    msg = str(err.value)
    assert str(path) in msg and "N x 17" in msg and "allow_pickle" not in msg, msg


def test_inspect_has_masks_agrees_with_load_scene(tmp_path: Path, capsys):
    images = tmp_path / "images"
    _write_images(images, ["a.png", "b.png", "c.png"], 16, 12)
    Image.open(images / "a.png").convert("RGBA").save(images / "a.png")  # only the first has alpha
    for case in ("some alpha", "all alpha"):
        if case == "all alpha":
            for n in ("b.png", "c.png"):
                Image.open(images / n).convert("RGBA").save(images / n)
        scene = load_scene(tmp_path, verbose=False)
        assert main(["data", "inspect", str(tmp_path), "--json"]) == 0
        info = json.loads(capsys.readouterr().out)
        assert info["has_masks"] == (scene.masks is not None) == (case == "all alpha")
