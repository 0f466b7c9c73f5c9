"""The repair feedback loop: rounds of repaired pseudo views over training (issue #11, point 4).

:class:`RepairRounds` is the :class:`~recon.repair.source.PseudoViewSource` the trainer gets. At
each round start (:mod:`recon.repair.schedule`) it asks for the repair model (the first time:
fit or load, then gate; ``None`` turns repair off for the rest of the run), places pseudo cameras
between neighbouring training cameras (farther each round; on their orbit around the object
for object captures) plus an optional whole orbit, renders and
repairs them with :class:`~recon.repair.source.RepairedViews` (alpha x distance weights, colour
matched to the warped nearest photo) and replaces the previous set. Each step it hands back at
most one view, drawn with ``probability`` by a generator derived from the seed and the step (the
training RNG stream is not touched, so runs resume bit for bit), its weight scaled by the
schedule's :func:`~recon.repair.schedule.loss_weight`.

Each round is saved as ``RUN/repair/round_K/`` (``views.pt``: cameras, repaired images and
weights as tensors; ``round.json``; PNGs to look at) and reloaded on resume, so a run resumed in
the middle of a round trains on exactly the views it had.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import torch
from PIL import Image
from torch import Tensor

from recon.cameras import Cameras
from recon.config import RepairConfig
from recon.render.render import RenderOutput
from recon.repair.schedule import (
    auto_tilt,
    loss_weight,
    object_centred,
    orbit_between,
    orbit_beyond,
    orbit_cameras,
    orbit_tilted,
    round_at,
    round_fraction,
    round_steps,
)
from recon.repair.source import (
    PseudoView,
    PseudoViewConfig,
    RepairedViews,
    RepairModel,
    between_cameras,
    stack_cameras,
)

ModelFn = Callable[[int], "RepairModel | None"]


class RepairRounds:
    """Rounds of repaired pseudo views (see the module docstring).

    Args:
        config: the run's repair settings.
        iterations: length of the training schedule.
        seed: the run's seed (the per-step draws derive from it).
        model_fn: ``model_fn(step)`` -> the repair model, or None when repair should stop; called
            once, at the first round this source starts.
        render_fn: ``render_fn(camera) -> RenderOutput`` with the current parameters.
        train_cameras: the training cameras.
        train_images: one [H, W, 3] photo per training camera.
        folder: where rounds are saved (``RUN/repair``); None = nothing saved.
        say: called with one line of text per event (round made, repair off and why).
        object_capture: whether the scene is an object capture (``orbit`` -1 then puts the pseudo
            cameras on the orbit); None = decided from the cameras (:func:`object_centred`).
        masks: the training views' object masks (used with ``config.hull``), or None.
    """

    def __init__(
        self,
        config: RepairConfig,
        iterations: int,
        seed: int,
        model_fn: ModelFn,
        render_fn: Callable[[Cameras], RenderOutput],
        train_cameras: Cameras,
        train_images: list[Tensor],
        folder: Path | None = None,
        say: Callable[[str], None] = print,
        object_capture: bool | None = None,
        masks: list[Tensor] | None = None,
    ):
        self.config, self.iterations, self.seed = config, iterations, seed
        if object_capture is None:
            object_capture = object_centred(train_cameras)
        self.on_orbit = config.orbit < 0 and object_capture
        self.tilt = config.orbit_tilt if config.orbit_tilt >= 0 or not self.on_orbit else auto_tilt(train_cameras)
        self.model_fn, self.render_fn, self.say = model_fn, render_fn, say
        self.train_cameras, self.train_images, self.folder = train_cameras, train_images, folder
        self.masks = masks if config.hull else None
        self.model: RepairModel | None = None
        self.off = False
        self.round = -1
        self.current: list[PseudoView] = []

    def cameras_for_round(self, k: int) -> Cameras:
        """Round ``k``'s pseudo cameras: between neighbours from both ends (on the orbit for object
        captures with ``orbit`` -1, else on the straight line), then ``orbit_beyond`` cameras past the
        ends of the capture's arc and ``orbit_tilt`` cameras above and below each training camera
        (object captures), then ``orbit`` > 0 cameras on the whole orbit."""
        t = round_fraction(self.config, k)
        between = orbit_between if self.on_orbit else between_cameras
        cams = between(self.train_cameras, (t,) if t >= 0.5 else (t, 1 - t))
        extra = []
        if self.on_orbit and self.config.orbit_beyond > 0:  # past the arc's ends, farther each round
            extra.append(orbit_beyond(self.train_cameras, 2 * t * self.config.orbit_beyond))
        if self.on_orbit and self.tilt > 0:  # above and below the capture's ring
            extra.append(orbit_tilted(self.train_cameras, 2 * t * self.tilt))
        if self.config.orbit > 0:
            extra.append(orbit_cameras(self.train_cameras, self.config.orbit))
        return stack_cameras([cams, *(c.to(cams.device) for c in extra)])

    def views(self, step: int) -> list[PseudoView]:
        """At most one repaired view for ``step``, its weight scaled by the schedule (empty = none)."""
        k = round_at(self.config, self.iterations, step)
        if k > self.round and not self.off:
            self.start_round(k, step)
        w = loss_weight(self.config, self.iterations, step)
        if self.off or not self.current or w <= 0:
            return []
        gen = torch.Generator().manual_seed(self.seed * 1_000_003 + step * 7 + 11)
        if float(torch.rand(1, generator=gen)) >= self.config.probability:
            return []
        view = self.current[int(torch.randint(len(self.current), (1,), generator=gen))]
        return [PseudoView(view.camera, view.image, view.weight * w)]

    def start_round(self, k: int, step: int) -> None:
        """Makes round ``k``'s views now (asking ``model_fn`` for the model the first time)."""
        if self.model is None:
            self.model = self.model_fn(step)
            if self.model is None:
                self.off, self.current = True, []
                return
        c = self.config
        source = RepairedViews(
            self.model,
            self.render_fn,
            self.train_cameras,
            self.train_images,
            self.cameras_for_round(k),
            PseudoViewConfig(
                refresh_every=self.iterations + 1,
                alpha_threshold=c.alpha_threshold,
                distance_gain=c.distance_gain,
                color_match=c.color_match,
            ),
            masks=self.masks,
        )
        self.current, self.round = source.views(step), k
        tilt = 2 * round_fraction(c, k) * self.tilt if self.on_orbit else 0.0
        self.say(
            f"repair round {k + 1}/{len(round_steps(c, self.iterations))} at step {step}: "
            f"{len(self.current)} pseudo views {round_fraction(c, k):.2f} of the way between training cameras"
            + (" on their orbit" if self.on_orbit else "")
            + (f", tilted up and down by {tilt:.0f} degrees" if tilt > 0 else "")
            + (f" + {c.orbit} on an orbit" if c.orbit > 0 else "")
        )
        if self.folder is not None:
            save_round(self.folder / f"round_{k}", k, step, self.current)

    def restore(self, step: int) -> bool:
        """Reloads the newest saved round started at or before ``step`` (on resume); False if none."""
        k = round_at(self.config, self.iterations, step)
        if self.folder is None or k < 0 or not (self.folder / f"round_{k}" / "views.pt").is_file():
            return False
        self.round, self.current = k, load_round(self.folder / f"round_{k}", self.train_cameras.device)
        return True


