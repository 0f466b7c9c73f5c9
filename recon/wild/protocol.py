"""Evaluation of runs with per-image appearance: the reference appearance and the NeRF-W protocol.

A test photo has its own exposure and white balance, which no training image's transform knows.
NeRF-W's protocol fits the test view's appearance on the left half of the image and scores the
right half; here the appearance is the affine colour transform of :mod:`recon.wild.appearance`,
fitted in closed form (:func:`fit_affine`) between the render and the photo.

A bilateral grid (:mod:`recon.wild.bilateral`) cannot be fitted on half an image: the cells over the
right half would see no pixel. Runs with grids keep the reference grid (the camera's spatially varying
part, e.g. its vignetting, shared by the training images) and fit the affine transform on top of it:
the render in the reference grid's appearance is what the left half's affine fit maps onto the photo.
"""

from __future__ import annotations

from torch import Tensor

from recon.errors import ConfigError
from recon.wild.appearance import apply_affine, decode_tensor, fit_affine
from recon.wild.bilateral import apply_grid

NERFW_PROTOCOL = (
    "nerf-w: per test view an affine colour transform (3x3 + bias) fitted by least squares on the "
    "left half of the image, metrics on the right half"
)
NERFW_PROTOCOL_BILATERAL = (
    "nerf-w (bilateral grid): per test view the render in the reference grid's appearance, then an affine "
    "colour transform (3x3 + bias) fitted by least squares on the left half of the image, metrics on the right half"
)


def apply_appearance(rgb: Tensor, reference: Tensor) -> Tensor:
    """``rgb`` in a reference appearance: a [3, 4] affine transform or a [12, L, Gy, Gx] bilateral grid.

    Args:
        rgb: [..., H, W, 3] renders ([..., 3] colours for an affine transform).
        reference: what :func:`reference_transform` returned.

    Returns:
        rgb's shape, not clamped.
    """
    return apply_affine(rgb, reference) if reference.dim() == 2 else apply_grid(rgb, reference)


def protocol_name(reference: Tensor) -> str:
    """The eval JSON's ``protocol`` line for runs with this reference appearance."""
    return NERFW_PROTOCOL if reference.dim() == 2 else NERFW_PROTOCOL_BILATERAL


def reference_transform(state: dict | None, which: str) -> Tensor | None:
    """Reference appearance of a checkpoint's ``extra["wild"]`` state, None without appearance.

    A [3, 4] affine transform, or a [12, L, Gy, Gx] bilateral grid (offsets from the identity), of
    one training image or the mean over them; :func:`apply_appearance` applies either.

    Args:
        state: :meth:`recon.wild.terms.WildTerms.state_dict` (or None).
        which: ``mean`` or a training image name.

    Raises:
        ConfigError: ``which`` is not a training image of the run.
    """
    if not state or state.get("appearance") is None:
        return None
    transforms = decode_tensor(state["appearance"]["transforms"])  # [V, 3, 4] or [V, 12, L, Gy, Gx]
    if which == "mean":
        return transforms.mean(0)
    names = state["names"]
    if which not in names:
        raise ConfigError(
            f"--appearance: {which!r} is not a training image of the run",
            hint=f"use mean or one of {', '.join(names[:5])}{' ...' if len(names) > 5 else ''}",
        )
    return transforms[names.index(which)]


def nerfw_halves(render: Tensor, gt: Tensor, reference: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """The right halves of ``render`` (in the appearance fitted on the left halves) and of ``gt``.

    Args:
        render: [H, W, 3] render (any appearance).
        gt: [H, W, 3] the test photo.
        reference: a [12, L, Gy, Gx] reference grid applied to the render before the fit (an affine
            reference, or None, changes nothing: the fit absorbs it).

    Returns:
        ([H, W - W // 2, 3] corrected render clamped to [0, 1], [H, W - W // 2, 3] photo).
    """
    if reference is not None and reference.dim() != 2:
        render = apply_grid(render, reference)
    half = render.shape[1] // 2
    transform = fit_affine(render[:, :half], gt[:, :half])  # [3, 4]
    return apply_affine(render[:, half:], transform).clamp(0, 1), gt[:, half:]
