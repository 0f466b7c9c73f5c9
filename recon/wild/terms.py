"""The one hook the trainer calls: :class:`WildTerms` (per-view appearance, loss weights, masks)."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor

from recon.config import TrainConfig, WildConfig
from recon.data.scene import SceneData
from recon.errors import ConfigError
from recon.wild.appearance import IDENTITY, AffineAppearance, PerImageAppearance
from recon.wild.bilateral import BilateralAppearance
from recon.wild.masks import MASK_FOLDER, read_user_masks, save_mask_png
from recon.wild.robust import matched_residual, robust_mask
from recon.wild.weather import streak_mask


def wild_enabled(config: WildConfig, scene: SceneData) -> bool:
    """``mode`` on, or auto on a photo folder posed by our SfM (its scene carries ``meta["sfm"]``)."""
    return config.mode == "on" or (config.mode == "auto" and "sfm" in scene.meta)


def make_appearance(config: WildConfig, num_images: int, device: torch.device | str = "cpu") -> PerImageAppearance:
    """The per-image colour model ``config.appearance`` names (affine or bilateral) of ``num_images`` images."""
    if config.appearance == "affine":
        return AffineAppearance(
            num_images, config.appearance_lr, device, reg=config.appearance_reg, fit=config.appearance_fit
        )
    for key in ("bilateral_cells", "bilateral_bins"):
        if getattr(config, key) < 1:
            raise ConfigError(
                f"wild.{key}: {getattr(config, key)} must be at least 1",
                hint="the grid has 16 x 16 x 8 cells by default",
            )
    return BilateralAppearance(
        num_images, config.appearance_lr, device, cells=config.bilateral_cells, bins=config.bilateral_bins,
        reg=config.appearance_reg, tv=config.bilateral_tv,
    )  # fmt: skip


def user_masks(config: TrainConfig, scene: SceneData, ids: list[int], enabled: bool) -> list[Tensor] | None:
    """The user masks of views ``ids`` ([H, W] 0/1 each), or None.

    ``wild.masks`` auto reads, when wild is on, the undistorted copies our SfM wrote of a photo
    folder's ``masks/`` (:func:`recon.priors.sfm.ensure_poses`); a folder path is always read;
    ``none`` never.
    """
    option = config.wild.masks
    if option == "none" or (option == "auto" and not enabled):
        return None
    if option == "auto":
        folder = _auto_mask_folder(scene)
        if folder is None:
            return None
    else:
        folder = Path(option).expanduser()
        if not folder.is_dir():
            raise ConfigError("wild.masks (--masks): not a folder", path=folder, hint="pass a folder of 0/1 PNG masks")
    sizes = [tuple(scene.images[i].shape[:2]) for i in ids]
    return read_user_masks(folder, [scene.names[i] for i in ids], sizes)


def _auto_mask_folder(scene: SceneData) -> Path | None:
    """The undistorted user masks our SfM wrote for a photo folder (``SFM/masks``), or None.

    Only photo folders: a ``masks/`` folder of a benchmark format (LLFF, DTU) holds object masks.
    """
    folder = Path(scene.root) / MASK_FOLDER
    return folder if "sfm" in scene.meta and folder.is_dir() else None


class WildTerms:
    """Per-image appearance and transient masks of the training views.

    The trainer renders view ``v``, passes it through :meth:`in_view`, asks :meth:`pixel_weight`
    for the loss weights, adds :meth:`regularisers` and calls :meth:`step` after its own optimizers.

    Args:
        config: the run's ``wild`` section.
        iterations: the run's length (the robust loss starts at ``robust_start`` of it).
        names: training image names, in training-view order.
        masks: per training view [H, W] user masks (0 = ignore), or None.
        appearance: whether to model per-image appearance.
        robust: whether to down-weight outlier pixels.
        device: where the transforms and masks live.
    """

    def __init__(
        self,
        config: WildConfig,
        iterations: int,
        names: list[str],
        masks: list[Tensor] | None,
        appearance: bool,
        robust: bool,
        device: torch.device | str = "cpu",
    ):
        self.config = config
        self.names = list(names)
        self.masks = None if masks is None else [m.to(device) for m in masks]
        self.appearance = make_appearance(config, len(names), device) if appearance else None
        self.robust = robust
        self.robust_from = int(config.robust_start * iterations)
        self.last_masks: dict[int, Tensor] = {}  # view -> [H, W] latest robust weights (CPU), for inspection

    def in_view(self, v: int, rgb: Tensor, target: Tensor | None = None) -> Tensor:
        """[..., H, W, 3] render in training view ``v``'s appearance (unchanged without appearance).

        With ``target`` ([..., H, W, 3], the photo), an affine transform fitted in closed form
        (``wild.appearance_fit`` closed) is first refitted to this render, on the pixels the user mask
        and the view's latest transient mask keep.
        """
        if self.appearance is None:
            return rgb
        if target is not None:
            self.appearance.fit(v, rgb, target, self._trusted(v))
        return self.appearance(v, rgb)

    def _trusted(self, v: int) -> Tensor | None:
        """[H, W] user mask x latest robust mask of view ``v``, or None (every pixel)."""
        weight = self.masks[v] if self.masks is not None else None
        robust = self.last_masks.get(v)
        if robust is not None:
            robust = robust.to(self.appearance.params[v].device)
            weight = robust if weight is None else weight * robust
        return weight

    def pixel_weight(self, v: int, rgb: Tensor, target: Tensor, step: int) -> Tensor | None:
        """[H, W] loss weights of view ``v`` at ``step`` (user mask x robust mask x streak mask), None = all ones.

        Args:
            rgb: [H, W, 3] render in the view's appearance (detached here).
            target: [H, W, 3] the photo.
        """
        weight = self.masks[v] if self.masks is not None else None
        if self.robust and step >= self.robust_from:
            c = self.config
            residual = matched_residual(rgb.detach(), target, weight, c.robust_quantile, c.robust_scale, c.robust_floor)
            if weight is not None:
                residual = residual * weight  # pixels the user masked are no evidence about the rest
            robust = robust_mask(
                residual, c.robust_quantile, c.robust_scale, c.robust_floor, c.robust_cell, c.robust_fraction
            )
            if c.streaks:  # rain / snow: thin outliers along one direction (recon.wild.weather)
                robust = robust * ~streak_mask(residual, c.robust_floor)
            self.last_masks[v] = robust.cpu()
            weight = robust if weight is None else weight * robust
        return weight

    def regularisers(self, v: int) -> dict[str, Tensor]:
        """The appearance model's penalties of view ``v`` (``appearance_reg`` toward the identity, and
        ``appearance_tv`` for bilateral grids)."""
        return {} if self.appearance is None else self.appearance.regularisers(v)

    def step(self) -> None:
        """Adam step of the colour transforms (after the trainer's backward)."""
        if self.appearance is not None:
            self.appearance.step()

    def reference(self, which: str | None = None) -> Tensor:
        """Reference appearance: ``mean`` or a training image's name (default: the config's); a [3, 4]
        transform, or a [12, L, Gy, Gx] grid (:func:`recon.wild.protocol.apply_appearance` applies either)."""
        which = which or self.config.reference
        if self.appearance is None:
            return IDENTITY.clone()
        if which == "mean":
            return self.appearance.reference(None).cpu()
        if which not in self.names:
            raise ConfigError(
                f"wild.reference (--appearance): {which!r} is not a training image",
                hint=f"use mean or one of {', '.join(self.names[:5])}{' ...' if len(self.names) > 5 else ''}",
            )
        return self.appearance.reference(self.names.index(which)).cpu()

    def state_dict(self) -> dict:
        """JSON-ready state for the checkpoint's ``extra["wild"]``."""
        return {"names": self.names, "appearance": None if self.appearance is None else self.appearance.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        if self.appearance is not None and state.get("appearance") is not None:
            self.appearance.load_state_dict(state["appearance"])

    def save_masks(self, folder: Path) -> None:
        """Writes the latest robust mask of every view seen since the warm-up as ``folder/<stem>.png``."""
        for v, mask in self.last_masks.items():
            save_mask_png(mask, folder / f"{Path(self.names[v]).stem}.png")


def attach_user_masks(config: TrainConfig, scene: SceneData) -> None:
    """Reads the run's user masks (:func:`user_masks`) of every view into ``scene.user_masks``, so
    that stereo priors (:func:`recon.priors.stereo.run_mvs`) and the trainer both honour them."""
    if scene.user_masks is None:
        scene.user_masks = user_masks(config, scene, list(range(len(scene))), wild_enabled(config.wild, scene))


def make_wild_terms(
    config: TrainConfig, scene: SceneData, train_ids: list[int], device: torch.device | str = "cpu"
) -> WildTerms | None:
    """The run's :class:`WildTerms`, or None when wild is off and no user masks are given (the
    scene's attached ``user_masks`` when present, else read from disk)."""
    enabled = wild_enabled(config.wild, scene)
    if scene.user_masks is not None:  # attached by attach_user_masks
        masks = [scene.user_masks[i] for i in train_ids]
    else:
        masks = user_masks(config, scene, train_ids, enabled)
    if not enabled and masks is None:
        return None
    names = [scene.names[i] for i in train_ids]
    terms = WildTerms(
        config.wild,
        config.iterations,
        names,
        masks,
        appearance=enabled and config.wild.appearance != "none",
        robust=enabled and config.wild.robust,
        device=device,
    )
    if enabled:
        terms.reference()  # a bad --appearance name fails before training
    return terms
