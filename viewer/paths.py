"""Camera paths: key frames, JSON files, interpolation, and default orbit / spiral paths.

A :class:`CameraPath` is a list of key frames (viser poses) played at equal time intervals.
Positions follow a uniform Catmull-Rom spline through the key frames, orientations a spherical
linear interpolation (slerp) between neighbouring key frames, and the field of view changes
linearly. Files are plain JSON::

    {"format": "recon.camera_path", "version": 1, "fps": 30, "seconds": 4.0, "loop": false,
     "width": 640, "height": 480,
     "keyframes": [{"position": [x, y, z], "wxyz": [w, x, y, z], "fov": 0.9}, ...]}

``wxyz``/``position`` follow viser (camera-to-world, OpenCV camera axes) and ``fov`` is the
vertical field of view in radians.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from recon.cameras import Cameras
from recon.errors import ConfigError
from recon.geometry import quat_to_rotmat_np
from viewer.cameras import ViewPose, cameras_to_poses, look_at_pose, pose_to_cameras

FORMAT = "recon.camera_path"
VERSION = 1
_KEYS = {"format", "version", "fps", "seconds", "loop", "width", "height", "keyframes"}


@dataclass
class CameraPath:
    """Key frames and playback settings of a camera path.

    Attributes:
        keyframes: poses visited in order, at equal time intervals.
        fps: frames per second of the rendered video.
        seconds: duration of the whole path.
        loop: whether the path returns from the last key frame to the first.
        width: video width in pixels.
        height: video height in pixels.
    """

    keyframes: list[ViewPose] = field(default_factory=list)
    fps: float = 30.0
    seconds: float = 4.0
    loop: bool = False
    width: int = 640
    height: int = 480

    @property
    def num_frames(self) -> int:
        return max(1, int(round(self.fps * self.seconds)))

    def frames(self, num_frames: int | None = None) -> list[ViewPose]:
        """The interpolated poses of every video frame."""
        return interpolate(self.keyframes, self.num_frames if num_frames is None else num_frames,
                           loop=self.loop)

    def cameras(self, num_frames: int | None = None) -> Cameras:
        """The interpolated frames as recon cameras of ``width`` x ``height``."""
        return pose_to_cameras(self.frames(num_frames), self.width, self.height)

    # ------------------------------------------------------------------ files
    def to_json(self) -> dict:
        return {
            "format": FORMAT,
            "version": VERSION,
            "fps": self.fps,
            "seconds": self.seconds,
            "loop": self.loop,
            "width": self.width,
            "height": self.height,
            "keyframes": [
                {"position": [float(v) for v in k.position], "wxyz": [float(v) for v in k.wxyz],
                 "fov": float(k.fov)}
                for k in self.keyframes
            ],
        }

    def save(self, path: str | Path) -> Path:
        """Writes the path as JSON (atomically: temp file + rename)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(self.to_json(), indent=2))
        tmp.replace(path)
        return path

    @classmethod
    def load(cls, path: str | Path) -> "CameraPath":
        """Reads a path written by :meth:`save`; raises ``ConfigError`` naming the problem."""
        path = Path(path)
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            raise ConfigError("camera path file not found", path=path,
                              hint="use orbit or spiral, or save a path from the viewer") from None
        except (OSError, ValueError) as err:
            raise ConfigError(f"not a readable JSON camera path ({err})", path=path) from None
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise ConfigError(f"not a camera path (expected \"format\": \"{FORMAT}\")", path=path)
        unknown = set(data) - _KEYS
        if unknown:
            raise ConfigError(f"unknown keys {sorted(unknown)}", path=path)
        if data.get("version") != VERSION:
            raise ConfigError(f"unsupported version {data.get('version')!r} (expected {VERSION})",
                              path=path)
        try:
            keyframes = [
                ViewPose(np.asarray(k["wxyz"], dtype=np.float64).reshape(4),
                         np.asarray(k["position"], dtype=np.float64).reshape(3), float(k["fov"]))
                for k in data["keyframes"]
            ]
            out = cls(keyframes=keyframes, fps=float(data.get("fps", 30.0)),
                      seconds=float(data.get("seconds", 4.0)), loop=bool(data.get("loop", False)),
                      width=int(data.get("width", 640)), height=int(data.get("height", 480)))
        except (KeyError, TypeError, ValueError) as err:
            raise ConfigError(f"malformed key frame or setting ({err!r})", path=path) from None
        if not keyframes:
            raise ConfigError("the camera path has no key frames", path=path)
        for k in keyframes:
            if not (np.isfinite(k.position).all() and np.isfinite(k.wxyz).all()
                    and np.linalg.norm(k.wxyz) > 0 and 0 < k.fov < math.pi):
                raise ConfigError("key frame with a non-finite pose or a fov outside (0, pi)",
                                  path=path)
        if out.fps <= 0 or out.seconds <= 0 or out.width <= 0 or out.height <= 0:
            raise ConfigError("fps, seconds, width and height must be positive", path=path)
        return out


