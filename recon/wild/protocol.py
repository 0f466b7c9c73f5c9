"""Evaluation of runs with per-image appearance: the reference appearance and the NeRF-W protocol.

A test photo has its own exposure and white balance, which no training image's transform knows.
NeRF-W's protocol fits the test view's appearance on the left half of the image and scores the
right half; here the appearance is the affine colour transform of :mod:`recon.wild.appearance`,
fitted in closed form (:func:`fit_affine`) between the render and the photo.
"""

from __future__ import annotations

from torch import Tensor

from recon.errors import ConfigError
from recon.wild.appearance import apply_affine, fit_affine

NERFW_PROTOCOL = (
    "nerf-w: per test view an affine colour transform (3x3 + bias) fitted by least squares on the "
    "left half of the image, metrics on the right half"
)


def reference_transform(state: dict | None, which: str) -> Tensor | None:
    """[3, 4] reference transform of a checkpoint's ``extra["wild"]`` state, None without appearance.

    Args:
        state: :meth:`recon.wild.terms.WildTerms.state_dict` (or None).
        which: ``mean`` or a training image name.

    Raises:
        ConfigError: ``which`` is not a training image of the run.
    """
    import torch

    if not state or state.get("appearance") is None:
        return None
    transforms = torch.tensor(state["appearance"]["transforms"], dtype=torch.float32)  # [V, 3, 4]
    if which == "mean":
        return transforms.mean(0)
    names = state["names"]
    if which not in names:
        raise ConfigError(
            f"--appearance: {which!r} is not a training image of the run",
            hint=f"use mean or one of {', '.join(names[:5])}{' ...' if len(names) > 5 else ''}",
        )
    return transforms[names.index(which)]


def nerfw_halves(render: Tensor, gt: Tensor) -> tuple[Tensor, Tensor]:
    """The right halves of ``render`` (in the appearance fitted on the left halves) and of ``gt``.

    Args:
        render: [H, W, 3] render (any appearance).
        gt: [H, W, 3] the test photo.

    Returns:
        ([H, W - W // 2, 3] corrected render clamped to [0, 1], [H, W - W // 2, 3] photo).
    """
    half = render.shape[1] // 2
    transform = fit_affine(render[:, :half], gt[:, :half])  # [3, 4]
    return apply_affine(render[:, half:], transform).clamp(0, 1), gt[:, half:]
