"""Local diffusers folders through the real loading path, offline: tiny random models built from configs."""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("diffusers")
pytest.importorskip("transformers")

from recon.errors import ConfigError
from recon.repair.fixer import Fixer, FixerConfig
from recon.repair.pretrained import Img2ImgRepair, OneStepRepair, load_repair_model
from tests.repair.tiny_sd import tiny_sd

TINY = FixerConfig(channels=(16, 32), norm_groups=8, crop=32)


@pytest.fixture(scope="module")
def sd_folder(tmp_path_factory):
    return tiny_sd(tmp_path_factory.mktemp("models") / "tiny-sd")


def _inputs(h: int = 20, w: int = 28) -> torch.Tensor:
    return torch.rand(1, 8, h, w, generator=torch.Generator().manual_seed(1))


def test_img2img_pipeline_loads_offline_and_repairs_any_size(sd_folder):
    from diffusers import StableDiffusionImg2ImgPipeline

    model = load_repair_model(sd_folder, steps=2, strength=0.5)
    assert isinstance(model, Img2ImgRepair)
    x = _inputs(19, 27)
    out = model.repair(x, generator=torch.Generator().manual_seed(0))
    assert model.multiple == 2 and out.shape == (1, 3, 19, 27) and 0 <= float(out.min()) and float(out.max()) <= 1
    # the same pipeline called by hand on the padded render gives the same image
    pipe = StableDiffusionImg2ImgPipeline.from_pretrained(sd_folder, local_files_only=True)
    padded = torch.nn.functional.pad(x[:, :3], (0, 1, 0, 1), mode="replicate")  # 19 x 27 -> 20 x 28 (VAE factor 2)
    ref = pipe(prompt=[""], image=padded, strength=0.5, num_inference_steps=2, guidance_scale=0.0, output_type="pt",
               generator=torch.Generator().manual_seed(0)).images[..., :19, :27]
    assert torch.allclose(out, ref.clamp(0, 1), atol=1e-5)


@pytest.mark.parametrize("prediction_type", ["epsilon", "v_prediction"])
def test_one_step_repair_matches_the_schedulers_clean_estimate(tmp_path, prediction_type):
    from diffusers import DDPMScheduler

    folder = tiny_sd(tmp_path / "sd", prediction_type=prediction_type)
    model = load_repair_model(folder, mode="onestep")
    assert isinstance(model, OneStepRepair) and model.timestep == 199
    z, out = torch.randn(2, 4, 8, 8), torch.randn(2, 4, 8, 8)
    ddpm = DDPMScheduler.from_pretrained(folder / "scheduler", local_files_only=True, clip_sample=False)
    ref = ddpm.step(out, 199, z).pred_original_sample
    assert torch.allclose(model.denoise(z, out), ref, atol=1e-5)
    repaired = model.repair(_inputs(13, 22))
    assert repaired.shape == (1, 3, 13, 22) and torch.isfinite(repaired).all()


def test_recon_fixer_and_bare_unet_load_through_the_same_path(tmp_path):
    fixer = Fixer.create(TINY)
    torch.nn.init.normal_(fixer.unet.conv_out.weight, std=0.1)  # not the identity
    fixer.save_pretrained(tmp_path / "fixer")
    back = load_repair_model(tmp_path / "fixer")
    assert isinstance(back, Fixer)
    x = _inputs()
    assert torch.equal(back.repair(x), fixer.repair(x)) and not torch.allclose(back.repair(x), x[:, :3])
    bare = load_repair_model(tmp_path / "fixer" / "unet")
    assert isinstance(bare, Fixer) and bare.config.channels == TINY.channels
    assert torch.equal(bare.repair(x), fixer.repair(x))


def _one_line_error(path, match: str, **kw) -> str:
    with pytest.raises(ConfigError, match=match) as info:
        load_repair_model(path, **kw)
    text = str(info.value)
    assert "\n" not in text and "Traceback" not in text
    return text


def test_bad_model_paths_are_one_line_errors(tmp_path, sd_folder):
    from diffusers import UNet2DModel

    assert str(tmp_path / "nope") in _one_line_error(tmp_path / "nope", "not found")
    (tmp_path / "file.bin").write_bytes(b"x")
    _one_line_error(tmp_path / "file.bin", "a folder, not a file")
    (tmp_path / "empty").mkdir()
    _one_line_error(tmp_path / "empty", "not a diffusers folder")
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "model_index.json").write_text("{not json")
    _one_line_error(tmp_path / "broken", "cannot load")
    _one_line_error(sd_folder, "unknown repair mode", mode="txt2img")
    UNet2DModel(in_channels=4, out_channels=3, block_out_channels=(8, 16), norm_num_groups=4,
                down_block_types=("DownBlock2D",) * 2, up_block_types=("UpBlock2D",) * 2).save_pretrained(tmp_path / "u4")
    _one_line_error(tmp_path / "u4", "4 input and 3 output channels")


def test_pipeline_whose_unet_does_not_take_the_vae_latents_is_refused(tmp_path):
    folder = tiny_sd(tmp_path / "inpaint-like", unet_in=9)
    _one_line_error(folder, "9 input channels but its VAE makes 4-channel latents")


def test_pipeline_options_go_from_the_train_cli_to_the_img2img_call(tmp_path, sd_folder):
    from diffusers import StableDiffusionImg2ImgPipeline

    from recon.repair.pretrained import pipeline_options
    from recon.train.cli import TrainArgs, _config_from_args

    args = TrainArgs(out=str(tmp_path / "run"), data="synthetic", repair=str(sd_folder), repair_steps=3,
                     repair_strength=0.4, repair_guidance=1.5, repair_prompt="a cat")  # fmt: skip
    config = _config_from_args(args).repair
    assert (config.pipe_steps, config.pipe_strength, config.pipe_guidance, config.pipe_prompt) == (3, 0.4, 1.5, "a cat")
    model = load_repair_model(sd_folder, **pipeline_options(config))
    x = _inputs(16, 16)
    out = model.repair(x, generator=torch.Generator().manual_seed(0))
    pipe = StableDiffusionImg2ImgPipeline.from_pretrained(sd_folder, local_files_only=True)
    ref = pipe(prompt=["a cat"], image=x[:, :3], strength=0.4, num_inference_steps=3, guidance_scale=1.5,
               output_type="pt", generator=torch.Generator().manual_seed(0)).images  # fmt: skip
    assert torch.allclose(out, ref.clamp(0, 1), atol=1e-5)
    default = load_repair_model(sd_folder).repair(x, generator=torch.Generator().manual_seed(0))
    assert not torch.allclose(out, default, atol=1e-3)  # the options changed the call
