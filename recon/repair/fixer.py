"""A small per-scene fixer: a diffusers ``UNet2DModel`` that repairs a render in one step.

Input per pixel (:data:`recon.repair.dataset.CONDITION_CHANNELS`): the render's RGB, its alpha,
the nearest training photo warped into the view and the warp's validity, all scaled to [-1, 1].
The UNet sees the (possibly noised) render ``x_t`` concatenated with the condition and the
timestep, and predicts a residual: ``x0 = x_t + unet([x_t, cond], t)``. Its output convolution
starts at zero, so an untrained fixer is exactly the identity.

Repair starts from the render, not from noise (Difix: single step at a fixed ``t = 199``; ArtiFixer
measured ~3.5 dB over generating from noise with the render as a condition, METHODS.md 6.7). An
optional few-step DDIM pass (SDEdit) noises the render to ``strength`` x T and denoises it with a
diffusers ``DDIMScheduler`` whose prediction type is ``"sample"``. Training mixes both inputs:
the clean render at ``t = timestep`` and, for a fraction of the batches, the render noised to a
random ``t`` below ``max_strength`` x T. Loss ``(1 - l) L1 + l (1 - SSIM)``, AdamW, EMA weights.

Files (``save_pretrained`` / ``from_pretrained``, the diffusers layout)::

    FOLDER/unet/                 UNet2DModel (config.json + safetensors)
    FOLDER/scheduler/            DDIMScheduler config
    FOLDER/recon_fixer.json      FixerConfig, the gate's numbers, training summary
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from recon.errors import ConfigError
from recon.repair.dataset import CONDITION_CHANNELS, condition, random_crops
from recon.repair.pairs import RepairPair
from recon.train.losses import photometric_loss

FIXER_FILE = "recon_fixer.json"
SCHEMA_VERSION = 1


@dataclass(frozen=True)
class FixerConfig:
    """Size, inference schedule and training schedule of a fixer."""

    channels: tuple[int, ...] = (16, 32, 64)
    """UNet block widths (one down/up level each, no attention)."""
    layers_per_block: int = 1
    """ResNet layers per UNet block."""
    norm_groups: int = 8
    """GroupNorm groups (must divide every width)."""
    timestep: int = 199
    """Timestep of the single-step repair (of ``num_train_timesteps``)."""
    num_train_timesteps: int = 1000
    """Length of the diffusion schedule."""
    noisy_fraction: float = 0.25
    """Fraction of training samples noised to a random timestep (for the DDIM path)."""
    max_strength: float = 0.5
    """Noised training samples use timesteps below this fraction of the schedule."""
    steps: int = 1000
    """Optimisation steps (at most; see ``max_seconds``)."""
    batch: int = 4
    """Crops per step."""
    crop: int = 48
    """Crop size in pixels."""
    lr: float = 2e-4
    """AdamW learning rate."""
    ssim_lambda: float = 0.2
    """Weight of (1 - SSIM) in the loss."""
    random_background: bool = True
    """Put every training crop on a random background colour (:func:`recon.repair.dataset.on_background`):
    the fixer learns holes (fill them) apart from background (keep it) and repairs renders on any
    background, the evaluation's white included (DTU scan24, 3 views, three seeds: the post-pass on
    the run without repair +0.94 dB where a fixer fitted on black alone gave -0.04; gate 14.67
    against 14.23 dB for seed 0, 13.90 for the renders; BENCHMARKS.md). False = the pairs' own
    background only (fixers saved before this option)."""
    ema_decay: float = 0.999
    """Largest EMA decay (warmed up from 0); 0 = no EMA."""
    blend: float = 1.0
    """Repair = render + blend x (fixer output - render); calibrated after fitting by least squares
    (:func:`calibrate_blend`) when negative: -1 on the gate view's attribute-noise pairs (milder
    than its leave-one-out renders, as the main run's novel views are), -2 on its leave-one-out
    renders before the sub-run's last step (the last one is left to the gate)."""
    max_seconds: float = 0.0
    """Stop training after this many CPU seconds of this process (0 = no limit); the weights so far
    (their EMA) are kept and ``meta["stopped_early"]`` says so."""
    seed: int = 0


