"""Split manifests of the standard sparse-view benchmarks: ``datasets/splits/<matrix>.json``.

A manifest writes down, per scene, the views a protocol trains on and evaluates on, in the
dataset's own numbering (its ``ids`` field says which), so a split can be checked or reused
without recon::

    {"benchmark": "LLFF", "protocol": "llff", "views": 3, "test_every": 8, "ids": "...",
     "scenes": {"fern": {"num_images": 20, "train": [1, 10, 19], "test": [0, 8, 16]}, ...}}

Blender scenes give ``num_train`` / ``num_test`` (frames of ``transforms_train.json`` /
``transforms_test.json``) instead of ``num_images``. :func:`protocol_split` computes the same
split with :mod:`recon.data.splits` from the image count alone, for comparison.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from recon.data.splits import Split, split_views
from recon.errors import ConfigError

SPLITS_DIR = Path(__file__).resolve().parents[2] / "datasets" / "splits"  # in a source checkout


@dataclass(frozen=True)
class Manifest:
    """A parsed split manifest (module docstring)."""

    benchmark: str
    protocol: str
    views: int
    test_every: int
    scenes: dict[str, dict[str, Any]]


def load_manifest(path: str | Path) -> Manifest:
    """Reads a manifest file, or a shipped one by name (``dtu-3view``, ``llff-3view``, ...).

    Raises:
        ConfigError: no such file, or a field missing.
    """
    path = Path(path)
    if not path.suffix:
        path = SPLITS_DIR / f"{path}.json"
    try:
        data = json.loads(path.read_text())
        return Manifest(
            benchmark=data["benchmark"],
            protocol=data["protocol"],
            views=int(data["views"]),
            test_every=int(data.get("test_every", 8)),
            scenes=dict(data["scenes"]),
        )
    except OSError as err:
        raise ConfigError(
            f"cannot read the split manifest: {err.strerror}", path=path, hint=f"the shipped ones are in {SPLITS_DIR}"
        ) from None
    except (KeyError, ValueError) as err:
        raise ConfigError(f"not a split manifest ({err})", path=path) from None


def protocol_split(manifest: Manifest, scene: str) -> Split:
    """The split recon's protocol code makes for ``scene`` of the manifest, from its view count,
    in the manifest's numbering (Blender: test ids count from the first test frame)."""
    entry = manifest.scenes[scene]
    if manifest.protocol == "blender":
        num_train, num_test = entry["num_train"], entry["num_test"]
        split = {"train": list(range(num_train)), "test": list(range(num_train, num_train + num_test))}
        got = split_views(
            [f"{i:04d}" for i in range(num_train + num_test)], "blender", manifest.views, scene_split=split
        )
        return Split(got.train, [i - num_train for i in got.test], got.protocol)
    names = [f"{i:06d}.png" for i in range(entry["num_images"])]  # sorted name order = id order
    return split_views(names, manifest.protocol, manifest.views, manifest.test_every)
