"""Middlebury multi-view stereo scenes: ``<name>_par.txt`` beside the images.

Each line is ``imgname.png k11 .. k33 r11 .. r33 t1 t2 t3``: the projection is ``K [R | t]``
(world to camera, OpenCV axes, image origin top-left). Some views of the ring data sets are
rotated 180 degrees by design; their calibration already accounts for it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from recon.cameras import Cameras
from recon.data.images import image_size
from recon.data.source import SceneSource, check_missing
from recon.errors import DataError


def find_par_file(root: Path) -> Path | None:
    """The first ``*_par.txt`` in ``root`` (or ``root`` itself when it is one)."""
    if root.is_file():
        return root if root.name.endswith("_par.txt") else None
    found = sorted(root.glob("*_par.txt"))
    return found[0] if found else None


def parse_middlebury(path: Path) -> SceneSource:
    """Parses a Middlebury scene from its folder or its ``*_par.txt``."""
    par = find_par_file(path)
    if par is None:
        raise DataError("no *_par.txt calibration file", path=path)
    names, Ks, views = [], [], []
    lines = [
        (row, ln.split()) for row, ln in enumerate(par.read_text().splitlines(), 1) if ln.strip()
    ]
    if lines and len(lines[0][1]) == 1:  # the first line may hold the number of views
        lines = lines[1:]
    for row, e in lines:
        if len(e) != 22:
            raise DataError(
                f"line {row} has {len(e)} fields, expected 22 (name k11..k33 r11..r33 t1..t3)",
                path=par,
            )
        vals = np.array(e[1:], dtype=np.float64)
        view = np.eye(4)
        view[:3, :3], view[:3, 3] = vals[9:18].reshape(3, 3), vals[18:21]
        names.append(e[0]), Ks.append(vals[:9].reshape(3, 3)), views.append(view)
    if not names:
        raise DataError("lists no views", path=par)
    paths = [par.parent / n for n in names]
    check_missing(paths, par, hint="the images must lie beside the _par.txt file")
    sizes = [image_size(p) for p in paths]
    cams = Cameras.create(
        np.stack(Ks), np.stack(views), [s[0] for s in sizes], [s[1] for s in sizes]
    )
    return SceneSource(
        format="middlebury",
        root=par.parent,
        image_paths=paths,
        cameras=cams,
        meta={"par_file": str(par)},
        camera_file=par,
    )