@dataclass
class GateResult:
    """The fixer against the identity on held-out leave-one-out views.

    Attributes:
        psnr_identity: PSNR (dB) of the degraded renders themselves against the photos.
        psnr_fixed: PSNR (dB) of the repaired renders.
        enabled: whether repair should be used (the fixer beats the identity).
        reason: one line saying why.
        views: the held-out scene views.
    """

    psnr_identity: float
    psnr_fixed: float
    enabled: bool
    reason: str
    views: list[int] = field(default_factory=list)


def weight_options() -> dict[str, bool]:
    """Keyword arguments of diffusers' ``from_pretrained`` for models and pipelines: local files only,
    and the low-memory loader only where ``accelerate`` is installed (else diffusers warns on every load)."""
    import importlib.util

    return {"local_files_only": True, "low_cpu_mem_usage": importlib.util.find_spec("accelerate") is not None}


def _to_unit(x: Tensor) -> Tensor:
    return x * 2 - 1


def pad_to(x: Tensor, multiple: int) -> tuple[Tensor, tuple[int, int]]:
    """Reflect-pads [B, C, H, W] on the bottom/right to multiples of ``multiple``; returns the original (H, W)."""
    h, w = x.shape[-2:]
    ph, pw = -h % multiple, -w % multiple
    if ph or pw:
        x = F.pad(x, (0, pw, 0, ph), mode="replicate")
    return x, (h, w)


