"""The run directory: what ``recon train`` writes and every later command reads back.

This package sits below the trainer and the viewer (it imports neither): the trainer writes a
run with it, and ``recon eval``, ``view``, ``render``, ``export``, ``repair`` and ``bench`` read
runs with it.

Layout (other parts of recon add their own folders)::

    RUN/.recon-run                        marker: recon created this folder (``--overwrite`` deletes
                                          only folders holding it)
    RUN/config.json                       TrainConfig, plain JSON with schema_version
    RUN/cameras.json                      all scene cameras (Ks, viewmats, sizes), names, split,
                                          a hash of every image as trained on, the SfM folder
    RUN/sfm/sfm-<hash>/                   photo folders only: the SfM model and undistorted images
    RUN/checkpoints/step_NNNNNN.safetensors  parameters, Adam moments, strategy tensors, RNG
    RUN/checkpoints/step_NNNNNN.json      step, Adam steps/LRs, strategy scalars (no pickle)
    RUN/checkpoints/latest.json           the newest complete checkpoint
    RUN/log.jsonl                         one JSON object per logged step (loss, psnr, count, it/s)
    RUN/eval/metrics.json                 `recon eval` results; eval/<name>.png side by side
    RUN/priors/                           geometry priors (recon.priors)
    RUN/renders/                          videos
    RUN/export/                           PLY, meshes

A run carries its cameras: every later command (eval, view, render, export) reads them from
``cameras.json``, never from a new structure-from-motion, whose frame (and registered set)
would differ. A photo folder's SfM output stays in the run (``RUN/sfm``, outside ``priors/``
which training rewrites); ``recon eval`` reads its undistorted images from there
(:func:`load_run_scene`) and checks each image against the hash recorded at
training time, so a changed dataset or photo is an error, not a silently different score.

The marker and ``config.json`` are written once the scene has loaded, so a start that fails on
its input leaves no run behind. ``recon train --overwrite`` deletes a folder only when it holds
the marker (folders written before the marker existed are refused: delete them by hand).
"""

from recon.run.cameras import image_digest, read_cameras, write_cameras
from recon.run.checkpoint import (
    Checkpoint,
    checkpoint_steps,
    find_checkpoint,
    latest_checkpoint,
    load_checkpoint,
    non_finite,
    save_checkpoint,
)
from recon.run.folder import RUN_MARKER, OutFolder, is_marked_run, mark_run, prepare_out, removed_if_start_fails
from recon.run.load import LoadedRun, load_run
from recon.run.scene import SYNTHETIC, load_run_scene, load_training_scene

__all__ = [
    "RUN_MARKER",
    "SYNTHETIC",
    "Checkpoint",
    "LoadedRun",
    "OutFolder",
    "checkpoint_steps",
    "find_checkpoint",
    "image_digest",
    "is_marked_run",
    "latest_checkpoint",
    "load_checkpoint",
    "load_run",
    "load_run_scene",
    "load_training_scene",
    "mark_run",
    "non_finite",
    "prepare_out",
    "read_cameras",
    "removed_if_start_fails",
    "save_checkpoint",
    "write_cameras",
]
