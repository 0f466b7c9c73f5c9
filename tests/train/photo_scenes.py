"""Tiny textured scenes that SfM registers: as a plain photo folder, or posed (transforms.json)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ..priors.synthetic_views import make_views


def _save(image: torch.Tensor, path: Path) -> None:
    Image.fromarray((image.numpy() * 255).round().astype(np.uint8)).save(path)


def photo_folder(root: Path, num_views: int = 8, width: int = 160, height: int = 120, arc_deg: float = 40) -> Path:
    """Renders of a textured sphere before a textured wall on an arc of ``arc_deg``, no poses."""
    root.mkdir(parents=True)
    for i, im in enumerate(make_views(num_views, width, height, arc_deg=arc_deg)[0]):
        _save(im, root / f"{i:03d}.png")
    return root


def posed_scene(root: Path, num_views: int = 8, width: int = 160, height: int = 120) -> Path:
    """The same renders with their exact cameras in an instant-ngp ``transforms.json``."""
    root.mkdir(parents=True)
    images, cams = make_views(num_views, width, height, arc_deg=40)[:2]
    frames = []
    for i, im in enumerate(images):
        _save(im, root / f"{i:03d}.png")
        c2w = torch.linalg.inv(cams.viewmats[i].double()).numpy() @ np.diag([1, -1, -1, 1])  # OpenCV -> OpenGL
        frames.append({"file_path": f"{i:03d}.png", "transform_matrix": c2w.tolist()})
    K = cams.Ks[0].double()
    meta = {"fl_x": float(K[0, 0]), "fl_y": float(K[1, 1]), "cx": float(K[0, 2]), "cy": float(K[1, 2]),
            "w": width, "h": height, "frames": frames}
    (root / "transforms.json").write_text(json.dumps(meta))
    return root