class Fixer:
    """A trained (or fresh) fixer; see the module docstring.

    Args:
        unet: the ``diffusers.UNet2DModel`` (``in_channels`` = 8, ``out_channels`` = 3).
        scheduler: a ``diffusers.DDIMScheduler`` with ``prediction_type="sample"``.
        config: its :class:`FixerConfig`.
        meta: training summary and gate numbers (saved with it).
    """

    def __init__(self, unet: Any, scheduler: Any, config: FixerConfig, meta: dict[str, Any] | None = None):
        self.unet = unet
        self.scheduler = scheduler
        self.config = config
        self.meta = meta or {}

    @classmethod
    def create(cls, config: FixerConfig | None = None, unet: Any = None) -> Fixer:
        """A fresh fixer (the identity: zero output convolution) seeded by ``config.seed``, or
        one around a given ``unet``."""
        from diffusers import DDIMScheduler, UNet2DModel

        c = config or FixerConfig()
        if unet is None:
            if any(w % c.norm_groups for w in c.channels):
                raise ConfigError(f"fixer norm_groups {c.norm_groups} must divide every channel width {c.channels}")
            torch.manual_seed(c.seed)
            levels = len(c.channels)
            unet = UNet2DModel(sample_size=c.crop, in_channels=CONDITION_CHANNELS, out_channels=3,
                               block_out_channels=tuple(c.channels), down_block_types=("DownBlock2D",) * levels,
                               up_block_types=("UpBlock2D",) * levels, layers_per_block=c.layers_per_block,
                               norm_num_groups=c.norm_groups)  # fmt: skip
            torch.nn.init.zeros_(unet.conv_out.weight)
            torch.nn.init.zeros_(unet.conv_out.bias)
        scheduler = DDIMScheduler(num_train_timesteps=c.num_train_timesteps, prediction_type="sample",
                                  clip_sample=False)
        return cls(unet, scheduler, c)

    @property
    def any_background(self) -> bool:
        """Whether it repairs renders on any background (fitted with random ones), or only on the
        background of its pairs (a random-background run's black)."""
        return self.config.random_background

    @property
    def multiple(self) -> int:
        """Image sides must be multiples of this (one halving per UNet level but the last)."""
        return 2 ** (len(self.unet.config.block_out_channels) - 1)

    def predict(self, x_t: Tensor, cond: Tensor, t: Tensor | int) -> Tensor:
        """Clean-image estimate [B, 3, H, W] in [-1, 1] from ``x_t`` [B, 3, H, W] and ``cond`` [B, 5, H, W] in [-1, 1]."""
        return x_t + self.unet(torch.cat([x_t, cond], 1), t).sample

    @torch.no_grad()
    def repair(self, inputs: Tensor, steps: int = 1, strength: float = 0.2,
               generator: torch.Generator | None = None) -> Tensor:
        """Repairs renders.

        Args:
            inputs: [B, 8, H, W] in [0, 1] (:func:`recon.repair.dataset.condition`); any size.
            steps: 1 = single step from the render at ``config.timestep``; more = DDIM steps
                from the render noised to ``strength`` x T.
            strength: starting noise level of the DDIM path (0..1).
            generator: noise source of the DDIM path.

        Returns:
            [B, 3, H, W] repaired images in [0, 1].
        """
        self.unet.eval()
        x, (h, w) = pad_to(_to_unit(inputs.float()), self.multiple)
        x_t, cond = x[:, :3], x[:, 3:]
        if steps <= 1:
            out = self.predict(x_t, cond, self.config.timestep)
        else:
            sched = self.scheduler
            sched.set_timesteps(max(steps, math.ceil(steps / max(strength, 1e-3))))
            timesteps = sched.timesteps[-steps:]
            noise = torch.randn(x_t.shape, generator=generator)
            out = sched.add_noise(x_t, noise, timesteps[:1])
            for t in timesteps:
                out = sched.step(self.predict(out, cond, t), t, out).prev_sample
        out = ((out[..., :h, :w] + 1) / 2).clamp(0, 1)
        blend = float(self.meta.get("blend", 1.0))  # FixerConfig.blend, calibrated or given
        if blend != 1.0:
            out = (inputs[:, :3].float() + blend * (out - inputs[:, :3].float())).clamp(0, 1)
        return out

    # ------------------------------------------------------------------ files
    def save_pretrained(self, folder: str | Path) -> Path:
        """Writes the diffusers folders and ``recon_fixer.json`` (see the module docstring)."""
        folder = Path(folder)
        self.unet.save_pretrained(folder / "unet")
        self.scheduler.save_pretrained(folder / "scheduler")
        info = {"schema_version": SCHEMA_VERSION, "config": asdict(self.config), "meta": self.meta}
        (folder / FIXER_FILE).write_text(json.dumps(info, indent=1))
        return folder

    @classmethod
    def from_pretrained(cls, folder: str | Path) -> Fixer:
        """Reads what :meth:`save_pretrained` wrote (``recon.repair.pretrained.load_repair_model``
        is the checked entry point for user paths)."""
        from diffusers import DDIMScheduler, UNet2DModel

        folder = Path(folder)
        info = json.loads((folder / FIXER_FILE).read_text())
        if info.get("schema_version") != SCHEMA_VERSION:
            raise ConfigError(f"fixer schema_version {info.get('schema_version')} (this recon reads {SCHEMA_VERSION})",
                              path=folder / FIXER_FILE, hint="fit the fixer again (recon repair fit RUN)")
        raw = info["config"]
        try:
            # fixers saved before random_background existed were fitted on their pairs' background alone
            config = FixerConfig(**{"random_background": False, **raw, "channels": tuple(raw["channels"])})
        except TypeError as err:
            raise ConfigError(f"bad fixer config ({err})", path=folder / FIXER_FILE, hint="fit the fixer again") from None
        unet = UNet2DModel.from_pretrained(folder / "unet", **weight_options())
        if unet.config.in_channels != CONDITION_CHANNELS or unet.config.out_channels != 3:
            raise ConfigError(f"the fixer UNet has {unet.config.in_channels} input and {unet.config.out_channels} "
                              f"output channels, recon's fixer needs {CONDITION_CHANNELS} and 3",
                              path=folder / "unet", hint="use a fixer saved by recon (recon repair fit)")
        scheduler = DDIMScheduler.from_pretrained(folder / "scheduler", local_files_only=True)
        return cls(unet, scheduler, config, info.get("meta", {}))


