"""Stand-ins for viser client handles, so render threads can be tested without a browser."""

from __future__ import annotations

import contextlib
import threading
from types import SimpleNamespace

import numpy as np

from viewer.cameras import look_at_pose


class FakeCamera:
    def __init__(self, position=(0.0, 0.0, -4.0), width=160, height=120, fov=0.8):
        self.image_width, self.image_height, self.fov = width, height, fov
        self.callbacks = []
        self.move_to(position)

    def move_to(self, position) -> None:
        pose = look_at_pose(np.asarray(position, float), np.zeros(3), np.array([0.0, -1.0, 0.0]), self.fov)
        self.wxyz, self.position = pose.wxyz, pose.position

    @property
    def aspect(self) -> float:
        return self.image_width / self.image_height

    def on_update(self, cb):
        self.callbacks.append(cb)
        return cb


class FakeScene:
    def __init__(self, fail: bool = False):
        self.images: list[np.ndarray] = []
        self.fail = fail
        self.lock = threading.Lock()

    def set_background_image(self, image, format="jpeg", jpeg_quality=None):
        if self.fail:
            raise ConnectionError("client disconnected")
        with self.lock:
            self.images.append(np.array(image))


class FakeClient:
    _next_id = 1000

    def __init__(self, fail: bool = False, **camera):
        FakeClient._next_id += 1
        self.client_id = FakeClient._next_id
        self.camera = FakeCamera(**camera)
        self.scene = FakeScene(fail)
        self.markdown = []
        self.gui = SimpleNamespace(add_markdown=self._add_markdown)

    def _add_markdown(self, content, order=None):
        handle = SimpleNamespace(content=content)
        self.markdown.append(handle)
        return handle

    @contextlib.contextmanager
    def atomic(self):
        yield

    def move(self, position) -> None:
        self.camera.move_to(position)
        for cb in self.camera.callbacks:
            cb(self.camera)
