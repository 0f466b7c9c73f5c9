"""The training loop: render -> losses -> backward -> optimizer -> strategy, with checkpoints.

Reproducible on CPU: every random choice draws from torch's global RNG seeded by
``config.seed`` (and restored from checkpoints) or from generators derived from the step, so
``--resume`` continues bit-for-bit.
"""

from __future__ import annotations

import json
import logging
import math
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from recon.cameras import Cameras
from recon.config import TrainConfig
from recon.data.scene import SceneData
from recon.data.splits import Split
from recon.errors import ConfigError, ReconError
from recon.primitives import family
from recon.priors.pointcloud import PointCloud
from recon.render import render, solid_background
from recon.run import Checkpoint, non_finite, save_checkpoint
from recon.train import losses
from recon.train.health import CollapseMonitor, lr_hint
from recon.train.optim import base_lrs, make_optimizers, make_strategy, position_lr
from recon.train.setup import background_color
from recon.train.state import TrainingState
from recon.wild.terms import WildTerms, make_wild_terms

if TYPE_CHECKING:
    from recon.repair.source import PseudoViewSource

log = logging.getLogger(__name__)


class TrainingDiverged(ReconError):
    """The loss or the parameters became NaN/inf, or the fit collapsed (see :mod:`recon.train.health`)."""


@dataclass
class TrainResult:
    """Summary of a finished (or interrupted) run."""

    step: int
    num_primitives: int
    seconds: float
    last_loss: float
    last_psnr: float
    interrupted: bool = False
    log: list[dict[str, Any]] = field(default_factory=list)


def sparse_enabled(config: TrainConfig, num_train: int) -> bool:
    """Whether the sparse-view regularisers are on (explicit, or automatic for <= 9 views)."""
    return config.sparse.enabled if config.sparse.enabled is not None else num_train <= 9


def pseudo_camera(cameras: Cameras, shift: float) -> Cameras:
    """A camera displaced from a random one of ``cameras`` by ``shift`` in a random direction."""
    i = int(torch.randint(len(cameras), (1,), device="cpu"))  # host-side draws: the checkpointed CPU generator
    cam = cameras[i]
    delta = torch.randn(3, device="cpu")
    delta = delta / delta.norm().clamp_min(1e-9) * shift
    vm = cam.viewmats.clone()
    vm[0, :3, 3] -= vm[0, :3, :3] @ delta.to(vm.dtype)  # centre moves by +delta
    return Cameras(Ks=cam.Ks, viewmats=vm, widths=cam.widths, heights=cam.heights)


