"""The per-frame repair post-pass (Difix3D+ style): renders through a repair model after training.

Each rendered frame goes through a run's repair model (:mod:`recon.repair`: the scene's fixer in
``RUN/repair/model`` or a local diffusers folder) with the nearest training photo warped into the
frame by the rendered depth as its reference, as training's repair rounds do
(:func:`recon.repair.source.render_condition`). Frames are repaired one by one, so a video
flickers where the model changes its mind between neighbouring frames; the post-pass is off by
default. Used by ``recon render --repair``, the viewer's ``repaired`` mode and ``recon eval
--repair`` (Difix3D+ scores the distilled scene with this pass on).
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Hashable
from pathlib import Path
from typing import Any

from torch import Tensor

from recon.cameras import Cameras
from recon.errors import ConfigError
from recon.render.render import RenderOutput

log = logging.getLogger(__name__)

MAKE_ONE = "make one with `recon repair pairs RUN` then `recon repair fit RUN`, or pass --repair PATH (a local diffusers folder)"


class FrameRepair:
    """Repairs single rendered frames with a repair model and the run's training photos.

    Args:
        model: a :class:`recon.repair.source.RepairModel`.
        cameras: the training cameras.
        photos: one [H, W, 3] photo in [0, 1] per training camera.
        note: one line about the model (the gate's verdict when it was fitted), or "".
    """

    def __init__(self, model: Any, cameras: Cameras, photos: list[Tensor], note: str = ""):
        if len(cameras) != len(photos) or len(photos) == 0:
            raise ValueError(f"FrameRepair needs one photo per training camera, got {len(photos)} for {len(cameras)}")
        self.model, self.cameras, self.photos, self.note = model, cameras, photos, note
        self._depths: dict[tuple[Hashable, int], Tensor] = {}  # reference depths: the model does not change
        self._lock = threading.Lock()

    @property
    def any_background(self) -> bool:
        """Whether the model repairs renders on any background (see ``recon.repair.fixer.Fixer.any_background``);
        models that do not say are taken to."""
        return bool(getattr(self.model, "any_background", True))

    def __call__(self, out: RenderOutput, camera: Cameras, render_view: Callable[[Cameras], RenderOutput],
                 key: Hashable = None) -> Tensor:
        """The repaired frame.

        Args:
            out: the frame's render (batch of one) at ``camera``.
            camera: the frame's camera (one).
            render_view: renders another camera with the same model and settings (the reference's depth).
            key: names the model behind ``render_view`` (cached reference depths are per key).

        Returns:
            [H, W, 3] in [0, 1].
        """
        from recon.repair.source import nearest_camera, render_condition

        j = nearest_camera(camera, self.cameras)
        ref = self.cameras[j].to(camera.device)
        with self._lock:  # clients render from their own threads
            depth = self._depths.get((key, j))
            if depth is None:
                depth = self._depths[(key, j)] = render_view(ref).depth[0, ..., 0]  # [Hs, Ws]
        inputs, _, _ = render_condition(out, camera, self.photos[j].to(depth.device), ref, depth)  # [1, 8, H, W]
        return self.model.repair(inputs.float().cpu())[0].permute(1, 2, 0)  # [H, W, 3]


def gate_note(model_dir: Path) -> str:
    """The verdict ``recon repair fit`` saved beside the run's model (``RUN/repair/gate.json``), or ""."""
    gate = model_dir.parent / "gate.json"
    try:
        return str(json.loads(gate.read_text())["reason"]) if gate.is_file() else ""
    except (OSError, ValueError, KeyError) as err:
        log.warning("cannot read %s: %s", gate, err)
        return ""


def run_model_dir(run_dir: Path) -> Path:
    """``RUN/repair/model``: where ``recon repair fit`` saves the run's fixer."""
    from recon.repair.workflow import repair_dir

    return repair_dir(run_dir) / "model"


def load_frame_repair(run: Any, model_path: str | Path | None = None, scene: Any = None, **options: Any) -> FrameRepair:
    """The repair post-pass of a loaded run (:func:`recon.run.load_run`).

    Args:
        run: the run.
        model_path: a local diffusers folder (None = the run's fitted fixer, ``RUN/repair/model``).
        scene: the run's scene when already read (:func:`recon.run.load_run_scene`), else read here.
        **options: a pipeline's options (:func:`recon.repair.pretrained.pipeline_options`).

    Raises:
        ConfigError: no fitted model and no ``model_path``, or a bad model folder.
        DataError: the run's training photos cannot be read.
    """
    from recon.repair.pretrained import load_repair_model
    from recon.run import load_run_scene

    note = ""
    if model_path is None:
        model_path = run_model_dir(run.run_dir)
        if not model_path.is_dir():
            raise ConfigError("the run has no repair model", path=model_path, hint=MAKE_ONE)
        note = gate_note(model_path)
    model = load_repair_model(model_path, **options)
    scene = scene if scene is not None else load_run_scene(run)
    train = list(run.split.train)
    return FrameRepair(model, scene.cameras[train], [scene.images[i] for i in train], note)


def bare_repair_flag(argv: list[str]) -> list[str]:
    """``--repair`` without a folder (last, or followed by another option) means ``--repair auto``: the run's model."""
    argv = list(argv)
    if "--repair" in argv:
        i = argv.index("--repair")
        if i + 1 == len(argv) or argv[i + 1].startswith("-"):
            argv.insert(i + 1, "auto")
    return argv
