"""3DGS PLY and .splat: field by field against plyfile, gsplat's exporter and antimatter15's converter."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from recon.export.ply import SPLAT_RECORD, load_ply, write_gaussian_ply, write_splat
from tests.export.conftest import random_gaussians

plyfile = pytest.importorskip("plyfile")

INRIA_HEAD = ["x", "y", "z", "nx", "ny", "nz", "f_dc_0", "f_dc_1", "f_dc_2"]
INRIA_TAIL = ["opacity", "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3"]


def test_ply_fields_read_back_with_plyfile(tmp_path):
    params = random_gaussians(n=40, sh_degree=2)
    write_gaussian_ply(tmp_path / "g.ply", params)
    ply = plyfile.PlyData.read(str(tmp_path / "g.ply"))
    assert ply.text is False and ply.byte_order == "<"
    v = ply["vertex"]
    rest = [f"f_rest_{i}" for i in range(24)]  # 8 bases of degrees 1-2, times 3 channels
    assert [p.name for p in v.properties] == INRIA_HEAD + rest + INRIA_TAIL
    assert all(p.val_dtype in ("f4", "<f4", "float32") for p in v.properties)
    col = lambda *names: np.stack([v[n] for n in names], axis=1)
    np.testing.assert_array_equal(col("x", "y", "z"), params["means"].numpy())
    np.testing.assert_array_equal(col("nx", "ny", "nz"), 0.0)
    np.testing.assert_array_equal(col("f_dc_0", "f_dc_1", "f_dc_2"), params["sh0"][:, 0].numpy())
    # Inria: features_rest [N, K-1, 3] -> transpose(1, 2) -> flatten: all red bands, then green, then blue
    shN = params["shN"].numpy()
    for c in range(3):
        for k in range(8):
            np.testing.assert_array_equal(v[f"f_rest_{c * 8 + k}"], shN[:, k, c])
    np.testing.assert_array_equal(v["opacity"], params["opacities"].numpy())
    np.testing.assert_array_equal(col("scale_0", "scale_1", "scale_2"), params["scales"].numpy())
    np.testing.assert_array_equal(col("rot_0", "rot_1", "rot_2", "rot_3"), params["quats"].numpy())


def test_ply_matches_gsplat_export_field_by_field(tmp_path):
    gsplat = pytest.importorskip("gsplat")
    params = random_gaussians(n=30, sh_degree=3, seed=1)
    write_gaussian_ply(tmp_path / "ours.ply", params)
    gsplat.export_splats(**{k: params[k] for k in ("means", "scales", "quats", "opacities", "sh0", "shN")},
                         format="ply", save_to=str(tmp_path / "gsplat.ply"))  # fmt: skip
    ours = plyfile.PlyData.read(str(tmp_path / "ours.ply"))["vertex"]
    theirs = plyfile.PlyData.read(str(tmp_path / "gsplat.ply"))["vertex"]
    names = [p.name for p in theirs.properties]
    assert [n for n in (p.name for p in ours.properties) if n not in ("nx", "ny", "nz")] == names
    for name in names:
        np.testing.assert_array_equal(ours[name], theirs[name], err_msg=name)
    # and our reader takes gsplat's file (no normals) back to the same parameters
    _, back = load_ply(tmp_path / "gsplat.ply")
    for key, value in params.items():
        torch.testing.assert_close(back[key], value, rtol=0, atol=0)


def test_reimported_ply_renders_like_the_run(gaussian_run, tmp_path):
    from recon.cli import main
    from recon.render import render
    from recon.run import load_run

    assert main(["export", str(gaussian_run), "--format", "ply", "--out", str(tmp_path / "g.ply")]) == 0
    run = load_run(gaussian_run)
    primitive, params = load_ply(tmp_path / "g.ply")
    assert primitive == "gaussian" and params["means"].shape == run.params["means"].shape
    cams = run.cameras[run.split.test]
    expected = render("gaussian", run.params, cams, sh_degree=run.sh_degree)
    got = render("gaussian", params, cams, sh_degree=run.sh_degree)
    assert expected.alpha.max() > 0.5  # the views see the scene
    assert (got.rgb - expected.rgb).abs().max() < 1e-5
    assert (got.depth - expected.depth).abs().max() < 1e-5


def antimatter15_convert(ply_path) -> bytes:
    """antimatter15/splat convert.py (process_ply_to_splat_file), on plyfile's reading of our PLY."""
    v = plyfile.PlyData.read(str(ply_path))["vertex"]
    order = np.argsort(-np.exp(v["scale_0"] + v["scale_1"] + v["scale_2"]) / (1 + np.exp(-v["opacity"])), kind="stable")
    out = bytearray()
    c0 = 0.28209479177387814
    for i in order:
        position = np.array([v["x"][i], v["y"][i], v["z"][i]], dtype=np.float32)
        scales = np.exp(np.array([v["scale_0"][i], v["scale_1"][i], v["scale_2"][i]], dtype=np.float32))
        rot = np.array([v["rot_0"][i], v["rot_1"][i], v["rot_2"][i], v["rot_3"][i]], dtype=np.float32)
        color = np.array([0.5 + c0 * v["f_dc_0"][i], 0.5 + c0 * v["f_dc_1"][i], 0.5 + c0 * v["f_dc_2"][i],
                          1 / (1 + np.exp(-v["opacity"][i]))])  # fmt: skip
        out += position.tobytes() + scales.tobytes()
        out += (color * 255).clip(0, 255).astype(np.uint8).tobytes()
        out += ((rot / np.linalg.norm(rot)) * 128 + 128).clip(0, 255).astype(np.uint8).tobytes()
    return bytes(out)


