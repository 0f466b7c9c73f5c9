"""Sparse-view protocols: which views train and which evaluate.

Every protocol returns indices into the scene's image list (``scene.images[i]``), train views in
the protocol's own order (DTU's and Blender's lists are ordered: 3 views = the first 3).

* ``"llff"`` (FSGS / DNGaussian): sort views by name; test = sorted position ``i % K == 0``
  (``K = test_every``, 8 by default); train = ``round(linspace(0, M - 1, N))`` over the remaining
  ``M`` views (numpy's round-half-to-even, as FSGS); all ``M`` when ``views`` is None.
* ``"dtu"`` (RegNeRF / DNGaussian): views are the 49 DTU ids (sorted names ``000000`` to
  ``000048``); train = ``[25, 22, 28, 40, 44, 48, 0, 8, 13][:N]`` (N = 3 when ``views`` is None);
  test = the 25 fixed ids below; ids 3-7, 16-21 and 36-39 are excluded. Evaluate with masks.
* ``"blender"`` (DietNeRF 8-view): train = entries ``26, 86, 2, 55, 75, 93, 16, 73`` (first N) of
  the scene's ``split["train"]``; test = every 8th entry of ``split["test"]``.
* ``"generic"``: in the scene's order, test = ``i % test_every == 0`` (none when ``test_every`` is
  0); train = N views evenly spaced (``round(linspace)``) over the rest, all of them when
  ``views`` is None.
* ``"auto"``: ``blender``, ``dtu`` or ``llff`` for scenes of that format, else ``generic``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from recon.data.scene import SceneData
from recon.errors import ConfigError

PROTOCOLS = ("auto", "llff", "dtu", "blender", "generic")

DTU_TRAIN_IDS = (25, 22, 28, 40, 44, 48, 0, 8, 13)
DTU_TEST_IDS = (
    1,
    2,
    9,
    10,
    11,
    12,
    14,
    15,
    23,
    24,
    26,
    27,
    29,
    30,
    31,
    32,
    33,
    34,
    35,
    41,
    42,
    43,
    45,
    46,
    47,
)
DTU_NUM_VIEWS = 49
BLENDER_TRAIN_IDS = (26, 86, 2, 55, 75, 93, 16, 73)
BLENDER_TEST_EVERY = 8

_AUTO = {"blender": "blender", "dtu": "dtu", "llff": "llff"}


class SplitError(ConfigError, ValueError):
    """A protocol that cannot be applied to this scene (too few views, missing split...)."""


@dataclass(frozen=True)
class Split:
    """Train and test view indices into the scene's image list.

    Attributes:
        train: views to reconstruct from, in protocol order.
        test: held-out views to evaluate on, ascending.
        protocol: the protocol that made them (``"auto"`` resolved).
    """

    train: list[int]
    test: list[int]
    protocol: str = "generic"

    def to_dict(self) -> dict[str, object]:
        return {"protocol": self.protocol, "train": list(self.train), "test": list(self.test)}


def resolve_protocol(protocol: str, scene_format: str | None) -> str:
    """The concrete protocol ``"auto"`` stands for on a scene of ``scene_format``."""
    if protocol not in PROTOCOLS:
        raise SplitError(
            f"unknown protocol {protocol!r}",
            hint=f"--protocol must be one of {', '.join(PROTOCOLS)}",
        )
    return _AUTO.get(scene_format or "", "generic") if protocol == "auto" else protocol


def split_views(
    scene_or_names: SceneData | Sequence[str],
    protocol: str = "auto",
    views: int | None = None,
    test_every: int = 8,
    *,
    scene_split: dict[str, list[int]] | None = None,
    scene_format: str | None = None,
) -> Split:
    """Applies a sparse-view protocol (see the module docstring) to a scene.

    Args:
        scene_or_names: the scene, or just its image names in scene order.
        protocol: ``"auto"``, ``"llff"``, ``"dtu"``, ``"blender"`` or ``"generic"``.
        views: number of training views N (protocol default when None).
        test_every: K of the ``i % K == 0`` test rule (llff, generic); 0 = no test views (generic).
        scene_split: the format's own split when only names are given (Blender needs it).
        scene_format: the format when only names are given (for ``"auto"``).

    Returns:
        The :class:`Split`.

    Raises:
        SplitError: (a ``ConfigError`` and ``ValueError``) when the request is impossible.
    """
    if isinstance(scene_or_names, SceneData):
        names = list(scene_or_names.names)
        scene_split = scene_or_names.split if scene_split is None else scene_split
        scene_format = scene_or_names.format if scene_format is None else scene_format
    else:
        names = list(scene_or_names)
    name = resolve_protocol(protocol, scene_format)
    if views is not None and views < 1:
        raise SplitError(f"--views must be at least 1, got {views}")
    if test_every < 0:
        raise SplitError(f"--test-every must be >= 0, got {test_every}")
    if not names:
        raise SplitError("the scene has no images", hint="check the data path")
    if name == "llff":
        order = sorted(range(len(names)), key=lambda i: names[i])
        train, test = _every_kth(order, test_every, views, "llff")
    elif name == "generic":
        train, test = _every_kth(list(range(len(names))), test_every, views, "generic")
    elif name == "dtu":
        train, test = _dtu(names, views)
    else:
        train, test = _blender(len(names), scene_split, views)
    return Split(train=train, test=sorted(test), protocol=name)


def evenly_spaced(count: int, n: int) -> list[int]:
    """``round(linspace(0, count - 1, n))`` as ints (numpy rounding, as FSGS/DNGaussian)."""
    return [int(i) for i in np.round(np.linspace(0, count - 1, n))]


def _every_kth(
    order: list[int], k: int, views: int | None, name: str
) -> tuple[list[int], list[int]]:
    if name == "llff" and k == 0:
        raise SplitError("the llff protocol needs --test-every >= 1 (8 is the standard)")
    test = [v for pos, v in enumerate(order) if k > 0 and pos % k == 0]
    rest = [v for pos, v in enumerate(order) if not (k > 0 and pos % k == 0)]
    if not rest:
        raise SplitError(
            f"{name} protocol: no views left for training out of {len(order)} "
            f"with --test-every {k}",
            hint="use a larger --test-every or more images",
        )
    if views is None:
        return rest, test
    if views > len(rest):
        raise SplitError(
            f"{name} protocol: --views {views} asks for more training views than the "
            f"{len(rest)} left after holding out every {k}-th of {len(order)} images",
            hint=f"use --views {len(rest)} or fewer",
        )
    return [rest[i] for i in evenly_spaced(len(rest), views)], test


def _dtu(names: list[str], views: int | None) -> tuple[list[int], list[int]]:
    n = 3 if views is None else views
    if len(names) < DTU_NUM_VIEWS:
        raise SplitError(
            f"the dtu protocol needs the {DTU_NUM_VIEWS} DTU views, the scene has {len(names)}",
            hint="use --protocol generic for other scenes",
        )
    if n > len(DTU_TRAIN_IDS):
        raise SplitError(
            f"the dtu protocol defines at most {len(DTU_TRAIN_IDS)} training views, got --views {n}"
        )
    order = sorted(range(len(names)), key=lambda i: names[i])  # DTU id -> scene index
    return [order[i] for i in DTU_TRAIN_IDS[:n]], [order[i] for i in DTU_TEST_IDS]


def _blender(
    count: int, split: dict[str, list[int]] | None, views: int | None
) -> tuple[list[int], list[int]]:
    n = len(BLENDER_TRAIN_IDS) if views is None else views
    if not split or "train" not in split or "test" not in split:
        raise SplitError(
            "the blender protocol needs the scene's train and test split files",
            hint="load a folder with transforms_train.json and transforms_test.json",
        )
    train_ids, test_ids = split["train"], split["test"]
    if n > len(BLENDER_TRAIN_IDS):
        raise SplitError(
            f"the blender protocol defines at most {len(BLENDER_TRAIN_IDS)} training views, got --views {n}"
        )
    needed = max(BLENDER_TRAIN_IDS[:n]) + 1
    if len(train_ids) < needed:
        raise SplitError(
            f"the blender protocol needs at least {needed} train views for --views {n}, "
            f"the scene has {len(train_ids)}",
            hint="use --protocol generic",
        )
    if not test_ids:
        raise SplitError("the blender protocol needs test views (transforms_test.json is empty)")
    if max(max(train_ids), max(test_ids)) >= count:
        raise SplitError(
            f"scene split refers to view {max(max(train_ids), max(test_ids))} of {count}"
        )
    return [train_ids[i] for i in BLENDER_TRAIN_IDS[:n]], list(test_ids[::BLENDER_TEST_EVERY])