# ---------------------------------------------------------------------- interpolation
def slerp(q0: np.ndarray, q1: np.ndarray, t: float) -> np.ndarray:
    """Spherical linear interpolation of unit quaternions (shortest arc)."""
    q0 = q0 / np.linalg.norm(q0)
    q1 = q1 / np.linalg.norm(q1)
    dot = float(q0 @ q1)
    if dot < 0.0:
        q1, dot = -q1, -dot
    if dot > 0.9995:
        q = q0 + t * (q1 - q0)
        return q / np.linalg.norm(q)
    theta = math.acos(min(1.0, dot))
    return (math.sin((1 - t) * theta) * q0 + math.sin(t * theta) * q1) / math.sin(theta)


def _catmull_rom(p0, p1, p2, p3, t: float) -> np.ndarray:
    t2, t3 = t * t, t * t * t
    return 0.5 * ((2 * p1) + (-p0 + p2) * t + (2 * p0 - 5 * p1 + 4 * p2 - p3) * t2
                  + (-p0 + 3 * p1 - 3 * p2 + p3) * t3)


def interpolate(keyframes: list[ViewPose], num_frames: int, *, loop: bool = False) -> list[ViewPose]:
    """Poses of ``num_frames`` frames at equal times through ``keyframes``.

    The first frame is the first key frame; without ``loop`` the last frame is the last key
    frame, with ``loop`` the path closes back to the first key frame (which is not repeated).
    Positions pass exactly through every key frame (Catmull-Rom), orientations slerp.
    """
    if not keyframes:
        raise ValueError("interpolate needs at least one key frame")
    n = len(keyframes)
    if n == 1 or num_frames <= 1:
        return [keyframes[0]] * max(1, num_frames)
    pos = np.stack([np.asarray(k.position, dtype=np.float64) for k in keyframes])  # [K, 3]
    segments = n if loop else n - 1

    def at(i: int) -> int:
        return i % n if loop else min(max(i, 0), n - 1)

    out = []
    for f in range(num_frames):
        s = f / num_frames * segments if loop else f / (num_frames - 1) * segments
        i = min(int(math.floor(s)), segments - 1)
        t = s - i
        p = _catmull_rom(pos[at(i - 1)], pos[at(i)], pos[at(i + 1)], pos[at(i + 2)], t)
        q = slerp(np.asarray(keyframes[at(i)].wxyz, float), np.asarray(keyframes[at(i + 1)].wxyz, float), t)
        fov = (1 - t) * keyframes[at(i)].fov + t * keyframes[at(i + 1)].fov
        out.append(ViewPose(q, p, float(fov)))
    return out


