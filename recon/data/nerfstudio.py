"""nerfstudio / instant-ngp ``transforms.json``: reader and writer.

Poses are camera-to-world in the OpenGL convention (x right, y up, z back). Intrinsics
(``fl_x fl_y cx cy w h`` and OpenCV distortion ``k1 k2 k3 p1 p2``) may be global or per frame;
without ``fl_x`` the focal length comes from ``camera_angle_x`` (the Blender layout). Keys the
reader does not need (``aabb_scale``, ``sharpness``, ``scale``, ``offset``...) are ignored.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from recon.cameras import Cameras
from recon.data.images import image_size
from recon.data.scene import check_cameras
from recon.data.source import SceneSource, check_missing
from recon.errors import DataError

_DIST_KEYS = ("k1", "k2", "p1", "p2", "k3")
_SUPPORTED_CAMERA_MODELS = ("OPENCV", "PINHOLE", "SIMPLE_PINHOLE", "SIMPLE_RADIAL", "RADIAL")


@dataclass
class TransformsFrames:
    """The frames of one transforms file: files, cameras at the stated sizes, optional masks."""

    image_paths: list[Path]
    cameras: Cameras
    mask_paths: list[Path] | None


def read_json(path: Path) -> dict:
    """Loads a JSON object, raising :class:`DataError` naming the file when it is not one."""
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise DataError("file not found", path=path) from None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise DataError(f"is not valid JSON ({err})", path=path) from None
    if not isinstance(data, dict) or not isinstance(data.get("frames"), list):
        raise DataError("has no 'frames' list", path=path, hint="is this a transforms.json file?")
    return data


def _resolve(base: Path, file_path: str) -> Path:
    p = base / file_path
    if p.suffix == "" and not p.is_file():  # Blender files name frames without ".png"
        p = p.with_name(p.name + ".png")
    return p


def read_frames(path: Path, data: dict, skip_missing: bool = False) -> TransformsFrames:
    """Parses the frames of a transforms file (``data`` is its JSON).

    Args:
        path: the JSON file (frame paths are relative to its folder).
        data: its parsed content.
        skip_missing: drop frames whose image file does not exist instead of failing.
    """
    model = data.get("camera_model", "OPENCV")
    if model not in _SUPPORTED_CAMERA_MODELS:
        raise DataError(
            f"camera_model {model} is not supported",
            path=path,
            hint=f"use one of {', '.join(_SUPPORTED_CAMERA_MODELS)}",
        )
    frames = data["frames"]
    if not frames:
        raise DataError("lists no frames", path=path)
    try:
        paths = [_resolve(path.parent, str(f["file_path"])) for f in frames]
    except KeyError:
        raise DataError("a frame has no 'file_path'", path=path) from None
    keep = list(range(len(frames)))
    if skip_missing:
        keep = [i for i in keep if paths[i].is_file()]
        if not keep:
            raise DataError("none of the listed images exists", path=path)
    else:
        siblings = _complete_siblings(path)
        hint = (
            f"pass {siblings[0]} instead, or use --skip-missing"
            if siblings
            else "fix the file paths or use --skip-missing to load only the existing frames"
        )
        check_missing(paths, path, hint=hint)
    Ks, c2ws, dists, widths, heights, masks = [], [], [], [], [], []
    for i in keep:
        f = {**data, **frames[i]}  # per-frame intrinsics override global ones
        try:
            c2w = np.asarray(f["transform_matrix"], dtype=np.float64)
        except KeyError:
            raise DataError(
                f"frame {frames[i]['file_path']} has no transform_matrix", path=path
            ) from None
        if "w" in f and "h" in f:
            w, h = int(f["w"]), int(f["h"])
        else:
            w, h = image_size(paths[i])
        if "fl_x" in f:
            fx = float(f["fl_x"])
        elif "camera_angle_x" in f:
            fx = 0.5 * w / math.tan(0.5 * float(f["camera_angle_x"]))
        else:
            raise DataError("needs fl_x or camera_angle_x", path=path)
        if "fl_y" in f:
            fy = float(f["fl_y"])
        elif "camera_angle_y" in f and "fl_x" not in f:
            fy = 0.5 * h / math.tan(0.5 * float(f["camera_angle_y"]))
        else:
            fy = fx
        cx, cy = float(f.get("cx", w / 2)), float(f.get("cy", h / 2))
        Ks.append([[fx, 0, cx], [0, fy, cy], [0, 0, 1]])
        dists.append([float(f.get(k, 0.0)) for k in _DIST_KEYS])
        c2ws.append(c2w), widths.append(w), heights.append(h)
        if "mask_path" in frames[i]:
            masks.append(path.parent / frames[i]["mask_path"])
    cams = Cameras.from_opengl_c2w(
        np.stack(c2ws), np.array(Ks), widths, heights, dist=np.array(dists)
    )
    check_cameras(cams, [str(frames[i]["file_path"]) for i in keep], path)
    mask_paths = masks if len(masks) == len(keep) else None
    if mask_paths:
        check_missing(mask_paths, path, hint="fix the mask_path entries or remove them")
    return TransformsFrames([paths[i] for i in keep], cams, mask_paths)


def _complete_siblings(path: Path) -> list[str]:
    """Other JSON files beside ``path`` whose frames all exist (e.g. transforms_available.json)."""
    found = []
    for other in sorted(path.parent.glob("*.json")):
        if other == path:
            continue
        try:
            frames = json.loads(other.read_text()).get("frames", [])
        except (OSError, ValueError, AttributeError):
            continue
        if frames and all(
            _resolve(other.parent, str(f.get("file_path", ""))).is_file() for f in frames
        ):
            found.append(str(other))
    return found


def transforms_file(path: Path) -> Path:
    """The transforms file of a folder (``transforms.json``) or the file itself."""
    return path if path.is_file() else path / "transforms.json"


def parse_nerfstudio(path: Path, skip_missing: bool = False) -> SceneSource:
    """Parses a nerfstudio / instant-ngp scene (a folder with transforms.json, or the file)."""
    json_path = transforms_file(path)
    data = read_json(json_path)
    fr = read_frames(json_path, data, skip_missing=skip_missing)
    meta = {"transforms": str(json_path)}
    for key in ("aabb_scale", "scale", "offset"):
        if key in data:
            meta[key] = data[key]
    points = colors = None
    if "ply_file_path" in data:  # nerfstudio's ns-process-data writes the SfM points here
        xyz, rgb = read_ply_points(json_path.parent / str(data["ply_file_path"]))
        points = torch.as_tensor(xyz, dtype=torch.float32)
        colors = None if rgb is None else torch.as_tensor(rgb, dtype=torch.float32)
    return SceneSource(
        format="nerfstudio",
        root=json_path.parent,
        image_paths=fr.image_paths,
        cameras=fr.cameras,
        mask_paths=fr.mask_paths,
        points=points,
        point_colors=colors,
        meta=meta,
        camera_file=json_path,
    )


_PLY_TYPES = {
    "char": "i1", "int8": "i1", "uchar": "u1", "uint8": "u1", "short": "i2", "int16": "i2",
    "ushort": "u2", "uint16": "u2", "int": "i4", "int32": "i4", "uint": "u4", "uint32": "u4",
    "float": "f4", "float32": "f4", "double": "f8", "float64": "f8",
}  # fmt: skip


def read_ply_points(path: Path) -> tuple[np.ndarray, np.ndarray | None]:
    """Reads the vertices of a point-cloud PLY (ascii or binary, no faces needed).

    Returns:
        xyz [P, 3] float64 and colours [P, 3] in [0, 1] (None without red/green/blue).
    """
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise DataError("point cloud file not found", path=path, hint="fix ply_file_path") from None
    end = raw.find(b"end_header")
    if not raw.startswith(b"ply") or end < 0:
        raise DataError("is not a PLY file", path=path)
    header = raw[:end].decode("ascii", errors="replace").splitlines()
    body = raw[raw.index(b"\n", end) + 1 :]
    fmt = next((ln.split()[1] for ln in header if ln.startswith("format")), "ascii")
    count, props, in_vertex = 0, [], False
    for line in header:
        e = line.split()
        if e[:1] == ["element"]:
            in_vertex = e[1] == "vertex"
            count = int(e[2]) if in_vertex else count
        elif e[:1] == ["property"] and in_vertex:
            if e[1] == "list" or e[1] not in _PLY_TYPES:
                raise DataError(f"vertex property {' '.join(e[1:])} is not supported", path=path)
            props.append((e[2], _PLY_TYPES[e[1]]))
    endian = {"binary_little_endian": "<", "binary_big_endian": ">"}.get(fmt, "")
    try:
        if endian:
            v = np.frombuffer(body, np.dtype([(n, endian + t) for n, t in props]), count=count)
        else:
            rows = np.loadtxt(body.decode().splitlines()[:count], ndmin=2)
            v = {n: rows[:, i] for i, (n, _) in enumerate(props)}
        xyz = np.stack([v["x"], v["y"], v["z"]], axis=-1).astype(np.float64)
    except (ValueError, KeyError) as err:
        raise DataError(f"has unreadable vertices ({err})", path=path) from None
    names = [n for n, _ in props]
    if not all(c in names for c in ("red", "green", "blue")):
        return xyz, None
    rgb = np.stack([v["red"], v["green"], v["blue"]], axis=-1).astype(np.float64)
    scale = 255.0 if dict(props)["red"] in ("u1", "i1") or rgb.max(initial=0) > 1 else 1.0
    return xyz, rgb / scale


def write_transforms(path: Path, cameras: Cameras, file_paths: list[str]) -> None:
    """Writes cameras as a nerfstudio ``transforms.json``.

    Intrinsics shared by every camera are written once at the top level (as nerfstudio and
    instant-ngp do); otherwise per frame. Distortion is written when ``cameras.dist`` is set.

    Args:
        path: the JSON file to write.
        cameras: N cameras.
        file_paths: N image paths relative to the JSON's folder.
    """
    n = len(cameras)
    if len(file_paths) != n:
        raise ValueError(f"{len(file_paths)} file paths for {n} cameras")
    Ks = cameras.Ks.double()
    intr = {
        "fl_x": Ks[:, 0, 0],
        "fl_y": Ks[:, 1, 1],
        "cx": Ks[:, 0, 2],
        "cy": Ks[:, 1, 2],
        "w": cameras.widths,
        "h": cameras.heights,
    }
    if cameras.dist is not None:
        intr.update({k: cameras.dist[:, j].double() for j, k in enumerate(_DIST_KEYS)})
    shared = {k: v for k, v in intr.items() if bool((v == v[0]).all())}
    top = {"camera_model": "OPENCV"}
    top.update({k: _num(k, v[0]) for k, v in shared.items()})
    c2w = cameras.opengl_c2w().double().numpy()
    frames = []
    for i in range(n):
        frame = {"file_path": file_paths[i], "transform_matrix": c2w[i].tolist()}
        frame.update({k: _num(k, v[i]) for k, v in intr.items() if k not in shared})
        frames.append(frame)
    top["frames"] = frames
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(top, indent=2))


def _num(key: str, value) -> int | float:
    return int(value) if key in ("w", "h") else float(value)
