"""Repair models from a local diffusers folder (``--repair PATH``), checked and wrapped.

:func:`load_repair_model` recognises three layouts and returns an object with
``repair(inputs [B, 8, H, W]) -> [B, 3, H, W]`` (:class:`recon.repair.source.RepairModel`):

* a fixer saved by recon (``recon_fixer.json`` + ``unet/`` + ``scheduler/``), e.g. fitted on
  other scenes: :class:`recon.repair.fixer.Fixer`;
* a bare ``UNet2DModel`` folder (``config.json``) with recon's fixer channels (8 in, 3 out);
* a diffusers pipeline folder (``model_index.json``) of a latent text-to-image model such as
  sd-turbo, used either as an img2img pipeline (:class:`Img2ImgRepair`: few steps, low
  strength, no guidance) or as a one-step fixer (:class:`OneStepRepair`: the render's latent
  denoised once at a fixed timestep, as Difix does; our own code, no weights or code from
  non-commercial repositories). These see the render only (not the warped neighbour).

Nothing is downloaded: folders are read with ``local_files_only=True``; hub ids are refused.
Every failure is a one-line :class:`~recon.errors.ConfigError` naming the path.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from recon.config import RepairConfig
from recon.errors import ConfigError
from recon.repair.dataset import CONDITION_CHANNELS
from recon.repair.fixer import FIXER_FILE, Fixer, FixerConfig, pad_to, weight_options

MODES = ("auto", "img2img", "onestep")
HINT = "--repair PATH takes a local diffusers folder: a pipeline (model_index.json) or a fixer from `recon repair fit`"


class Img2ImgRepair:
    """A diffusers img2img pipeline (SDEdit from the render) as a repair model.

    Args:
        pipe: e.g. ``StableDiffusionImg2ImgPipeline``.
        steps: ``num_inference_steps`` (sd-turbo: 2, with strength 0.5 = one denoising step).
        strength: how far the render is noised before denoising (0..1).
        guidance: classifier-free guidance scale (0 = off, as sd-turbo wants).
        prompt: text prompt.
    """

    any_background = True
    """Natural-image models: they see renders on the background a viewer or evaluation uses."""

    def __init__(self, pipe: Any, steps: int = 2, strength: float = 0.5, guidance: float = 0.0, prompt: str = ""):
        self.pipe, self.steps, self.strength, self.guidance, self.prompt = pipe, steps, strength, guidance, prompt
        pipe.set_progress_bar_config(disable=True)

    @property
    def multiple(self) -> int:
        return self.pipe.vae_scale_factor

    @torch.no_grad()
    def repair(self, inputs: Tensor, generator: torch.Generator | None = None, **_: Any) -> Tensor:
        """[B, 8, H, W] in [0, 1] (only the render's RGB is used) -> [B, 3, H, W] in [0, 1]."""
        x, (h, w) = pad_to(inputs[:, :3].float(), self.multiple)
        out = self.pipe(prompt=[self.prompt] * x.shape[0], image=x, strength=self.strength,
                        num_inference_steps=self.steps, guidance_scale=self.guidance, output_type="pt",
                        generator=generator).images  # fmt: skip
        return out[..., :h, :w].float().clamp(0, 1)


class OneStepRepair:
    """One denoising step of a latent diffusion UNet from the render's latent at a fixed timestep.

    ``x0 = (z - sqrt(1 - a_t) eps) / sqrt(a_t)`` (epsilon prediction), ``sqrt(a_t) z - sqrt(1 - a_t) v``
    (v prediction) or the output itself (sample prediction), decoded by the VAE.

    Args:
        vae: ``AutoencoderKL``.
        unet: ``UNet2DConditionModel`` with ``in_channels`` = the VAE's latent channels.
        alphas_cumprod: [T] the scheduler's cumulative alphas.
        prediction_type: ``"epsilon"``, ``"v_prediction"`` or ``"sample"``.
        prompt_embeds: [1, L, D] text embedding of the prompt.
        timestep: the fixed timestep (Difix: 199).
    """

    any_background = True
    """Natural-image models: they see renders on the background a viewer or evaluation uses."""

    def __init__(self, vae: Any, unet: Any, alphas_cumprod: Tensor, prediction_type: str, prompt_embeds: Tensor,
                 timestep: int = 199):
        if prediction_type not in ("epsilon", "v_prediction", "sample"):
            raise ConfigError(f"unsupported scheduler prediction_type {prediction_type!r} for one-step repair")
        self.vae, self.unet, self.alphas_cumprod = vae, unet, alphas_cumprod
        self.prediction_type, self.prompt_embeds, self.timestep = prediction_type, prompt_embeds, timestep

    @property
    def multiple(self) -> int:
        return 2 ** (len(self.vae.config.block_out_channels) - 1)

    def denoise(self, latents: Tensor, model_output: Tensor) -> Tensor:
        """The clean latent from ``latents`` at ``timestep`` and the UNet's output."""
        a = self.alphas_cumprod[self.timestep].to(latents.dtype)
        if self.prediction_type == "epsilon":
            return (latents - (1 - a).sqrt() * model_output) / a.sqrt()
        if self.prediction_type == "v_prediction":
            return a.sqrt() * latents - (1 - a).sqrt() * model_output
        return model_output

    @torch.no_grad()
    def repair(self, inputs: Tensor, **_: Any) -> Tensor:
        """[B, 8, H, W] in [0, 1] (only the render's RGB is used) -> [B, 3, H, W] in [0, 1]."""
        x, (h, w) = pad_to(inputs[:, :3].float() * 2 - 1, self.multiple)
        scale = self.vae.config.scaling_factor
        latents = self.vae.encode(x).latent_dist.mode() * scale
        emb = self.prompt_embeds.expand(x.shape[0], -1, -1)
        out = self.unet(latents, self.timestep, encoder_hidden_states=emb).sample
        image = self.vae.decode(self.denoise(latents, out) / scale).sample
        return ((image[..., :h, :w] + 1) / 2).clamp(0, 1)


def pipeline_options(config: RepairConfig) -> dict[str, Any]:
    """The img2img options of ``config`` (``pipe_*``) as :func:`load_repair_model` keywords."""
    return {"steps": config.pipe_steps, "strength": config.pipe_strength, "guidance": config.pipe_guidance,
            "prompt": config.pipe_prompt}  # fmt: skip


def check_pipeline_options(steps: int = 2, strength: float = 0.5, guidance: float = 0.0, **_: Any) -> None:
    """Rejects img2img options the pipeline would only refuse deep inside its call (or run as a no-op).

    Raises:
        ConfigError: ``steps`` < 1, ``strength`` outside (0, 1] or ``guidance`` < 0.
    """
    for name, value, ok, want in (("steps", steps, steps >= 1, "an integer >= 1"),
                                  ("strength", strength, 0 < strength <= 1, "in (0, 1]"),
                                  ("guidance", guidance, guidance >= 0, ">= 0 (0 = off)")):  # fmt: skip
        if not ok:
            raise ConfigError(
                f"repair pipeline option {name} {value:g} must be {want}",
                hint=f"pass --repair-{name} (recon train / render) or --pipe-{name} (recon repair apply)",
            )


def _pipeline(path: Path, mode: str, **options: Any) -> Img2ImgRepair | OneStepRepair:
    from diffusers import AutoPipelineForImage2Image

    if mode != "onestep":
        check_pipeline_options(**options)

    try:
        pipe = AutoPipelineForImage2Image.from_pretrained(path, **weight_options())
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ConfigError(f"cannot load the diffusers pipeline ({first})", path=path, hint=HINT) from None
    vae, unet = getattr(pipe, "vae", None), getattr(pipe, "unet", None)
    if vae is None or unet is None:
        raise ConfigError(f"{type(pipe).__name__} has no VAE and UNet; repair needs a latent diffusion model",
                          path=path, hint="use an SD-style model such as sd-turbo")
    latent = vae.config.latent_channels
    if unet.config.in_channels != latent:
        raise ConfigError(f"the pipeline's UNet takes {unet.config.in_channels} input channels but its VAE makes "
                          f"{latent}-channel latents (an inpainting or depth model?)", path=path,
                          hint="use a plain image-to-image model such as sd-turbo")
    if mode == "onestep":
        embeds = pipe.encode_prompt(options.get("prompt", ""), torch.device("cpu"), 1, False)[0]
        return OneStepRepair(vae, unet, pipe.scheduler.alphas_cumprod, pipe.scheduler.config.prediction_type,
                             embeds, options.get("timestep", 199))
    return Img2ImgRepair(pipe, **{k: v for k, v in options.items() if k in ("steps", "strength", "guidance", "prompt")})


def _bare_unet(path: Path) -> Fixer:
    from diffusers import UNet2DModel

    unet = UNet2DModel.from_pretrained(path, **weight_options())
    if unet.config.in_channels != CONDITION_CHANNELS or unet.config.out_channels != 3:
        raise ConfigError(f"the UNet has {unet.config.in_channels} input and {unet.config.out_channels} output "
                          f"channels; a recon fixer needs {CONDITION_CHANNELS} (render, alpha, warped view, "
                          f"validity) and 3", path=path, hint=HINT)
    config = FixerConfig(channels=tuple(unet.config.block_out_channels), norm_groups=unet.config.norm_num_groups)
    return Fixer.create(config, unet=unet)


def load_repair_model(path: str | Path, mode: str = "auto", **options: Any) -> Any:
    """Loads a repair model from a local folder (see the module docstring); never downloads.

    Args:
        path: the folder.
        mode: for pipeline folders, ``"img2img"`` (default for ``"auto"``) or ``"onestep"``.
        **options: ``steps``, ``strength``, ``guidance``, ``prompt`` (img2img); ``prompt``,
            ``timestep`` (onestep).

    Returns:
        A :class:`~recon.repair.fixer.Fixer`, :class:`Img2ImgRepair` or :class:`OneStepRepair`.

    Raises:
        ConfigError: a missing path, not a diffusers folder, channels that do not match, an
            unreadable model, an unknown mode, or diffusers not installed.
    """
    if mode not in MODES:
        raise ConfigError(f"unknown repair mode {mode!r}", hint=f"use one of {', '.join(MODES)}")
    path = Path(path)
    if not path.exists():
        raise ConfigError("repair model folder not found (hub ids are not downloaded)", path=path, hint=HINT)
    if not path.is_dir():
        raise ConfigError("a repair model is a folder, not a file", path=path, hint=HINT)
    try:
        import diffusers  # noqa: F401
    except ImportError:
        raise ConfigError("diffusion repair needs diffusers", hint="pip install 'recon[diffusion]'") from None
    try:
        if (path / FIXER_FILE).is_file():
            return Fixer.from_pretrained(path)
        if (path / "model_index.json").is_file():
            return _pipeline(path, "onestep" if mode == "onestep" else "img2img", **options)
        config = path / "config.json"
        if config.is_file() and json.loads(config.read_text()).get("_class_name") == "UNet2DModel":
            return _bare_unet(path)
    except ConfigError:
        raise
    except (OSError, ValueError, KeyError, TypeError, RuntimeError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ConfigError(f"cannot load the repair model ({first})", path=path, hint=HINT) from None
    raise ConfigError(f"not a diffusers folder (no model_index.json, {FIXER_FILE} or UNet2DModel config.json)",
                      path=path, hint=HINT)