def test_splat_matches_antimatter15_converter(tmp_path):
    params = random_gaussians(n=64, sh_degree=1, seed=2)
    write_gaussian_ply(tmp_path / "g.ply", params)
    write_splat(tmp_path / "g.splat", params)
    raw = (tmp_path / "g.splat").read_bytes()
    assert len(raw) == 32 * 64
    ours = np.frombuffer(raw, dtype=SPLAT_RECORD)
    ref = np.frombuffer(antimatter15_convert(tmp_path / "g.ply"), dtype=SPLAT_RECORD)
    w = np.exp(params["scales"].sum(1).numpy()) * torch.sigmoid(params["opacities"]).numpy()  # size * opacity
    np.testing.assert_array_equal(ours["position"], ref["position"])
    np.testing.assert_array_equal(ours["position"], params["means"].numpy()[np.argsort(-w, kind="stable")])
    np.testing.assert_allclose(ours["scale"], ref["scale"], rtol=1e-6)
    # uint8 truncation of values computed in float32 vs float64 may differ by one step at a boundary
    assert np.abs(ours["rgba"].astype(int) - ref["rgba"].astype(int)).max() <= 1
    assert np.abs(ours["rot"].astype(int) - ref["rot"].astype(int)).max() <= 1
    assert not np.array_equal(np.argsort(-w), np.arange(64))  # the order is not the input order


def test_splat_holds_the_records_gsplat_writes(tmp_path):
    gsplat = pytest.importorskip("gsplat")
    params = random_gaussians(n=50, sh_degree=0, seed=3)
    write_splat(tmp_path / "g.splat", params)
    theirs = gsplat.export_splats(**{k: params[k] for k in ("means", "scales", "quats", "opacities", "sh0", "shN")},
                                  format="splat")  # fmt: skip
    ours = np.frombuffer((tmp_path / "g.splat").read_bytes(), dtype=SPLAT_RECORD)
    ref = np.frombuffer(theirs, dtype=SPLAT_RECORD)  # the same records in Morton order
    key = lambda r: np.lexsort(r["position"].T)
    ours_sorted, ref_sorted = ours[key(ours)], ref[key(ref)]
    np.testing.assert_array_equal(ours_sorted["position"], ref_sorted["position"])
    np.testing.assert_array_equal(ours_sorted["scale"], ref_sorted["scale"])
    assert np.abs(ours_sorted["rgba"].astype(int) - ref_sorted["rgba"].astype(int)).max() <= 1
    assert np.abs(ours_sorted["rot"].astype(int) - ref_sorted["rot"].astype(int)).max() <= 1


def test_ply_holds_only_the_active_sh_bands(tmp_path):
    from recon.cameras import Cameras
    from recon.export.cli import active_sh
    from recon.render import render

    params = random_gaussians(n=30, sh_degree=3, seed=4)
    params["means"] = params["means"] * 0.3 + torch.tensor([0.0, 0.0, 3.0])  # in front of the camera
    write_gaussian_ply(tmp_path / "g.ply", active_sh(params, 1))
    v = plyfile.PlyData.read(str(tmp_path / "g.ply"))["vertex"]
    assert sum(p.name.startswith("f_rest_") for p in v.properties) == 9  # degree 1: 3 bases x 3 channels
    _, back = load_ply(tmp_path / "g.ply")
    cam = Cameras.create([[40.0, 0, 16], [0, 40.0, 12], [0, 0, 1]], torch.eye(4), 32, 24)
    a = render("gaussian", params, cam, sh_degree=1, backend="reference").rgb
    b = render("gaussian", back, cam, sh_degree=1, backend="reference").rgb
    assert a.abs().max() > 0 and (a - b).abs().max() < 1e-6
