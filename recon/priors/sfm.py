"""Camera poses of a photo folder by structure from motion (pycolmap, CPU).

SIFT extraction (one camera per image size: photos of different cameras/sizes get their own
intrinsics), exhaustive or sequential matching, incremental mapping; the model registering the
most images is kept (not blindly ``sparse/0``) and undistorted to pinhole cameras. When photos
stay unregistered, a second pass with relaxed thresholds runs before any photo is dropped, and
the pass registering more photos wins. Runs are deterministic for a given ``seed`` (COLMAP's
RANSAC and mapper seeds).

How many photos: neighbouring photos should be at most ~10-15 degrees apart around the object,
so a 360-degree capture needs about 30-40 photos (more for glossy, plain or thin objects); 24
photos of a full circle (15 degrees) already leave some unregistered. The output
folder has the layout of 3DGS' ``convert.py``, which every COLMAP tool and loader reads::

    OUT/images/          undistorted images
    OUT/sparse/0/        pinhole COLMAP model (cameras.bin, images.bin, points3D.bin)
    OUT/distorted/       database.db and the raw model (sparse/0) before undistortion
    OUT/sfm.json         registered / total and, for every failed image, why
    OUT/masks/           undistorted user masks (``<name>.png``), when the photos have a masks/ folder

Everything is built in a temporary sibling folder and moved into place at the end.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from recon.cameras import Cameras
from recon.data.images import image_size, upright_folder
from recon.data.scene import SceneData
from recon.errors import DataError, ReconError

log = logging.getLogger(__name__)
IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp")
FALLBACKS = (
    "fallbacks: more overlapping photos (neighbours at most ~10-15 degrees apart: 30-40 photos for a "
    "360-degree capture), or known poses (a COLMAP model, transforms.json or poses_bounds.npy beside "
    "the photos), or --matcher exhaustive"
)
AUTO_EXHAUSTIVE_MAX = 100  # matcher "auto": exhaustive up to this many photos


class RegistrationError(DataError):
    """SfM registered fewer photos than required."""


@dataclass
class SfmResult:
    """What :func:`run_sfm` produced.

    Attributes:
        out_dir: the output folder.
        model_dir: the undistorted pinhole model (``OUT/sparse/0``).
        image_dir: the undistorted images (``OUT/images``).
        registered: names of the registered images.
        failed: unregistered image name -> reason.
        num_images: photos given.
        num_points: 3D points of the kept model.
        cpu_seconds: CPU time of the pass that made the model (all threads).
    """

    out_dir: Path
    model_dir: Path
    image_dir: Path
    registered: list[str]
    failed: dict[str, str] = field(default_factory=dict)
    num_images: int = 0
    num_points: int = 0
    cpu_seconds: float = 0.0

    def summary(self) -> str:
        text = f"registered {len(self.registered)}/{self.num_images} images, {self.num_points} points"
        for name, why in self.failed.items():
            text += f"\n  {name}: {why}"
        return text


def list_images(image_dir: Path) -> list[str]:
    """Sorted image file names of a folder (top level)."""
    if not image_dir.is_dir():
        raise DataError("not a folder of photos", path=image_dir)
    return sorted(p.name for p in image_dir.iterdir() if p.suffix.lower() in IMAGE_EXTS and p.is_file())


def check_photos(image_dir: Path, names: list[str]) -> dict[tuple[int, int], list[str]]:
    """Validates a photo set and groups names by image size (after EXIF orientation).

    Raises:
        DataError: fewer than 2 photos, unreadable files, or byte-identical duplicates.
    """
    from PIL import Image

    if len(names) < 2:
        raise DataError(f"structure from motion needs at least 2 photos, found {len(names)}", path=image_dir,
                        hint=f"put 2 or more overlapping photos ({', '.join(IMAGE_EXTS)}) in the folder")
    groups: dict[tuple[int, int], list[str]] = {}
    digests: dict[str, str] = {}
    dups = []
    for name in names:
        path = image_dir / name
        try:
            with Image.open(path) as im:
                im.verify()
        except Exception as err:
            raise DataError(f"cannot read image ({err})", path=path, hint="remove or re-export it") from err
        size = image_size(path)  # after EXIF orientation, as the loaders see it
        digest = hashlib.sha1(path.read_bytes()).hexdigest()
        if digest in digests:
            dups.append(f"{name} = {digests[digest]}")
        digests.setdefault(digest, name)
        groups.setdefault(size, []).append(name)
    if dups:
        raise DataError(f"duplicate photos (identical files): {', '.join(dups)}", path=image_dir,
                        hint="remove one of each pair: duplicates have no baseline and break SfM")
    return groups


def _options(relaxed: bool, max_image_size: int, num_threads: int, seed: int = 0):
    import pycolmap

    ext = pycolmap.FeatureExtractionOptions()
    ext.max_image_size = max_image_size
    ext.num_threads = 1  # threaded extraction (and mapping, below) changes the model from run to run
    match = pycolmap.FeatureMatchingOptions()
    match.num_threads = num_threads
    mapper = pycolmap.IncrementalPipelineOptions()
    # One mapper thread: with 2 extraction or mapper threads, two seeded runs on the same photos gave
    # camera poses differing by up to 1.4 (the incremental model drifts apart); matching may thread.
    mapper.num_threads = 1
    mapper.min_model_size = 2
    mapper.random_seed = mapper.mapper.random_seed = seed
    verify = pycolmap.TwoViewGeometryOptions()
    verify.ransac.random_seed = seed
    if relaxed:  # more, weaker features and laxer thresholds for few/low-overlap photos
        ext.sift.peak_threshold = 0.004
        ext.sift.max_num_features = 16384
        match.sift.max_ratio = 0.9
        match.guided_matching = True
        mapper.mapper.init_min_num_inliers = 50
        mapper.mapper.abs_pose_min_num_inliers = 15
        mapper.mapper.abs_pose_min_inlier_ratio = 0.15
        mapper.min_num_matches = 10
        verify.min_num_inliers = 10
    return ext, match, mapper, verify


def ordered_names(names: list[str]) -> bool:
    """Whether the names look like numbered frames of one sequence (``0001.jpg``, ``frame_12.png``)."""
    import re

    stems = [re.fullmatch(r"(.*?)(\d+)", Path(n).stem) for n in names]
    return len(names) > 2 and all(stems) and len({m.group(1) for m in stems}) == 1


def choose_matcher(matcher: str, names: list[str]) -> str:
    """``"auto"``: exhaustive up to ``AUTO_EXHAUSTIVE_MAX`` photos (every pair, whatever the
    order), sequential beyond for numbered frames (neighbours and quadratic gaps), else exhaustive."""
    if matcher not in ("auto", "exhaustive", "sequential"):
        raise ReconError(f"unknown matcher {matcher!r}", hint="use 'auto', 'exhaustive' or 'sequential'")
    if matcher != "auto":
        return matcher
    return "sequential" if len(names) > AUTO_EXHAUSTIVE_MAX and ordered_names(names) else "exhaustive"


def _why_failed(db_path: Path, rec, names: list[str]) -> dict[str, str]:
    """A reason for every image of ``names`` that ``rec`` did not register."""
    import pycolmap

    registered = {im.name for im in rec.images.values() if im.has_pose} if rec is not None else set()
    db = pycolmap.Database.open(str(db_path))
    try:
        ids = {im.name: im.image_id for im in db.read_all_images()}
        reg_ids = {ids[n] for n in registered if n in ids}
        pair_ids, inliers = db.read_two_view_geometry_num_inliers()
        best: dict[int, int] = {}
        for pid, n in zip(pair_ids, inliers):
            a, b = pycolmap.pair_id_to_image_pair(pid)
            for me, other in ((a, b), (b, a)):
                if other in reg_ids or not reg_ids:
                    best[me] = max(best.get(me, 0), int(n))
        reasons = {}
        for name in names:
            if name in registered:
                continue
            iid = ids.get(name)
            kp = db.num_keypoints_for_image(iid) if iid is not None else 0
            if kp < 100:
                reasons[name] = f"only {kp} SIFT features (textureless, blurred or tiny image)"
            elif best.get(iid, 0) < 15:
                reasons[name] = (f"{kp} features but at most {best.get(iid, 0)} verified matches with the "
                                 "registered photos (no overlap with them)")
            else:
                reasons[name] = (f"{best[iid]} verified matches with registered photos, but its pose could "
                                 "not be estimated (too few 2D-3D correspondences)")
        return reasons
    finally:
        db.close()


def run_sfm(
    image_dir: str | Path,
    out_dir: str | Path,
    matcher: str = "auto",
    *,
    max_image_size: int = 1600,
    camera_model: str = "SIMPLE_RADIAL",
    relaxed: bool = False,
    retry_relaxed: bool = True,
    min_registered: int | None = None,
    overwrite: bool = False,
    num_threads: int = -1,
    seed: int = 0,
    mask_dir: str | Path | None = None,
) -> SfmResult:
    """Recovers camera poses and sparse points of a photo folder with pycolmap.

    A pass leaving photos unregistered is followed by one with relaxed thresholds (unless
    ``relaxed`` already or ``retry_relaxed`` is off); the pass registering more photos is kept and
    ``sfm.json`` records both (``first_pass``).

    Args:
        image_dir: folder of photos (jpg/png/tif/bmp, top level).
        out_dir: output folder (see the module docstring for its layout).
        matcher: ``"exhaustive"`` (unordered photos), ``"sequential"`` (video frames) or
            ``"auto"`` (see :func:`choose_matcher`).
        max_image_size: SIFT runs on images downscaled to this longer side (keypoints are in
            full-resolution pixels).
        camera_model: COLMAP model of the distorted cameras (undistorted to PINHOLE at the end).
        relaxed: weaker features and laxer matching/registration thresholds from the start.
        retry_relaxed: run the relaxed pass when the first one leaves photos unregistered.
        min_registered: registered images required (default: half the photos, at least 2).
        overwrite: replace an existing non-empty ``out_dir``.
        num_threads: CPU threads of feature matching (-1: all; extraction and mapping use one,
            to be deterministic).
        seed: seed of COLMAP's random sampling (same photos and seed: same model).
        mask_dir: user masks of the photos (:mod:`recon.wild.masks`, 0 = ignore): no features are
            extracted under them, and their undistorted copies are written to ``OUT/masks``.

    Returns:
        An :class:`SfmResult`.

    Raises:
        DataError: bad photo sets (see :func:`check_photos`) or too few registered images
            (:class:`RegistrationError`: the message names each failed image with the reason,
            and the fallbacks).
    """
    image_dir, out_dir = Path(image_dir), Path(out_dir)
    if out_dir.exists() and any(out_dir.iterdir()) and not overwrite:
        raise ReconError("output folder exists and is not empty", path=out_dir, hint="pass --overwrite or another --out")
    names = list_images(image_dir)
    kw = {"matcher": choose_matcher(matcher, names), "max_image_size": max_image_size, "camera_model": camera_model,
          "num_threads": num_threads, "seed": seed, "mask_dir": None if mask_dir is None else Path(mask_dir)}
    need = min_registered if min_registered is not None else max(2, math.ceil(len(names) / 2))
    first: SfmResult | None = None
    try:
        first = _sfm_pass(image_dir, out_dir, relaxed=relaxed, min_registered=need, overwrite=True, **kw)
        if relaxed or not retry_relaxed or len(first.registered) == first.num_images:
            return first
    except RegistrationError:
        if relaxed or not retry_relaxed:
            raise
    n_first = 0 if first is None else len(first.registered)
    log.warning("SfM registered %d of %d photos; retrying with relaxed thresholds", n_first, len(names))
    second_dir = out_dir.parent / f".{out_dir.name}.relaxed"
    try:
        second = _sfm_pass(image_dir, second_dir, relaxed=True, min_registered=max(need, n_first + 1),
                           overwrite=True, **kw)
    except RegistrationError:
        if first is None:
            raise
        return first
    report_path = second_dir / "sfm.json"
    report = json.loads(report_path.read_text())
    report["first_pass"] = {"registered": n_first, "cpu_seconds": None if first is None else first.cpu_seconds}
    report_path.write_text(json.dumps(report, indent=2))
    if out_dir.exists():
        shutil.rmtree(out_dir)
    os.replace(second_dir, out_dir)
    return replace(second, out_dir=out_dir, model_dir=out_dir / "sparse" / "0", image_dir=out_dir / "images")


def _sfm_pass(
    image_dir: Path,
    out_dir: Path,
    matcher: str,
    *,
    max_image_size: int,
    camera_model: str,
    relaxed: bool,
    min_registered: int,
    overwrite: bool,
    num_threads: int,
    seed: int,
    mask_dir: Path | None = None,
) -> SfmResult:
    """One extraction, matching and mapping pass of :func:`run_sfm` (same arguments)."""
    import pycolmap

    image_dir, out_dir = Path(image_dir), Path(out_dir)
    if out_dir.exists() and any(out_dir.iterdir()) and not overwrite:
        raise ReconError("output folder exists and is not empty", path=out_dir, hint="pass --overwrite or another --out")
    cpu0 = time.process_time()
    names = list_images(image_dir)
    groups = check_photos(image_dir, names)
    need = min_registered
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out_dir.parent, prefix=f".{out_dir.name}.tmp-"))
    try:
        pycolmap.logging.minloglevel = 2
        db = tmp / "distorted" / "database.db"
        db.parent.mkdir(parents=True)
        pycolmap.set_random_seed(seed)
        ext, match, mapper, verify = _options(relaxed, max_image_size, num_threads, seed)
        reader = pycolmap.ImageReaderOptions()
        reader.camera_model = camera_model
        # COLMAP ignores EXIF orientation: it reads upright copies of turned photos.
        upright_dir = upright_folder(image_dir, names, tmp / "upright")
        if mask_dir is not None:
            from recon.wild.masks import write_colmap_masks

            reader.mask_path = str(write_colmap_masks(mask_dir, upright_dir, names, tmp / "distorted" / "masks"))
        for group in groups.values():  # one shared camera per image size
            pycolmap.extract_features(db, upright_dir, image_names=group, camera_mode=pycolmap.CameraMode.SINGLE,
                                      reader_options=reader, extraction_options=ext, device=pycolmap.Device.cpu)
        if matcher == "exhaustive":
            pycolmap.match_exhaustive(db, matching_options=match, verification_options=verify,
                                      device=pycolmap.Device.cpu)
        else:
            pycolmap.match_sequential(db, matching_options=match, verification_options=verify,
                                      device=pycolmap.Device.cpu)
        models_dir = tmp / "distorted" / "sparse"
        models_dir.mkdir()
        models = pycolmap.incremental_mapping(db, upright_dir, models_dir, options=mapper)
        best = max(models.values(), key=lambda r: r.num_reg_images(), default=None)
        failed = _why_failed(db, best, names)
        n_reg = 0 if best is None else best.num_reg_images()
        if n_reg < need:
            lines = "; ".join(f"{n}: {why}" for n, why in failed.items())
            raise RegistrationError(f"SfM registered only {n_reg} of {len(names)} photos (need {need}). {lines}",
                            path=image_dir, hint=FALLBACKS)
        for sub in models_dir.iterdir():  # keep only the chosen model, as sparse/0
            shutil.rmtree(sub)
        (models_dir / "0").mkdir()
        best.write(models_dir / "0")
        pycolmap.undistort_images(tmp, models_dir / "0", upright_dir, output_type="COLMAP")
        (tmp / "sparse" / "0").mkdir()
        for f in list((tmp / "sparse").iterdir()):
            if f.is_file():
                os.replace(f, tmp / "sparse" / "0" / f.name)
        for junk in ("upright", "stereo", "run-colmap-geometric.sh", "run-colmap-photometric.sh"):
            p = tmp / junk
            shutil.rmtree(p) if p.is_dir() else p.unlink(missing_ok=True)
        registered = sorted(im.name for im in best.images.values() if im.has_pose)
        if mask_dir is not None:
            from recon.wild.masks import undistort_masks

            undistort_masks(models_dir / "0", tmp / "distorted" / "masks", registered, tmp / "masks")
        report = {"registered": registered, "failed": failed, "num_images": len(names),
                  "num_points": best.num_points3D(), "matcher": matcher, "relaxed": relaxed,
                  "max_image_size": max_image_size, "camera_model": camera_model, "seed": seed,
                  "cpu_seconds": time.process_time() - cpu0}
        (tmp / "sfm.json").write_text(json.dumps(report, indent=2))
        if out_dir.exists():
            shutil.rmtree(out_dir)
        os.replace(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return SfmResult(out_dir, out_dir / "sparse" / "0", out_dir / "images", registered, failed,
                     len(names), report["num_points"], report["cpu_seconds"])


def load_sfm_scene(out_dir: Path, names: list[str] | None = None) -> SceneData:
    """Reads :func:`run_sfm`'s output as a :class:`SceneData` (registered images only, in the
    order of ``names`` when given)."""
    import pycolmap
    from PIL import Image

    rec = pycolmap.Reconstruction(str(out_dir / "sparse" / "0"))
    by_name = {im.name: im for im in rec.images.values() if im.has_pose}
    order = [n for n in (names or sorted(by_name)) if n in by_name]
    images, Ks, viewmats, ws, hs = [], [], [], [], []
    for n in order:
        im = by_name[n]
        cam = rec.cameras[im.camera_id]
        Ks.append(cam.calibration_matrix())
        vm = np.eye(4)
        vm[:3, :4] = im.cam_from_world().matrix()
        viewmats.append(vm)
        ws.append(cam.width)
        hs.append(cam.height)
        arr = np.asarray(Image.open(out_dir / "images" / n).convert("RGB"), dtype=np.float32) / 255.0
        images.append(torch.from_numpy(arr))
    pts = np.array([p.xyz for p in rec.points3D.values()], dtype=np.float32).reshape(-1, 3)
    cols = np.array([p.color for p in rec.points3D.values()], dtype=np.float32).reshape(-1, 3) / 255.0
    cams = Cameras.create(np.stack(Ks), np.stack(viewmats), ws, hs)
    meta = {}
    if (out_dir / "sfm.json").is_file():
        meta["sfm"] = json.loads((out_dir / "sfm.json").read_text())
    return SceneData(images=images, cameras=cams, names=order, format="colmap", root=out_dir,
                     points=torch.from_numpy(pts), point_colors=torch.from_numpy(cols), meta=meta)


# Part of the SfM cache key: raise it when the same photos would give another model (v2: EXIF
# orientation applied before SfM, relaxed second pass, seeded single-threaded mapping).
SFM_CACHE_VERSION = 2


def photos_hash(image_dir: Path, names: list[str]) -> str:
    """A hash of the photos' names and bytes and of :data:`SFM_CACHE_VERSION` (the SfM cache key)."""
    h = hashlib.sha1(f"recon-sfm-v{SFM_CACHE_VERSION}".encode())
    for n in names:
        h.update(n.encode())
        h.update(hashlib.sha1((image_dir / n).read_bytes()).digest())
    return h.hexdigest()[:16]


