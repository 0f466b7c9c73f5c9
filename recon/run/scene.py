"""The scene of a run: read for training (photos without poses get SfM, kept in ``RUN/sfm``) and read
back by every later command (the run's own cameras and SfM images, checked against ``cameras.json``).
"""

from __future__ import annotations

from pathlib import Path

from recon.config import DataConfig
from recon.data.scene import SceneData
from recon.errors import ConfigError, DataError
from recon.run.cameras import image_digest
from recon.run.load import LoadedRun

SYNTHETIC = "synthetic"
"""``--data`` of the embedded demo scene (``synthetic:<variant>``: :mod:`recon.data.synthetic_wild`)."""


def load_training_scene(
    data: DataConfig, run_dir: Path | None = None, verbose: bool = True, allow_sfm: bool = True
) -> SceneData:
    """Reads the scene named by ``data.path`` (``"synthetic"`` = the embedded demo scene, ``"synthetic:wild"``
    and the other :mod:`recon.data.synthetic_wild` variants its perturbed versions).

    Photos without poses get them by SfM (``allow_sfm``), cached in ``run_dir/sfm``.
    """
    if data.path.partition(":")[0] == SYNTHETIC:  # "synthetic:wild-rain": recon.data.synthetic_wild
        from recon.data.synthetic_wild import make_synthetic_variant

        return make_synthetic_variant(
            data.path,
            num_views=data.synthetic_views, width=data.synthetic_width, height=data.synthetic_height,
            test_every=data.test_every,
        )  # fmt: skip
    if not data.path:
        raise ConfigError("no scene given", hint="pass --data PATH (a scene folder) or use `recon demo`")
    from recon.data.formats import load_scene

    scene = load_scene(
        data.path, format=data.format, downscale=data.downscale, verbose=verbose, skip_missing=data.skip_missing
    )
    if not scene.has_poses:
        if not allow_sfm:
            raise DataError(
                "the photos have no camera poses and this run carries no SfM model",
                path=data.path,
                hint="retrain the run: evaluating on a new SfM would use other cameras",
            )
        try:
            from recon.priors.sfm import ensure_poses
        except ImportError:
            raise ConfigError(
                "the photos have no camera poses and pose recovery is not installed",
                path=data.path,
                hint="pip install 'recon[priors]'",
            ) from None
        # RUN/sfm, not RUN/priors: training rewrites priors/, and the run must keep its cameras.
        scene = ensure_poses(scene, run_dir / "sfm" if run_dir is not None else Path(data.path) / "priors")
        scene = downscale_sfm_scene(scene, data.downscale)
    return scene


def downscale_sfm_scene(scene: SceneData, factor: float) -> SceneData:
    """An SfM scene at ``--downscale``: SfM runs on the full-size photos, so its undistorted
    images and cameras are box-downscaled here (:meth:`Cameras.rescale` matches exactly)."""
    if factor == 1:
        return scene
    from recon.data.images import downscale_array

    scene.images = [downscale_array(im, factor) for im in scene.images]
    if scene.masks is not None:  # [H, W] in [0, 1], averaged like read_mask does
        scene.masks = [downscale_array(m[..., None].float(), factor)[..., 0] for m in scene.masks]
    scene.cameras = scene.cameras.rescale(factor)
    return scene


def load_run_scene(run: LoadedRun) -> SceneData:
    """The images a run was trained on, in its ``names`` order, with the run's own cameras.

    Never runs structure from motion: a photo folder's images are the undistorted ones kept in
    the run's SfM folder, other scenes are read from ``data.path``. Each image is checked against
    the hash recorded at training time.

    Raises:
        DataError: the run's SfM folder is missing, an image is missing or differs from training.
    """
    if run.sfm_dir is not None:
        from recon.priors.sfm import load_sfm_scene

        if not (run.sfm_dir / "sparse" / "0").is_dir():
            raise DataError(
                "the run's SfM model is missing",
                path=run.sfm_dir,
                hint="restore the run folder or retrain: a new SfM would use other cameras",
            )
        scene = downscale_sfm_scene(load_sfm_scene(run.sfm_dir, run.names), run.config.data.downscale)
    else:
        scene = load_training_scene(run.config.data, verbose=False, allow_sfm=False)
    index = {n: i for i, n in enumerate(scene.names)}
    missing = [n for n in run.names if n not in index]
    if missing:
        raise DataError(
            f"{len(missing)} images of the run are missing: {', '.join(missing[:5])}",
            path=scene.root,
            hint="restore them or retrain the run",
        )
    scene = scene.subset([index[n] for n in run.names])
    changed = [
        n
        for n, im in zip(scene.names, scene.images)
        if n in run.image_hashes and image_digest(im) != run.image_hashes[n]
    ]
    if changed:
        raise DataError(
            f"{len(changed)} images differ from those the run was trained on: {', '.join(changed[:5])}",
            path=scene.root,
            hint="restore the original images (or downscale) or retrain the run",
        )
    scene.cameras = run.cameras
    return scene
