"""User masks in SfM: pycolmap extracts no features under them; the undistorted masks reach training.

SfM runs for real (pycolmap) on four ray-cast 200x150 views of a textured sphere, with and
without a ``masks/`` folder (about 2 s each).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from recon.config import override
from recon.run import load_training_scene
from recon.wild.terms import make_wild_terms
from tests.priors.synthetic_views import make_views
from tests.wild.conftest import wild_config

pycolmap = pytest.importorskip("pycolmap")
BOX = (slice(30, 120), slice(40, 110))  # rows, columns masked out in every photo


def _photos(root: Path, masks: bool) -> Path:
    (root / "images").mkdir(parents=True)
    for i, im in enumerate(make_views(4, 200, 150, arc_deg=40)[0]):
        Image.fromarray((im.numpy() * 255).round().astype(np.uint8)).save(root / "images" / f"view_{i}.png")
        if masks:
            (root / "masks").mkdir(exist_ok=True)
            mask = np.full((150, 200), 255, np.uint8)
            mask[BOX] = 0
            Image.fromarray(mask).save(root / "masks" / f"view_{i}.png")
    return root


def _keypoints_in_box(sfm_dir: Path) -> tuple[int, int]:
    """(keypoints inside BOX, all keypoints) over the photos, from the SfM database."""
    db = pycolmap.Database.open(str(sfm_dir / "distorted" / "database.db"))
    inside = total = 0
    for image in db.read_all_images():
        xy = db.read_keypoints(image.image_id)[:, :2]  # [K, 2] pixel coordinates (x, y)
        total += len(xy)
        inside += int(((xy[:, 1] >= BOX[0].start) & (xy[:, 1] < BOX[0].stop)
                       & (xy[:, 0] >= BOX[1].start) & (xy[:, 0] < BOX[1].stop)).sum())  # fmt: skip
    db.close()
    return inside, total


def test_sfm_extracts_no_features_under_user_masks_and_training_gets_them(tmp_path):
    plain = load_training_scene(
        override(wild_config(), **{"data.path": str(_photos(tmp_path / "a", False))}).data,
        tmp_path / "run_a",
        verbose=False,
    )
    config = override(wild_config(), **{"data.path": str(_photos(tmp_path / "b", True))})
    masked = load_training_scene(config.data, tmp_path / "run_b", verbose=False)
    inside_plain, _ = _keypoints_in_box(plain.root)
    inside_masked, total_masked = _keypoints_in_box(masked.root)
    assert inside_plain > 50 and inside_masked == 0 and total_masked > 50
    assert plain.root.name != masked.root.name  # the masks are part of the SfM cache key
    terms = make_wild_terms(config, masked, list(range(len(masked))))  # auto: on for photo folders
    assert terms is not None and terms.masks is not None and terms.appearance is not None
    for mask, image in zip(terms.masks, masked.images):
        assert mask.shape == image.shape[:2]
        assert 0.2 < float(1 - mask.mean()) < 0.3  # the box is 21 % of the photo, a little more once undistorted