def ensure_poses(scene: SceneData, cache_dir: str | Path, **sfm_kwargs) -> SceneData:
    """The scene with camera poses: unchanged when it has them, else SfM on its photo folder,
    run once and cached under ``cache_dir/sfm-<hash of the photos>``.

    Unregistered photos are dropped (with a warning naming them); masks are kept by name when
    their size matches the undistorted images. A ``masks/`` folder of user masks beside the photos
    (:mod:`recon.wild.masks`) is honoured by feature extraction and part of the cache key.
    """
    if scene.has_poses:
        return scene
    from recon.wild.masks import find_mask_folder

    image_dir = Path(scene.meta.get("image_dir", scene.root))  # a photo folder's images/ subfolder
    mask_dir = find_mask_folder(image_dir)  # user masks (0 = ignore): no features there
    key = photos_hash(image_dir, scene.names)
    if mask_dir is not None:
        key += "-m" + photos_hash(mask_dir, sorted(p.name for p in mask_dir.iterdir() if p.is_file()))[:8]
    out = Path(cache_dir) / f"sfm-{key}"
    if not (out / "sfm.json").is_file():
        result = run_sfm(image_dir, out, overwrite=True, mask_dir=mask_dir, **sfm_kwargs)
        log.info(result.summary())
    posed = load_sfm_scene(out, scene.names)
    dropped = [n for n in scene.names if n not in posed.names]
    if dropped:
        log.warning("SfM could not register %d of %d photos, training without them: %s (more overlap helps: "
                    "neighbours at most ~10-15 degrees apart, 30-40 photos for a 360-degree capture)",
                    len(dropped), len(scene.names), ", ".join(dropped))
    if scene.masks is not None:
        idx = {n: i for i, n in enumerate(scene.names)}
        masks = [scene.masks[idx[n]] for n in posed.names]
        if all(tuple(m.shape) == tuple(im.shape[:2]) for m, im in zip(masks, posed.images)):
            posed.masks = masks
        else:
            log.warning("masks dropped: undistortion changed the image sizes")
    return posed
