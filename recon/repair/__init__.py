"""Diffusion repair of novel views (issue #11): a pseudo-view source for the trainer.

Sparse-view models look right at the training views and wrong in between. Repair renders views
between the training cameras, repairs each render with an image model that knows what the
artefacts of *this* scene look like, and hands the repaired images back to the trainer as
down-weighted pseudo ground truth (LM-Gaussian, GaussianObject, Difix3D+; METHODS.md section 6).

The pieces, each usable alone:

* :mod:`~recon.repair.pairs` / :mod:`~recon.repair.dataset`: training pairs from the training
  views only: leave-one-out sub-runs render the view they did not see, attribute-noise renders
  of the trained model imitate the same errors; each pair = (degraded render, alpha, depth, the
  nearest other training photo warped in by the rendered depth + validity) -> the photo. Saved
  under ``RUN/repair/pairs/`` as PNGs a person can look at.
* :mod:`~recon.repair.fixer`: a small diffusers ``UNet2DModel`` fitted on those pairs on the CPU.
  It repairs in one step from the render (optionally a few DDIM steps from a start strength), and
  a gate compares it with the identity on a held-out leave-one-out view: repair is used only where
  it helps, and the reason is reported either way. Its change can be blended back towards the
  render (``render + s (fixed - render)``, ``s`` calibrated on milder held-out pairs: novel views
  of the main run are less damaged than leave-one-out renders). Saved under ``RUN/repair/model/``.
* :mod:`~recon.repair.pretrained`: a local diffusers folder instead (``--repair PATH``): an
  img2img pipeline such as sd-turbo, the same model as a one-step fixer, or a fixer fitted by
  recon on other scenes. Never downloads.
* :mod:`~recon.repair.source`: :class:`PseudoViewSource` is the trainer-facing protocol,
  ``views(step) -> list[PseudoView(camera, image, weight)]``; :class:`RepairedViews` implements it
  with any :class:`RepairModel`, pseudo cameras between the training cameras
  (:func:`between_cameras`), a refresh period and alpha x distance weights.

In training (``recon train --repair auto|off|PATH``, ``config.repair``):
:mod:`~recon.repair.schedule` says when rounds start, how far from the training cameras their
pseudo cameras go and how much the pseudo-view loss weighs; :class:`~recon.repair.rounds.RepairRounds`
makes, saves (``RUN/repair/round_K``) and hands out the views; :mod:`~recon.repair.training`
builds it for a trainer (pairs, fit or load, gate at the first round). The trainer adds a
``weight``-masked L1 for at most one view per step, after the strategy took the real view's
gradients. ``recon repair pairs|fit|apply`` (:mod:`~recon.repair.cli`) call
:mod:`~recon.repair.workflow`, which keeps everything under ``RUN/repair/``.

After training, :mod:`~recon.repair.postpass` repairs single rendered frames (Difix3D+'s
post-pass): ``recon render --repair``, the viewer's ``repaired`` mode and ``recon eval --repair``.

diffusers is optional (``pip install 'recon[diffusion]'``): only :mod:`~recon.repair.fixer` and
:mod:`~recon.repair.pretrained` import it, inside the functions that use it.
"""

from recon.repair.dataset import PairSet, load_pairs, make_pairs, random_crops, save_pairs
from recon.repair.fixer import (
    Fixer,
    FixerConfig,
    GateResult,
    calibrate_blend,
    evaluate_gate,
    fit_and_gate,
    fit_fixer,
    split_held_out,
)
from recon.repair.pairs import PairConfig, RepairPair, leave_one_out_pairs, noise_pairs
from recon.repair.pretrained import Img2ImgRepair, OneStepRepair, load_repair_model
from recon.repair.source import (
    PseudoView,
    PseudoViewConfig,
    PseudoViewSource,
    RepairedViews,
    RepairModel,
    between_cameras,
)
from recon.repair.workflow import fit_for_run, pairs_for_run, repair_model_for_run

__all__ = [
    "Fixer",
    "FixerConfig",
    "GateResult",
    "Img2ImgRepair",
    "OneStepRepair",
    "PairConfig",
    "PairSet",
    "PseudoView",
    "PseudoViewConfig",
    "PseudoViewSource",
    "RepairModel",
    "RepairPair",
    "RepairedViews",
    "between_cameras",
    "calibrate_blend",
    "evaluate_gate",
    "fit_and_gate",
    "fit_fixer",
    "fit_for_run",
    "leave_one_out_pairs",
    "load_pairs",
    "load_repair_model",
    "make_pairs",
    "noise_pairs",
    "pairs_for_run",
    "random_crops",
    "repair_model_for_run",
    "save_pairs",
    "split_held_out",
]  # fmt: skip