def save_round(folder: Path, k: int, step: int, views: list[PseudoView]) -> None:
    """Writes a round's views: ``views.pt`` (exact tensors), ``round.json`` and ``view_XX.png``
    (repaired image | weight) to look at."""
    folder.mkdir(parents=True, exist_ok=True)
    cams = [v.camera.to("cpu") for v in views]
    torch.save(
        {
            "round": k,
            "step": step,
            "Ks": [c.Ks for c in cams],
            "viewmats": [c.viewmats for c in cams],
            "widths": [c.widths for c in cams],
            "heights": [c.heights for c in cams],
            "images": [v.image.cpu() for v in views],
            "weights": [v.weight.cpu() for v in views],
        },
        folder / "views.pt",
    )
    (folder / "round.json").write_text(json.dumps({"round": k, "step": step, "views": len(views)}, indent=1))
    for i, v in enumerate(views):
        tile = torch.cat([v.image.cpu(), v.weight.cpu()[..., None].expand(-1, -1, 3)], 1)  # [H, 2W, 3]
        Image.fromarray((tile.clamp(0, 1) * 255).round().to(torch.uint8).numpy()).save(folder / f"view_{i:02d}.png")


def load_round(folder: Path, device: torch.device | str = "cpu") -> list[PseudoView]:
    """The views :func:`save_round` wrote, bit for bit."""
    data = torch.load(folder / "views.pt", weights_only=True)
    return [
        PseudoView(Cameras(Ks=K, viewmats=vm, widths=w, heights=h).to(device), img.to(device), wt.to(device))
        for K, vm, w, h, img, wt in zip(
            data["Ks"], data["viewmats"], data["widths"], data["heights"], data["images"], data["weights"], strict=True
        )
    ]
