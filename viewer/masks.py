"""Training photos with their masks over them (photos in the wild, issue #15).

A :class:`MaskSource` hands the viewer plain arrays: a training photo and, per mask kind, the
pixels it concerns. :class:`MaskView` is the GUI (a "Masks" folder: a photo dropdown, the tinted
photo, a legend); :func:`overlay_masks` does the tinting. Kinds, in painting order:

* ``user``: pixels the user masked out (a ``masks/`` folder), yellow;
* ``replaced``: pixels the weather filter replaced by the multi-view median (``RUN/wild/median_replaced``), blue;
* ``left out``: outliers too few views agree on, left out of the loss (``RUN/wild/median_valid``), magenta;
* ``robust``: pixels the robust loss drops (``RUN/wild/<stem>.png``, live: the latest ones), red.

:func:`run_mask_source` reads a finished run (``recon view RUN``), :func:`live_mask_source` the
training's own state (``recon train --viewer``: the robust masks change as training goes and
:meth:`MaskView.refresh` shows the new ones).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from torch import Tensor

from recon.errors import ReconError
from recon.wild.masks import MASK_FOLDER, read_binary_mask
from recon.wild.median import MEDIAN_REPLACED, MEDIAN_VALID
from viewer.render import to_uint8

log = logging.getLogger(__name__)

MASK_COLOURS: dict[str, tuple[int, int, int]] = {
    "user": (250, 200, 20),
    "replaced": (40, 130, 250),
    "left out": (230, 40, 230),
    "robust": (235, 30, 30),
}
"""Tint of each kind, in painting order (a later kind paints over an earlier one)."""
_COLOUR_NAMES = {"user": "yellow", "replaced": "blue", "left out": "magenta", "robust": "red"}


@dataclass
class MaskSource:
    """The training photos and their masks, as plain arrays.

    Attributes:
        names: training photo names (the dropdown's options).
        photo: view index -> [H, W, 3] uint8 photo.
        masks: view index -> kind (a key of :data:`MASK_COLOURS`) -> [H, W] bool, True on the pixels
            the kind concerns (dropped, replaced); absent kinds are left out.
    """

    names: list[str]
    photo: Callable[[int], np.ndarray]
    masks: Callable[[int], dict[str, np.ndarray]]


def overlay_masks(photo: np.ndarray, masks: dict[str, np.ndarray], strength: float = 0.6) -> np.ndarray:
    """The photo with each kind's pixels tinted: ``(1 - strength) x pixel + strength x colour``.

    Args:
        photo: [H, W, 3] uint8.
        masks: kind -> [H, W] bool; kinds are painted in :data:`MASK_COLOURS` order.
        strength: how much of the colour replaces the pixel.

    Returns:
        [H, W, 3] uint8.
    """
    out = photo.astype(np.float64)
    for kind, colour in MASK_COLOURS.items():
        mask = masks.get(kind)
        if mask is None:
            continue
        if mask.shape != photo.shape[:2]:
            raise ValueError(f"{kind} mask is {mask.shape}, photo is {photo.shape[:2]}")
        out[mask] = (1 - strength) * out[mask] + strength * np.asarray(colour, np.float64)
    return np.clip(np.round(out), 0, 255).astype(np.uint8)


def legend(masks: dict[str, np.ndarray]) -> str:
    """Markdown: each present kind's colour and share of the photo's pixels."""
    parts = [
        f"**{_COLOUR_NAMES[kind]}**: {kind} {100 * masks[kind].mean():.1f} %" for kind in MASK_COLOURS if kind in masks
    ]
    return "  \n".join(parts) if parts else "no masks for this photo"


def _dropped(path: Path, shape: tuple[int, int]) -> np.ndarray | None:
    """[H, W] bool pixels a saved mask file marks 0, or None (missing, unreadable or another size)."""
    if not path.is_file():
        return None
    try:
        mask = read_binary_mask(path).numpy() < 0.5
    except ReconError as err:
        log.warning("mask not shown: %s", err)
        return None
    return mask if mask.shape == shape else None


def saved_masks(wild_dir: Path, name: str, shape: tuple[int, int]) -> dict[str, np.ndarray]:
    """The masks training saved under ``RUN/wild`` for photo ``name`` (robust, replaced, left out)."""
    stem = Path(name).stem
    files = {"replaced": wild_dir / MEDIAN_REPLACED, "left out": wild_dir / MEDIAN_VALID, "robust": wild_dir}
    found = {kind: _dropped(folder / f"{stem}.png", shape) for kind, folder in files.items()}
    return {kind: m for kind, m in found.items() if m is not None}


def _has_saved_masks(wild_dir: Path) -> bool:
    return any(d.is_dir() and any(d.glob("*.png")) for d in (wild_dir, wild_dir / MEDIAN_REPLACED))


def run_mask_source(run: Any) -> MaskSource | None:
    """The mask view of a finished run (a :class:`recon.run.LoadedRun`), or None when it has no masks.

    A run has masks when training saved some under ``RUN/wild`` or it names user masks (a folder
    in ``wild.masks``, or the ``masks/`` its SfM undistorted). The photos (and user masks) are read
    on first use, through :func:`recon.run.load_run_scene`: the images the run trained on.
    """
    if run is None:
        return None
    wild_dir = Path(run.run_dir) / "wild"
    option = run.config.wild.masks
    user_folder = option not in ("auto", "none") and Path(option).expanduser().is_dir()
    sfm_masks = option == "auto" and run.sfm_dir is not None and (Path(run.sfm_dir) / MASK_FOLDER).is_dir()
    if not (_has_saved_masks(wild_dir) or user_folder or sfm_masks):
        return None
    train = list(run.split.train)
    names = [run.names[i] for i in train]
    if not names:
        return None
    lock, loaded = threading.Lock(), {}

    def load() -> tuple[list[Tensor], list[Tensor] | None]:
        with lock:
            if not loaded:
                from recon.run import load_run_scene
                from recon.wild.terms import user_masks, wild_enabled

                scene = load_run_scene(run)
                loaded["photos"] = [scene.images[i] for i in train]
                try:
                    loaded["user"] = user_masks(run.config, scene, train, wild_enabled(run.config.wild, scene))
                except ReconError as err:
                    log.warning("user masks not shown: %s", err)
                    loaded["user"] = None
            return loaded["photos"], loaded["user"]

    def photo(v: int) -> np.ndarray:
        return to_uint8(load()[0][v])

    def masks(v: int) -> dict[str, np.ndarray]:
        photos, user = load()
        found = saved_masks(wild_dir, names[v], tuple(photos[v].shape[:2]))
        if user is not None:
            found["user"] = user[v].numpy() < 0.5
        return found

    return MaskSource(names, photo, masks)


def live_mask_source(names: list[str], photos: list[Tensor], wild: Any, run_dir: Path | None) -> MaskSource | None:
    """The mask view during training, or None when the run has no masks.

    Args:
        names: training photo names, in training-view order.
        photos: per training view [H, W, 3] photo as trained on (after the weather filter).
        wild: the run's :class:`recon.wild.WildTerms` (robust masks as they are now, user masks), or None.
        run_dir: the run folder (the weather filter's masks, written before training), or None.
    """
    wild_dir = None if run_dir is None else Path(run_dir) / "wild"
    if not names or (wild is None and (wild_dir is None or not _has_saved_masks(wild_dir))):
        return None

    def photo(v: int) -> np.ndarray:
        return to_uint8(photos[v].detach().cpu())

    def masks(v: int) -> dict[str, np.ndarray]:
        shape = tuple(photos[v].shape[:2])
        found = {} if wild_dir is None else saved_masks(wild_dir, names[v], shape)
        found.pop("robust", None)  # a previous checkpoint's: the live ones follow
        if wild is not None:
            if wild.masks is not None:
                found["user"] = wild.masks[v].detach().cpu().numpy() < 0.5
            robust = wild.last_masks.get(v)
            if robust is not None:
                found["robust"] = robust.numpy() < 0.5
        return found

    return MaskSource(list(names), photo, masks)


class MaskView:
    """The "Masks" GUI folder: pick a training photo, see it with its masks tinted.

    Nothing is read or drawn until "Show" is ticked. :meth:`refresh` redraws the current photo
    (the live viewer calls it when training advances, so the robust masks follow).
    """

    def __init__(self, server: Any, source: MaskSource):
        self.source = source
        gui = server.gui
        with gui.add_folder("Masks", expand_by_default=False):
            self._show = gui.add_checkbox("Show", False, hint="a training photo with its masks tinted")
            self._photo = gui.add_dropdown("Photo", tuple(source.names), initial_value=source.names[0])
            self._image = gui.add_image(np.zeros((8, 8, 3), np.uint8), format="png", visible=False)
            self._legend = gui.add_markdown("", visible=False)
        self._lock = threading.Lock()
        self._show.on_update(lambda _: self.refresh())
        self._photo.on_update(lambda _: self.refresh())

    @property
    def index(self) -> int:
        return self.source.names.index(self._photo.value)

    def render(self) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """The current photo with its masks tinted ([H, W, 3] uint8) and the masks."""
        masks = self.source.masks(self.index)
        return overlay_masks(self.source.photo(self.index), masks), masks

    def refresh(self) -> None:
        """Redraws the current photo (hides it when "Show" is off)."""
        with self._lock:
            shown = bool(self._show.value)
            if not shown and not self._image.visible:
                return
            if shown:
                try:
                    image, masks = self.render()
                except (ReconError, ValueError) as err:
                    self._legend.content = f"cannot show the masks: {err}"
                    self._legend.visible = True
                    return
                self._legend.content = legend(masks)  # before the image: a redraw is done once the image changed
                self._image.image = image
            self._image.visible = self._legend.visible = shown