class Trainer:
    """Trains one primitive family on the training views of a scene.

    Args:
        config: the run's config.
        scene: the scene (all views).
        split: train/test indices.
        run_dir: folder for checkpoints and logs (None = no files, for tests).
        depth_priors: per training view [H, W] depth (0 = unknown) or None.
        state: live state shared with a viewer.
    """

    def __init__(self, config: TrainConfig, scene: SceneData, split: Split, run_dir: Path | None,
                 depth_priors: list[Tensor] | None = None, state: TrainingState | None = None):
        self.config = config
        self.scene = scene
        self.split = split
        self.run_dir = run_dir
        self.train_ids = list(split.train)
        self.device = torch.device(config.device)  # parameters, images, masks, priors and cameras live here
        self.cameras = scene.cameras[self.train_ids].to(self.device)
        self.images = [scene.images[i].to(self.device) for i in self.train_ids]
        self.masks = None if scene.masks is None else [scene.masks[i].to(self.device) for i in self.train_ids]
        self.depth_priors = None if depth_priors is None else [d.to(self.device) for d in depth_priors]
        self.scene_scale = scene.scene_scale
        self.sparse = sparse_enabled(config, len(self.train_ids))
        self.background = background_color(config, scene, split.protocol)
        self.background = None if self.background is None else self.background.to(self.device)
        self.state = state or TrainingState(iterations=config.iterations, primitive=config.primitive)
        self.family = family(config.primitive)
        self.params: dict[str, torch.nn.Parameter] = {}
        self.optimizers: dict[str, torch.optim.Adam] = {}
        self.lrs0: dict[str, float] = {}
        if config.strategy.name not in ("auto", "none", *self.family.strategies):
            raise ConfigError(f"strategy.name {config.strategy.name} is not made for {config.primitive}s",
                              hint=f"use strategy.name auto or one of {', '.join(self.family.strategies)}")
        self.strategy = make_strategy(config, self.scene_scale)
        self.strategy_state: dict[str, Any] = {}
        self.step = 0
        self._stop = False
        self.health = CollapseMonitor()
        self.saved_step: int | None = None  # step of the newest checkpoint this trainer wrote or loaded
        self.pseudo_source: PseudoViewSource | None = None  # repaired novel views (recon.repair), or none
        self.wild: WildTerms | None = make_wild_terms(config, scene, self.train_ids, self.device)  # recon.wild

    # ------------------------------------------------------------------ setup
    def init_from_cloud(self, cloud: PointCloud) -> None:
        """Fresh parameters from a point cloud and a fresh RNG/optimizer state."""
        torch.manual_seed(self.config.seed)
        c = self.config
        self._set_params(self.family.init(cloud.points, cloud.colors, c.section(), c.optim.sh_degree))
        self.strategy_state = self.strategy.initialize_state(self.params)
        self.step = 0

    def _set_params(self, raw: dict[str, Tensor]) -> None:
        self.params = {k: torch.nn.Parameter(v.to(self.device).contiguous()) for k, v in raw.items()}
        self.lrs0 = base_lrs(self.config, self.scene_scale)
        self.optimizers = make_optimizers(self.params, self.lrs0)

    def load(self, ckpt: Checkpoint) -> None:
        """Restores parameters, Adam moments, strategy state and the RNG from a checkpoint."""
        self._set_params(ckpt.params)
        for name, p in self.params.items():
            moments, meta = ckpt.adam.get(name, {}), ckpt.adam_meta.get(name, {})
            opt = self.optimizers[name]
            opt.param_groups[0]["lr"] = meta.get("lr", opt.param_groups[0]["lr"])
            if "step" in meta and moments:
                opt.state[p] = {"step": torch.tensor(meta["step"], dtype=torch.float32, device="cpu"),
                                "exp_avg": moments["exp_avg"].to(p.device, copy=True),
                                "exp_avg_sq": moments["exp_avg_sq"].to(p.device, copy=True)}
        self.strategy_state = self.strategy.initialize_state(self.params)
        saved = ckpt.strategy  # per-primitive statistics, read onto the CPU
        self.strategy_state.update({k: v.to(self.device) if isinstance(v, Tensor) else v for k, v in saved.items()})
        if ckpt.rng is not None:
            torch.set_rng_state(ckpt.rng)
        if self.wild is not None and "wild" in ckpt.extra:
            self.wild.load_state_dict(ckpt.extra["wild"])
        self.step = self.saved_step = ckpt.step

    # ------------------------------------------------------------------ pieces
    def sh_degree(self, step: int) -> int:
        o = self.config.optim
        return min(o.sh_degree, step // max(o.sh_increase_every, 1))

    def view_index(self, step: int) -> int:
        """Training view of ``step``: a fresh permutation per epoch, derived from seed and epoch."""
        n = len(self.train_ids)
        epoch, pos = divmod(step, n)
        gen = torch.Generator().manual_seed(self.config.seed * 1_000_003 + epoch)
        return int(torch.randperm(n, generator=gen, device="cpu")[pos])

    def _set_lrs(self, step: int) -> dict[str, float]:
        lrs = {}
        for name, opt in self.optimizers.items():
            lr = self.lrs0[name]
            if name == self.family.position:
                lr = position_lr(self.config, lr, self.scene_scale, step)
            opt.param_groups[0]["lr"] = lr
            lrs[name] = lr
        return lrs

    def _target(self, v: int, bg: Tensor) -> Tensor:
        img = self.images[v]
        if self.background is None and self.masks is not None:  # random background: the object alone
            m = self.masks[v][..., None]
            img = img * m + bg * (1 - m)
        return img

    def _regularisers(self) -> dict[str, Tensor]:
        """The family's penalties on its parameters (opacity, scale...), weighted by its config section."""
        if self.family.regularisers is None:
            return {}
        return self.family.regularisers(self.config.section(), self.params)

    def _sparse_terms(self, v: int, depth: Tensor, alpha: Tensor, step: int) -> dict[str, Tensor]:
        s, terms = self.config.sparse, {}
        if s.warp_weight > 0 and step >= s.warp_start and len(self.train_ids) > 1:
            u = (v + 1 + int(torch.randint(len(self.train_ids) - 1, (1,), device="cpu"))) % len(self.train_ids)
            valid = alpha > 0.5
            if self.masks is not None:
                valid = valid & (self.masks[v] > 0.5)
            cams = self.cameras
            terms["warp"] = s.warp_weight * losses.warp_consistency_loss(
                depth, self.images[v], self.images[u], cams.Ks[v], cams.viewmats[v], cams.Ks[u], cams.viewmats[u],
                valid=valid, mask_src=None if self.masks is None else self.masks[u])
        if self.depth_priors is not None:
            prior = self.depth_priors[v]
            if s.pearson_weight > 0:
                terms["pearson"] = s.pearson_weight * losses.pearson_depth_loss(depth, prior)
            if s.depth_weight > 0:
                terms["depth"] = s.depth_weight * losses.relative_depth_loss(depth, prior, alpha > 0.5)
            if s.ranking_weight > 0:
                terms["ranking"] = s.ranking_weight * losses.ranking_loss(depth, prior, s.ranking_pairs, s.ranking_box)
        if s.pseudo_weight > 0 and step >= s.pseudo_start and step % max(s.pseudo_every, 1) == 0:
            cam = pseudo_camera(self.cameras, s.pseudo_shift * self.scene_scale)
            out = render(self.config.primitive, self.params, cam, sh_degree=self.sh_degree(step),
                         backend=self.config.backend)
            terms["pseudo"] = s.pseudo_weight * losses.depth_smoothness(out.depth[0, ..., 0], out.rgb[0].detach())
        return terms

    def pseudo_background(self) -> Tensor:
        """[3] background of pseudo-view renders (the training one, black when it is random)."""
        return solid_background(self.background, self.device)

    def _pseudo_view_step(self, step: int) -> dict[str, Tensor]:
        """Adds the gradient of the pseudo-view loss (``weight``-masked L1 to repaired views, plus
        D-SSIM with ``repair.ssim_lambda``) to the real view's, after the strategy's ``info`` took
        the real view's ``means2d`` and ``param_grads``: densification statistics come from real
        views only, while Adam still takes one step on the sum (a second optimizer step per
        iteration would change Adam's moments and the real views' effective learning rate).
        ``p.grad`` is replaced, not added to in place, so the tensors ``info["param_grads"]`` holds
        stay the real view's."""
        views = self.pseudo_source.views(step)
        if not views:
            return {}
        total = torch.zeros((), device=self.device)
        for view in views:
            out = render(self.config.primitive, self.params, view.camera.to(self.device),
                         sh_degree=self.sh_degree(step), backgrounds=self.pseudo_background().reshape(1, 3),
                         backend=self.config.backend)
            total = total + losses.weighted_photometric(out.rgb[0], view.image.to(self.device),
                                                        view.weight.to(self.device), self.config.repair.ssim_lambda)
        names = list(self.params)
        grads = torch.autograd.grad(total, [self.params[k] for k in names], allow_unused=True)
        for name, g in zip(names, grads, strict=True):
            if g is not None:
                p = self.params[name]
                p.grad = g if p.grad is None else p.grad + g
        return {"repair": total.detach()}

    @torch.no_grad()
    def prune_floaters(self) -> int:
        """Removes primitives lying in front of the depth prior by more than the margin in any view."""
        if self.depth_priors is None:
            return 0
        from recon.strategy import ops

        centers = self.family.centers(self.params).detach()
        uv, z = self.cameras.project(centers)  # [V, N, 2], [V, N]
        floater = torch.zeros(centers.shape[0], dtype=torch.bool, device=centers.device)
        for v, prior in enumerate(self.depth_priors):
            h, w = prior.shape
            x, y = uv[v, :, 0].floor().long(), uv[v, :, 1].floor().long()
            inside = (x >= 0) & (x < w) & (y >= 0) & (y < h) & (z[v] > 0)
            d = torch.zeros_like(z[v])
            d[inside] = prior[y[inside], x[inside]]
            floater |= inside & (d > 0) & (z[v] < (1 - self.config.sparse.floater_margin) * d)
        if bool(floater.any()) and not bool(floater.all()):
            ops.remove(self.params, self.optimizers, self.strategy_state, floater)
            return int(floater.sum())
        return 0

    # ------------------------------------------------------------------ loop
    def train_step(self, step: int) -> dict[str, float]:
        """One optimisation step (``step`` counts from 0)."""
        c = self.config
        lrs = self._set_lrs(step)
        v = self.view_index(step)
        cam = self.cameras[v]
        # random background: drawn from the CPU generator (checkpointed, same stream on every device)
        bg = self.background if self.background is not None else torch.rand(3, device="cpu").to(self.device)
        try:
            out = render(c.primitive, self.params, cam, sh_degree=self.sh_degree(step), backgrounds=bg.reshape(1, 3),
                         backend=c.backend)
        except ValueError as err:  # the ops reject non-finite inputs (raw, or overflowing once activated)
            if not non_finite(self.params) and "NaN or inf" not in str(err):
                raise
            self._diverged("nan", step)
        target = self._target(v, bg)[None]
        rgb = out.rgb if self.wild is None else self.wild.in_view(v, out.rgb, target)  # [1, H, W, 3] in v's appearance
        weight = None if self.wild is None else self.wild.pixel_weight(v, rgb[0], target[0], step)
        loss, l1 = losses.photometric_loss(rgb, target, c.loss.ssim_lambda, weight)
        terms = {"l1": l1, **self._regularisers(), **(self.wild.regularisers(v) if self.wild is not None else {})}
        if self.family.loss_terms is not None:  # e.g. GES' frequency-modulated L1
            terms.update(self.family.loss_terms(c.section(), rgb, target, l1, step / max(c.iterations, 1)))
        if self.sparse:
            terms.update(self._sparse_terms(v, out.depth[0, ..., 0], out.alpha[0, ..., 0], step))
        for key, value in terms.items():
            if key != "l1":
                loss = loss + value
        if not bool(torch.isfinite(loss)):
            self._diverged(str(float(loss.detach())), step)
        info = {"means2d": out.means2d, "radii": out.radii, "width": cam.width, "height": cam.height,
                "n_cameras": 1, "lrs": lrs,
                "max_weights": out.max_weights if out.max_weights is not None else torch.ones_like(out.radii[..., 0])}
        self.strategy.step_pre_backward(self.params, self.optimizers, self.strategy_state, step + 1, info)
        loss.backward()
        info["param_grads"] = {k: p.grad for k, p in self.params.items()}
        if self.pseudo_source is not None:
            terms.update(self._pseudo_view_step(step))
        for opt in self.optimizers.values():
            opt.step()
            opt.zero_grad(set_to_none=True)
        if self.wild is not None:
            self.wild.step()
        self.strategy.step_post_backward(self.params, self.optimizers, self.strategy_state, step + 1, info)
        every = c.sparse.floater_every
        if self.sparse and every > 0 and (step + 1) % every == 0:
            self.prune_floaters()
        return {"loss": float(loss.detach()), "l1": float(l1.detach()), "psnr": losses.psnr(rgb.detach().clamp(0, 1), target),
                **{k: float(t.detach()) for k, t in terms.items() if k != "l1"}}

    def _diverged(self, value: str, step: int) -> None:
        self._stop_bad(f"the loss became {value} at step {step + 1}")

    def _stop_bad(self, what: str) -> None:
        """Raises :class:`TrainingDiverged` naming the last good checkpoint and the likely cause."""
        if self.run_dir is None:
            kept = ""
        elif self.saved_step is None:
            kept = "; no checkpoint was written"
        else:
            kept = f"; the last good checkpoint (step {self.saved_step}) is kept in {self.run_dir / 'checkpoints'}"
        raise TrainingDiverged(what + kept, hint=lr_hint(self.config))

    def _check_health(self, psnr: float) -> None:
        """After each step: stop on non-finite parameters, zero primitives or a collapsed fit."""
        bad = non_finite({k: p.detach() for k, p in self.params.items()})
        if bad:
            self._stop_bad(f"the parameters {', '.join(bad)} became NaN or infinite at step {self.step}")
        if self.num_primitives == 0:
            self._stop_bad(f"every primitive was pruned by step {self.step}")
        self.health.update(psnr)
        if self.health.collapsed:
            self._stop_bad(f"training collapsed by step {self.step}: {self.health.describe()}")

    def save(self) -> Path | None:
        """Writes a checkpoint unless the fit looks collapsed (then the previous one stays the latest)."""
        if self.run_dir is None:
            return None
        if self.health.suspect:
            log.warning("checkpoint at step %d not written: %s; step %s stays the latest", self.step,
                        self.health.describe(), self.saved_step)
            return None
        extra = {"sh_degree": self.sh_degree(self.step),
                 "background": None if self.background is None else self.background.tolist(),
                 "num_primitives": self.num_primitives}
        if self.wild is not None:
            extra["wild"] = self.wild.state_dict()
            self.wild.save_masks(self.run_dir / "wild")
        path = save_checkpoint(self.run_dir / "checkpoints", self.step, self.params, self.optimizers,
                               self.strategy_state, extra)
        self.saved_step = self.step
        return path

    @property
    def num_primitives(self) -> int:
        return int(next(iter(self.params.values())).shape[0])

    def request_stop(self, *_: Any) -> None:
        self._stop = True

    def train(self, progress: Any = None, install_sigint: bool = True) -> TrainResult:
        """Runs from ``self.step`` to ``config.iterations``; checkpoints every N steps, at the end
        and on SIGINT (then returns with ``interrupted=True``)."""
        c = self.config
        old_handler = signal.signal(signal.SIGINT, self.request_stop) if install_sigint else None
        log_file = open(self.run_dir / "log.jsonl", "a") if self.run_dir else None
        t0, last, rows = time.perf_counter(), {"loss": math.nan, "psnr": math.nan}, []
        try:
            while self.step < c.iterations and not self._stop:
                while self.state.paused and not self._stop:
                    time.sleep(0.05)
                t = time.perf_counter()
                try:
                    with self.state.lock:
                        last = self.train_step(self.step)
                except torch.OutOfMemoryError:
                    raise ReconError(f"out of memory at step {self.step + 1} with {self.num_primitives} primitives",
                                     hint="lower strategy.cap_max or raise data.downscale") from None
                self.step += 1
                self._check_health(last["psnr"])
                self.state.step, self.state.losses = self.step, last
                self.state.psnr, self.state.num_primitives = last["psnr"], self.num_primitives
                if self.step % c.log_every == 0 or self.step == c.iterations:
                    row = {"step": self.step, **last, "count": self.num_primitives,
                           "its": 1.0 / max(time.perf_counter() - t, 1e-9)}
                    rows.append(row)
                    if log_file:
                        log_file.write(json.dumps(row) + "\n")
                        log_file.flush()
                if progress is not None:
                    progress(self.step, last, self.num_primitives)
                if c.checkpoint_every > 0 and self.step % c.checkpoint_every == 0:
                    self.save()
            if self.health.suspect and not self._stop:
                self._stop_bad(f"training collapsed by step {self.step}: {self.health.describe()}")
            self.save()
        finally:
            if log_file:
                log_file.close()
            if install_sigint:
                signal.signal(signal.SIGINT, old_handler)
        return TrainResult(self.step, self.num_primitives, time.perf_counter() - t0, last["loss"], last["psnr"],
                           interrupted=self._stop, log=rows)
