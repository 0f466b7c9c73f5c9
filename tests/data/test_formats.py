"""LLFF, DTU, Middlebury and photo-folder parsers on scenes written from known cameras."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from recon.cameras import Cameras
from recon.data.formats import detect_formats, load_scene, parse_scene


def _ring(ring, n: int, width: int, height: int, f: float) -> Cameras:
    """``ring`` cameras (the conftest fixture) with a centred principal point and fx = fy = f."""
    cams = ring(n, width, height)
    Ks = torch.tensor([[f, 0, width / 2], [0, f, height / 2], [0, 0, 1]]).expand(n, 3, 3).clone()
    return Cameras(Ks=Ks, viewmats=cams.viewmats, widths=cams.widths, heights=cams.heights)


def _write_images(folder: Path, names: list[str], w: int, h: int, mode: str = "RGB") -> None:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(len(names))
    for name in names:
        shape = (h, w, 3) if mode == "RGB" else (h, w)
        Image.fromarray(rng.integers(0, 256, size=shape, dtype=np.uint8), mode).save(folder / name)


def write_llff(root: Path, cams: Cameras, factor: int) -> None:
    """poses_bounds.npy of the full-size cameras; images_<factor>/ and masks_<factor>/."""
    c2w = cams.camtoworlds.double().numpy()
    right, down, fwd, t = c2w[:, :3, 0], c2w[:, :3, 1], c2w[:, :3, 2], c2w[:, :3, 3]
    hwf = np.stack(
        [
            cams.heights.double().numpy(),
            cams.widths.double().numpy(),
            cams.Ks[:, 0, 0].double().numpy(),
        ],
        -1,
    )
    poses = np.stack(
        [down, right, -fwd, t, hwf], axis=-1
    )  # [N, 3, 5] in LLFF's (down, right, back)
    bounds = np.tile([[0.5, 9.0]], (len(cams), 1))
    np.save(root / "poses_bounds.npy", np.concatenate([poses.reshape(-1, 15), bounds], axis=1))
    names = [f"IMG_{i:02d}.JPG" for i in range(len(cams))]
    _write_images(root / f"images_{factor}", names, cams.width // factor, cams.height // factor)
    _write_images(
        root / f"masks_{factor}",
        [n.replace(".JPG", ".png") for n in names],
        cams.width // factor,
        cams.height // factor,
        mode="L",
    )


def test_llff_cameras_follow_the_downscaled_folder(tmp_path: Path, ring):
    cams = _ring(ring, 5, 64, 48, f=70.0)
    write_llff(tmp_path, cams, factor=2)
    scene = load_scene(tmp_path, verbose=False)
    assert scene.format == "llff" and len(scene) == 5 and scene.masks is not None
    assert scene.images[0].shape == (24, 32, 3) and scene.masks[0].shape == (24, 32)
    torch.testing.assert_close(scene.cameras.Ks, cams.rescale(2).Ks)
    torch.testing.assert_close(scene.cameras.viewmats, cams.viewmats, atol=1e-5, rtol=0)
    assert scene.meta["near"][0] == 0.5 and scene.meta["far"][0] == 9.0


def test_dtu_decomposes_world_mats_at_full_resolution(tmp_path: Path, ring):
    cams = _ring(ring, 4, 80, 60, f=90.0)
    arrays = {}
    for i in range(len(cams)):
        P = np.eye(4)
        P[:3, :4] = cams.Ks[i].double().numpy() @ cams.viewmats[i, :3].double().numpy()
        arrays[f"world_mat_{i}"] = -2.5 * P  # any overall scale, even negative
        arrays[f"scale_mat_{i}"] = np.diag([3.0, 3.0, 3.0, 1.0])
    np.savez(tmp_path / "cameras_sphere.npz", **arrays)
    _write_images(tmp_path / "images_4", [f"{i:06d}.png" for i in range(4)], 20, 15)
    _write_images(tmp_path / "mask_4", [f"{i:03d}.png" for i in range(4)], 20, 15, mode="L")
    scene = load_scene(tmp_path, verbose=False)
    assert scene.format == "dtu" and scene.images[0].shape == (15, 20, 3) and len(scene.masks) == 4
    torch.testing.assert_close(scene.cameras.Ks, cams.rescale(4).Ks, atol=1e-4, rtol=1e-5)
    torch.testing.assert_close(scene.cameras.viewmats, cams.viewmats, atol=1e-5, rtol=0)
    assert scene.meta["scale_mats"][0][0][0] == 3.0


def test_middlebury_par_file(tmp_path: Path, ring):
    cams = _ring(ring, 3, 40, 30, f=50.0)
    lines = []
    for i in range(3):
        K, V = cams.Ks[i].double().numpy(), cams.viewmats[i].double().numpy()
        vals = [*K.ravel(), *V[:3, :3].ravel(), *V[:3, 3]]
        lines.append(f"obj{i:04d}.png " + " ".join(f"{v:.12g}" for v in vals))
    (tmp_path / "obj_par.txt").write_text("3\n" + "\n".join(lines) + "\n")
    _write_images(tmp_path, [f"obj{i:04d}.png" for i in range(3)], 40, 30)
    scene = load_scene(tmp_path, verbose=False)
    assert scene.format == "middlebury" and len(scene) == 3
    torch.testing.assert_close(scene.cameras.Ks, cams.Ks)
    torch.testing.assert_close(scene.cameras.viewmats, cams.viewmats, atol=1e-5, rtol=0)


def test_photo_folder_has_no_poses(tmp_path: Path):
    _write_images(tmp_path / "images", ["b.jpg", "a.jpg", "c.png"], 16, 12)
    scene = load_scene(tmp_path, verbose=False, downscale=2)
    assert scene.format == "folder" and scene.cameras is None and not scene.has_poses
    # Names are relative to the folder holding the photos, as SfM names them.
    assert scene.names == ["a.jpg", "b.jpg", "c.png"]
    assert scene.meta["image_dir"] == str(tmp_path / "images")
    assert scene.images[0].shape == (6, 8, 3) and scene.meta["needs_sfm"]


def test_true_calibration_wins_detection(tmp_path: Path, ring):
    cams = _ring(ring, 4, 80, 60, f=90.0)
    write_llff(tmp_path, cams, factor=4)
    np.savez(tmp_path / "cameras_sphere.npz", **{f"world_mat_{i}": np.eye(4) for i in range(4)})
    assert [name for name, _ in detect_formats(tmp_path)][:2] == ["dtu", "llff"]
    assert parse_scene(tmp_path, "llff", verbose=False).format == "llff"