# ---------------------------------------------------------------------------------- training
def training_inputs(fixer: Fixer, x: Tensor, gen: torch.Generator) -> tuple[Tensor, Tensor, Tensor]:
    """Noised inputs of a batch: returns (x_t [B, 3, S, S], cond [B, 5, S, S], t [B]) from crops [B, 8, S, S]."""
    c = fixer.config
    x = _to_unit(x)
    render, cond = x[:, :3], x[:, 3:]
    b = x.shape[0]
    noisy = torch.rand(b, generator=gen) < c.noisy_fraction  # [B]
    t_noisy = torch.randint(1, max(2, int(c.max_strength * c.num_train_timesteps)), (b,), generator=gen)
    t = torch.where(noisy, t_noisy, torch.full((b,), c.timestep))
    noised = fixer.scheduler.add_noise(render, torch.randn(render.shape, generator=gen), t)
    return torch.where(noisy[:, None, None, None], noised, render), cond, t


def fit_fixer(pairs: list[RepairPair], config: FixerConfig | None = None, fixer: Fixer | None = None,
              progress: bool = True, on_step: Callable[[int, int], None] | None = None) -> Fixer:
    """Trains a fixer on random crops of ``pairs`` (see the module docstring).

    Args:
        pairs: training pairs (keep the gate's held-out views out: :func:`split_held_out`).
        config: sizes and schedule (a fresh fixer is built from it unless ``fixer`` is given).
        fixer: continue training this one (its config's schedule is replaced by ``config``'s).
        progress: show a progress bar on an interactive terminal.
        on_step: called with (steps done, steps) after each step (e.g. a live viewer's status).
    """
    from diffusers.training_utils import EMAModel

    from recon.priors._progress import track

    fixer = fixer or Fixer.create(config)
    c = fixer.config = config or fixer.config
    gen = torch.Generator().manual_seed(c.seed)
    unet = fixer.unet.train()
    opt = torch.optim.AdamW(unet.parameters(), lr=c.lr)
    ema = EMAModel(unet.parameters(), decay=c.ema_decay, use_ema_warmup=True) if c.ema_decay > 0 else None
    t0, cpu0, losses, step, stopped = time.perf_counter(), time.process_time(), [], 0, False
    for step in track(range(c.steps), "fitting the repair model", progress):
        if c.max_seconds > 0 and time.process_time() - cpu0 > c.max_seconds:
            stopped = True
            break
        x, y = random_crops(pairs, c.batch, c.crop, gen, c.random_background)
        x_t, cond, t = training_inputs(fixer, x, gen)
        out = (fixer.predict(x_t, cond, t) + 1) / 2  # [B, 3, S, S] in [0, 1]
        loss, _ = photometric_loss(out.permute(0, 2, 3, 1), y.permute(0, 2, 3, 1), c.ssim_lambda)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if ema is not None:
            ema.step(unet.parameters())
        losses.append(float(loss.detach()))
        if on_step is not None:
            on_step(step + 1, c.steps)
    else:
        step = c.steps
    if ema is not None:
        ema.copy_to(unet.parameters())
    unet.eval()
    tail = losses[-max(1, len(losses) // 10):]
    fixer.meta.update({"fit_steps": step, "fit_seconds": time.perf_counter() - t0, "stopped_early": stopped,
                       "fit_cpu_s": time.process_time() - cpu0, "num_pairs": len(pairs),
                       "first_loss": losses[0] if losses else math.nan, "last_loss": sum(tail) / max(len(tail), 1)})
    return fixer


# ---------------------------------------------------------------------------------- gate
def split_held_out(pairs: list[RepairPair], views: int = 1) -> tuple[list[RepairPair], list[RepairPair]]:
    """(fit pairs, gate pairs): the gate keeps the leave-one-out pairs of the last ``views``
    held-out views; every pair of those views (noise pairs included) is left out of fitting."""
    held = sorted({p.view for p in pairs if p.kind == "loo"})[-views:] if views > 0 else []
    fit = [p for p in pairs if p.view not in held]
    gate = [p for p in pairs if p.view in held and p.kind == "loo"]
    return fit, gate


def repair_pairs(model: Any, pairs: list[RepairPair], **kwargs: Any) -> list[Tensor]:
    """[H, W, 3] render of each pair repaired by ``model`` (any repair model; keyword arguments go to ``repair``)."""
    return [model.repair(condition(p)[None], **kwargs)[0].permute(1, 2, 0) for p in pairs]


def _pooled_psnr(images: list[Tensor], targets: list[Tensor]) -> float:
    se = sum(float((a - b).square().sum()) for a, b in zip(images, targets, strict=True))
    n = sum(a.numel() for a in images)
    return math.inf if se == 0 else -10.0 * math.log10(se / n)


def evaluate_gate(model: Any, pairs: list[RepairPair], margin_db: float = 0.0, **repair_kwargs: Any) -> GateResult:
    """Compares a repair model (a fixer or a pretrained one) with the identity on held-out pairs
    (PSNR pooled over all their pixels).

    Repair is enabled only when the fixer beats the identity by more than ``margin_db``.
    """
    if not pairs:
        return GateResult(math.nan, math.nan, False, "no held-out leave-one-out view to check the fixer on; "
                          "training goes on without repair")
    views = sorted({p.view for p in pairs})
    targets = [p.target for p in pairs]
    identity = _pooled_psnr([p.render for p in pairs], targets)
    fixed = _pooled_psnr(repair_pairs(model, pairs, **repair_kwargs), targets)
    where = f"held-out view{'s' if len(views) > 1 else ''} {', '.join(map(str, views))}"
    if fixed > identity + margin_db:
        reason = f"repair on: the repair model gives {fixed:.2f} dB against {identity:.2f} dB for the renders on {where}"
        return GateResult(identity, fixed, True, reason, views)
    reason = (f"repair off: the repair model gives {fixed:.2f} dB, no better than the renders themselves "
              f"({identity:.2f} dB) on {where}; training goes on without it")
    return GateResult(identity, fixed, False, reason, views)


def calibrate_blend(model: Any, pairs: list[RepairPair]) -> float:
    """The ``s`` in [0, 1] minimising the squared error of ``render + s (repaired - render)`` to the
    targets over every pixel of ``pairs`` (closed form: <d, e> / <d, d> with d = repaired - render,
    e = target - render); 1 when the model changes nothing."""
    num = den = 0.0
    for p, fixed in zip(pairs, repair_pairs(model, pairs), strict=True):
        d, e = fixed - p.render, p.target - p.render
        num, den = num + float((d * e).sum()), den + float((d * d).sum())
    return 1.0 if den <= 0 else min(1.0, max(0.0, num / den))


def fit_and_gate(pairs: list[RepairPair], config: FixerConfig | None = None, held_out_views: int = 1,
                 progress: bool = True, on_step: Callable[[int, int], None] | None = None) -> tuple[Fixer, GateResult]:
    """Fits on all pairs but the held-out views', sets its blend (``config.blend``, calibrated on the
    held-out views' noise pairs when -1), gates it on their leave-one-out pairs; the blend and the
    gate are stored in ``fixer.meta``."""
    fit, gate_pairs = split_held_out(pairs, held_out_views)
    if not fit:
        raise ConfigError("every repair pair belongs to the gate's held-out view",
                          hint="generate pairs with more held-out views (PairConfig.held_out >= 2)")
    fixer = fit_fixer(fit, config, progress=progress, on_step=on_step)
    if fixer.config.blend >= 0:
        fixer.meta["blend"] = fixer.config.blend
    else:
        held, last = {p.view for p in gate_pairs}, max((p.step for p in gate_pairs), default=0)
        if fixer.config.blend <= -2:
            calibration = [p for p in gate_pairs if p.step < last] or gate_pairs
            gate_pairs = [p for p in gate_pairs if p.step == last]  # not judged on what chose the blend
        else:
            calibration = [p for p in pairs if p.view in held and p.kind == "noise"] or gate_pairs
        fixer.meta["blend"] = 1.0  # the fixer's own output while calibrating
        fixer.meta["blend"] = calibrate_blend(fixer, calibration) if calibration else 1.0
    gate = evaluate_gate(fixer, gate_pairs)
    fixer.meta["gate"] = asdict(gate)
    return fixer, gate