# ---------------------------------------------------------------------- default paths
def focus_point(cameras: Cameras) -> np.ndarray:
    """[3] the point closest (least squares) to every camera's optical axis.

    Falls back to the point one median camera distance in front of the mean camera when the
    axes are nearly parallel (forward-facing captures).
    """
    c2w = cameras.camtoworlds.double().cpu().numpy()  # [N, 4, 4]
    centres, dirs = c2w[:, :3, 3], c2w[:, :3, 2]  # [N, 3], [N, 3]
    proj = np.eye(3)[None] - dirs[:, :, None] * dirs[:, None, :]  # [N, 3, 3]
    A, b = proj.sum(0), np.einsum("nij,nj->i", proj, centres)
    if len(cameras) >= 2 and np.linalg.eigvalsh(A)[0] > 1e-2 * len(cameras):
        point = np.linalg.solve(A, b)
        if np.all(((point[None] - centres) * dirs).sum(-1) > 0):  # in front of every camera
            return point
    spread = np.linalg.norm(centres - centres.mean(0), axis=-1).max()
    mean_dir = dirs.mean(0) / max(np.linalg.norm(dirs.mean(0)), 1e-9)
    return centres.mean(0) + mean_dir * max(4.0 * spread, 1.0)


def mean_up(cameras: Cameras) -> np.ndarray:
    """[3] the average image-up direction (-y camera axis) of the cameras in world space."""
    c2w = cameras.camtoworlds.double().cpu().numpy()
    up = -c2w[:, :3, 1].mean(0)
    return up / max(np.linalg.norm(up), 1e-9)


def _mean_fov(cameras: Cameras) -> float:
    return float(np.mean([p.fov for p in cameras_to_poses(cameras)]))


def orbit_path(cameras: Cameras, num_frames: int = 120) -> list[ViewPose]:
    """A full circle around the focus point at the cameras' mean distance and height."""
    target, up = focus_point(cameras), mean_up(cameras)
    centres = cameras.centers.double().cpu().numpy() - target  # [N, 3]
    heights = centres @ up  # [N]
    flat = centres - heights[:, None] * up  # [N, 3] in the orbit plane
    radius = float(np.linalg.norm(flat, axis=-1).mean())
    e1 = flat[0] / max(np.linalg.norm(flat[0]), 1e-9)
    if np.linalg.norm(flat[0]) < 1e-9:
        e1 = np.cross(up, np.eye(3)[int(np.argmin(np.abs(up)))])
        e1 /= np.linalg.norm(e1)
    e2 = np.cross(up, e1)
    fov, h = _mean_fov(cameras), float(heights.mean())
    poses = []
    for f in range(num_frames):
        a = 2 * math.pi * f / num_frames
        pos = target + h * up + radius * (math.cos(a) * e1 + math.sin(a) * e2)
        poses.append(look_at_pose(pos, target, up, fov))
    return poses


def spiral_path(cameras: Cameras, num_frames: int = 120, rotations: float = 2.0) -> list[ViewPose]:
    """An LLFF-style spiral around the mean camera, looking at the focus point."""
    c2w = cameras.camtoworlds.double().cpu().numpy()
    centre = c2w[:, :3, 3].mean(0)
    target, up = focus_point(cameras), mean_up(cameras)
    base = look_at_pose(centre, target, up, _mean_fov(cameras))
    R = quat_to_rotmat_np(base.wxyz)  # columns: right, down, forward
    local = (c2w[:, :3, 3] - centre) @ R  # [N, 3] camera offsets in the mean camera frame
    radii = np.maximum(np.percentile(np.abs(local), 90, axis=0), 1e-3 * max(
        np.linalg.norm(target - centre), 1e-6))
    poses = []
    for f in range(num_frames):
        t = 2 * math.pi * rotations * f / num_frames
        offset = radii * np.array([math.cos(t), -math.sin(t), -math.sin(0.5 * t)])
        poses.append(look_at_pose(centre + R @ offset, target, up, base.fov))
    return poses
