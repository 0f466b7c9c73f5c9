"""Camera-path recording in the viewer GUI: add key frames, play them, save/load JSON."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np

from recon.errors import ReconError
from viewer.cameras import ViewPose, fit_resolution
from viewer.paths import CameraPath


class PathRecorder:
    """Adds a "Camera path" folder to a viser server's GUI.

    Args:
        server: the ``viser.ViserServer``.
        path_dir: folder that relative file names resolve against (cwd when None).
        scale: size of the key-frame frustums drawn in the scene.
    """

    def __init__(self, server, path_dir: Path | None = None, scale: float = 0.1):
        self.server = server
        self.path_dir = Path.cwd() if path_dir is None else Path(path_dir)
        self.scale = scale
        self.path = CameraPath()
        self._handles: list = []
        gui = server.gui
        with gui.add_folder("Camera path", expand_by_default=False):
            self._add = gui.add_button("Add key frame", hint="the current view becomes a key frame")
            self._clear = gui.add_button("Clear key frames")
            self._seconds = gui.add_number("Seconds", initial_value=4.0, min=0.1, step=0.1)
            self._fps = gui.add_number("FPS", initial_value=30.0, min=1.0, step=1.0)
            self._loop = gui.add_checkbox("Loop", initial_value=False)
            self._play = gui.add_button("Play")
            self._file = gui.add_text("File", initial_value="camera_path.json")
            self._save = gui.add_button("Save")
            self._load = gui.add_button("Load")
            self._status = gui.add_markdown("0 key frames")
        self._add.on_click(lambda e: self.add_keyframe(e.client.camera))
        self._clear.on_click(lambda _: self.set_keyframes([]))
        self._save.on_click(lambda _: self._report(self.save))
        self._load.on_click(lambda _: self._report(self.load))
        self._play.on_click(lambda e: threading.Thread(target=self.play, args=(e.client,),
                                                       daemon=True).start())

    # ------------------------------------------------------------------ key frames
    def add_keyframe(self, camera) -> ViewPose:
        """Appends the pose of a viser ``CameraHandle`` and remembers its canvas aspect."""
        pose = ViewPose(np.array(camera.wxyz), np.array(camera.position), float(camera.fov))
        if camera.image_height > 0:
            self.path.width, self.path.height = fit_resolution(camera.aspect, 960)
        self.set_keyframes([*self.path.keyframes, pose])
        return pose

    def set_keyframes(self, keyframes: list[ViewPose]) -> None:
        for h in self._handles:
            h.remove()
        self._handles = [
            self.server.scene.add_camera_frustum(
                f"/camera_path/key_{i:03d}", fov=k.fov, aspect=self.path.width / self.path.height,
                scale=self.scale, color=(40, 200, 90), thickness=1.5, thickness_units="screen", wxyz=k.wxyz, position=k.position)
            for i, k in enumerate(keyframes)
        ]
        self.path.keyframes = list(keyframes)
        self._status.content = f"{len(keyframes)} key frames"

    def current_path(self) -> CameraPath:
        self.path.seconds = float(self._seconds.value)
        self.path.fps = float(self._fps.value)
        self.path.loop = bool(self._loop.value)
        return self.path

    # ------------------------------------------------------------------ files
    def file(self) -> Path:
        p = Path(self._file.value).expanduser()
        return p if p.is_absolute() else self.path_dir / p

    def save(self) -> str:
        if not self.path.keyframes:
            raise ReconError("no key frames to save", hint="press 'Add key frame' first")
        out = self.current_path().save(self.file())
        return f"saved {len(self.path.keyframes)} key frames to `{out}`"

    def load(self) -> str:
        loaded = CameraPath.load(self.file())
        self.path = loaded
        self._seconds.value, self._fps.value, self._loop.value = loaded.seconds, loaded.fps, loaded.loop
        self.set_keyframes(loaded.keyframes)
        return f"loaded {len(loaded.keyframes)} key frames from `{self.file()}`"

    def _report(self, action) -> None:
        try:
            self._status.content = action()
        except (ReconError, OSError) as err:
            self._status.content = f"**error**: {err}"

    def play(self, client) -> None:
        """Moves one client's camera along the interpolated path in real time."""
        path = self.current_path()
        if not path.keyframes:
            return
        for pose in path.frames():
            t0 = time.perf_counter()
            with client.atomic():
                client.camera.wxyz = pose.wxyz
                client.camera.position = pose.position
                client.camera.fov = pose.fov
            time.sleep(max(0.0, 1.0 / path.fps - (time.perf_counter() - t0)))
