"""COLMAP sparse models: dataclasses, binary and text readers and writers.

The file layouts follow COLMAP's ``src/colmap/scene/reconstruction_io.cc``. Poses are stored
world-to-camera as a unit quaternion ``(qw, qx, qy, qz)`` and a translation, in the OpenCV axes
that :class:`recon.cameras.Cameras` uses; pixel centres are at ``i + 0.5`` in both.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from recon.errors import DataError
from recon.geometry import quat_to_rotmat_np

# model name -> (COLMAP model id, number of parameters)
CAMERA_MODELS: dict[str, tuple[int, int]] = {
    "SIMPLE_PINHOLE": (0, 3),
    "PINHOLE": (1, 4),
    "SIMPLE_RADIAL": (2, 4),
    "RADIAL": (3, 5),
    "OPENCV": (4, 8),
    "OPENCV_FISHEYE": (5, 8),
    "FULL_OPENCV": (6, 12),
}
_MODEL_BY_ID = {mid: name for name, (mid, _) in CAMERA_MODELS.items()}
SUPPORTED_MODELS = ("SIMPLE_PINHOLE", "PINHOLE", "SIMPLE_RADIAL", "RADIAL", "OPENCV")
MODEL_FILES = ("cameras", "images", "points3D")


@dataclass
class ColmapCamera:
    id: int
    model: str
    width: int
    height: int
    params: np.ndarray  # [num_params] float64

    def intrinsics(self) -> tuple[np.ndarray, np.ndarray]:
        """[3, 3] K and [5] OpenCV distortion ``(k1, k2, p1, p2, k3)`` of a supported model."""
        p = self.params
        dist = np.zeros(5)
        if self.model == "SIMPLE_PINHOLE":
            fx = fy = p[0]
            cx, cy = p[1], p[2]
        elif self.model == "PINHOLE":
            fx, fy, cx, cy = p[:4]
        elif self.model == "SIMPLE_RADIAL":
            fx = fy = p[0]
            cx, cy, dist[0] = p[1], p[2], p[3]
        elif self.model == "RADIAL":
            fx = fy = p[0]
            cx, cy, dist[0], dist[1] = p[1], p[2], p[3], p[4]
        elif self.model == "OPENCV":
            fx, fy, cx, cy = p[:4]
            dist[:4] = p[4:8]
        else:
            raise DataError(
                f"camera {self.id} uses the unsupported model {self.model}",
                hint="undistort with `colmap image_undistorter` or use one of "
                + ", ".join(SUPPORTED_MODELS),
            )
        K = np.array([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]])
        return K, dist


@dataclass
class ColmapImage:
    id: int
    qvec: np.ndarray  # [4] (qw, qx, qy, qz), world to camera
    tvec: np.ndarray  # [3]
    camera_id: int
    name: str
    xys: np.ndarray = field(default_factory=lambda: np.zeros((0, 2)))  # [K, 2]
    point3D_ids: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))  # [K]

    def viewmat(self) -> np.ndarray:
        """[4, 4] world-to-camera matrix."""
        m = np.eye(4)
        m[:3, :3] = quat_to_rotmat_np(self.qvec)
        m[:3, 3] = self.tvec
        return m


@dataclass
class ColmapPoints:
    ids: np.ndarray  # [P] int64
    xyz: np.ndarray  # [P, 3] float64
    rgb: np.ndarray  # [P, 3] uint8
    errors: np.ndarray  # [P] float64
    tracks: list[np.ndarray]  # P arrays [T, 2] of (image_id, point2D_idx)

    @classmethod
    def empty(cls) -> ColmapPoints:
        return cls(
            np.zeros(0, np.int64), np.zeros((0, 3)), np.zeros((0, 3), np.uint8), np.zeros(0), []
        )


@dataclass
class ColmapModel:
    cameras: dict[int, ColmapCamera]
    images: dict[int, ColmapImage]
    points: ColmapPoints


# ---------------------------------------------------------------------------- text files
def _data_lines(path: Path) -> list[str]:
    return [
        ln.strip() for ln in path.read_text().splitlines() if ln.strip() and not ln.startswith("#")
    ]


def read_model_text(folder: Path) -> ColmapModel:
    """Reads ``cameras.txt``, ``images.txt`` and ``points3D.txt`` (points optional)."""
    cameras: dict[int, ColmapCamera] = {}
    path = folder / "cameras.txt"
    try:
        for line in _data_lines(path):
            e = line.split()
            cameras[int(e[0])] = ColmapCamera(
                int(e[0]), e[1], int(e[2]), int(e[3]), np.array(e[4:], dtype=np.float64)
            )
        images: dict[int, ColmapImage] = {}
        path = folder / "images.txt"
        # Two lines per image; the second (points) may be empty, so keep blank lines here.
        lines = [ln for ln in path.read_text().splitlines() if not ln.startswith("#")]
        while lines and not lines[-1].strip():
            lines.pop()
        for head, pts in zip(lines[0::2], lines[1::2] + [""] * (len(lines) % 2)):
            e = head.split()
            xy = np.array(pts.split(), dtype=np.float64).reshape(-1, 3)
            images[int(e[0])] = ColmapImage(
                int(e[0]),
                np.array(e[1:5], np.float64),
                np.array(e[5:8], np.float64),
                int(e[8]),
                " ".join(e[9:]),
                xy[:, :2],
                xy[:, 2].astype(np.int64),
            )
        path = folder / "points3D.txt"
        points = _read_points_text(path) if path.is_file() else ColmapPoints.empty()
    except (ValueError, IndexError) as err:
        raise DataError(
            f"malformed COLMAP text file ({err})",
            path=path,
            hint="re-export the model with `colmap model_converter`",
        ) from None
    return ColmapModel(cameras, images, points)


def _read_points_text(path: Path) -> ColmapPoints:
    rows = [ln.split() for ln in _data_lines(path)]
    ids = np.array([int(r[0]) for r in rows], dtype=np.int64)
    xyz = np.array([r[1:4] for r in rows], dtype=np.float64).reshape(-1, 3)
    rgb = np.array([r[4:7] for r in rows], dtype=np.float64).reshape(-1, 3).astype(np.uint8)
    err = np.array([float(r[7]) for r in rows], dtype=np.float64)
    tracks = [np.array(r[8:], dtype=np.int64).reshape(-1, 2) for r in rows]
    return ColmapPoints(ids, xyz, rgb, err, tracks)


def write_model_text(model: ColmapModel, folder: Path) -> None:
    """Writes the model as ``cameras.txt``, ``images.txt`` and ``points3D.txt``."""
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "cameras.txt", "w") as f:
        f.write("# CAMERA_ID, MODEL, WIDTH, HEIGHT, PARAMS[]\n")
        f.write(f"# Number of cameras: {len(model.cameras)}\n")
        f.writelines(
            f"{c.id} {c.model} {c.width} {c.height} {' '.join(repr(float(v)) for v in c.params)}\n"
            for c in model.cameras.values()
        )
    with open(folder / "images.txt", "w") as f:
        f.write(
            "# IMAGE_ID, QW, QX, QY, QZ, TX, TY, TZ, CAMERA_ID, NAME\n"
            "# POINTS2D[] as (X, Y, POINT3D_ID)\n"
        )
        f.write(f"# Number of images: {len(model.images)}\n")
        for im in model.images.values():
            vals = " ".join(repr(float(v)) for v in (*im.qvec, *im.tvec))
            f.write(f"{im.id} {vals} {im.camera_id} {im.name}\n")
            f.write(
                " ".join(
                    f"{x!r} {y!r} {int(p)}" for (x, y), p in zip(im.xys.tolist(), im.point3D_ids)
                )
                + "\n"
            )
    p = model.points
    with open(folder / "points3D.txt", "w") as f:
        f.write("# POINT3D_ID, X, Y, Z, R, G, B, ERROR, TRACK[] as (IMAGE_ID, POINT2D_IDX)\n")
        f.write(f"# Number of points: {len(p.ids)}\n")
        for i in range(len(p.ids)):
            track = " ".join(str(int(v)) for v in p.tracks[i].reshape(-1))
            xyz = " ".join(repr(float(v)) for v in p.xyz[i])
            f.write(
                f"{int(p.ids[i])} {xyz} {' '.join(str(int(v)) for v in p.rgb[i])} "
                f"{float(p.errors[i])!r} {track}\n"
            )


# ---------------------------------------------------------------------------- binary files
class _Reader:
    def __init__(self, path: Path):
        self.path, self.buf, self.pos = path, path.read_bytes(), 0

    def read(self, fmt: str):
        size = struct.calcsize("<" + fmt)
        if self.pos + size > len(self.buf):
            raise DataError(
                "is truncated (unexpected end of file)",
                path=self.path,
                hint="re-export the model with `colmap model_converter`",
            )
        vals = struct.unpack_from("<" + fmt, self.buf, self.pos)
        self.pos += size
        return vals

    def array(self, dtype: str, count: int) -> np.ndarray:
        size = np.dtype(dtype).itemsize * count
        if self.pos + size > len(self.buf):
            self.read(f"{size}x")  # raises the truncation error
        out = np.frombuffer(self.buf, dtype=dtype, count=count, offset=self.pos)
        self.pos += size
        return out

    def cstring(self) -> str:
        end = self.buf.find(b"\x00", self.pos)
        if end < 0:
            self.read("1x" * (len(self.buf) - self.pos + 1))
        s = self.buf[self.pos : end].decode("utf-8")
        self.pos = end + 1
        return s


def read_model_binary(folder: Path) -> ColmapModel:
    """Reads ``cameras.bin``, ``images.bin`` and ``points3D.bin`` (points optional)."""
    r = _Reader(folder / "cameras.bin")
    cameras: dict[int, ColmapCamera] = {}
    for _ in range(r.read("Q")[0]):
        cid, mid, w, h = r.read("iiQQ")
        if mid not in _MODEL_BY_ID:
            raise DataError(
                f"camera {cid} has the unsupported model id {mid}",
                path=r.path,
                hint=f"use one of {', '.join(SUPPORTED_MODELS)}",
            )
        name = _MODEL_BY_ID[mid]
        cameras[cid] = ColmapCamera(cid, name, w, h, r.array("<f8", CAMERA_MODELS[name][1]).copy())
    r = _Reader(folder / "images.bin")
    images: dict[int, ColmapImage] = {}
    for _ in range(r.read("Q")[0]):
        iid, *qt, cid = r.read("i7di")
        name = r.cstring()
        n2d = r.read("Q")[0]
        rec = r.array(np.dtype([("x", "<f8"), ("y", "<f8"), ("id", "<i8")]), n2d)
        xys = np.stack([rec["x"], rec["y"]], axis=-1)
        images[iid] = ColmapImage(
            iid, np.array(qt[:4]), np.array(qt[4:]), cid, name, xys, rec["id"].astype(np.int64)
        )
    path = folder / "points3D.bin"
    points = _read_points_binary(path) if path.is_file() else ColmapPoints.empty()
    return ColmapModel(cameras, images, points)


def _read_points_binary(path: Path) -> ColmapPoints:
    r = _Reader(path)
    n = r.read("Q")[0]
    ids, xyz, rgb, err, tracks = (
        np.zeros(n, np.int64),
        np.zeros((n, 3)),
        np.zeros((n, 3), np.uint8),
        np.zeros(n),
        [],
    )
    for i in range(n):
        pid, x, y, z, cr, cg, cb, e, tlen = r.read("Q3d3BdQ")
        ids[i], xyz[i], rgb[i], err[i] = pid, (x, y, z), (cr, cg, cb), e
        tracks.append(r.array("<i4", 2 * tlen).reshape(-1, 2).astype(np.int64))
    return ColmapPoints(ids, xyz, rgb, err, tracks)


def write_model_binary(model: ColmapModel, folder: Path) -> None:
    """Writes the model as ``cameras.bin``, ``images.bin`` and ``points3D.bin``."""
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "cameras.bin", "wb") as f:
        f.write(struct.pack("<Q", len(model.cameras)))
        for c in model.cameras.values():
            mid, nparams = CAMERA_MODELS[c.model]
            f.write(struct.pack("<iiQQ", c.id, mid, c.width, c.height))
            f.write(np.asarray(c.params, "<f8")[:nparams].tobytes())
    with open(folder / "images.bin", "wb") as f:
        f.write(struct.pack("<Q", len(model.images)))
        for im in model.images.values():
            f.write(struct.pack("<i7di", im.id, *im.qvec, *im.tvec, im.camera_id))
            f.write(im.name.encode("utf-8") + b"\x00")
            rec = np.zeros(len(im.point3D_ids), dtype=[("x", "<f8"), ("y", "<f8"), ("id", "<i8")])
            rec["x"], rec["y"], rec["id"] = im.xys[:, 0], im.xys[:, 1], im.point3D_ids
            f.write(struct.pack("<Q", len(rec)) + rec.tobytes())
    p = model.points
    with open(folder / "points3D.bin", "wb") as f:
        f.write(struct.pack("<Q", len(p.ids)))
        for i in range(len(p.ids)):
            f.write(
                struct.pack(
                    "<Q3d3BdQ",
                    int(p.ids[i]),
                    *p.xyz[i],
                    *p.rgb[i],
                    float(p.errors[i]),
                    len(p.tracks[i]),
                )
            )
            f.write(np.asarray(p.tracks[i], "<i4").tobytes())
