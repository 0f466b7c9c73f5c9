"""Monocular depth through transformers, with tiny random-weight models saved and reloaded
through recon's loading code (no download: HF_HUB_OFFLINE=1 in conftest)."""

from __future__ import annotations

import pytest
import torch

from recon.errors import ConfigError

transformers = pytest.importorskip("transformers")


def _tiny_dpt(path):
    from transformers import DPTConfig, DPTForDepthEstimation, DPTImageProcessor

    cfg = DPTConfig(hidden_size=32, num_hidden_layers=4, num_attention_heads=2, intermediate_size=37,
                    image_size=32, patch_size=8, backbone_out_indices=[0, 1, 2, 3],
                    neck_hidden_sizes=[8, 8, 8, 8], fusion_hidden_size=16, head_hidden_size=8,
                    reassemble_factors=[4, 2, 1, 0.5])
    torch.manual_seed(0)
    model = DPTForDepthEstimation(cfg).eval()
    DPTImageProcessor(size={"height": 32, "width": 32}, keep_aspect_ratio=False).save_pretrained(path)
    model.save_pretrained(path)
    return model


def test_tiny_dpt_round_trip_matches_direct_forward(tmp_path):
    from transformers import DPTImageProcessor

    from recon.priors.mono_depth import MonoDepth

    model = _tiny_dpt(tmp_path)
    image = torch.rand(24, 40, 3)
    depth = MonoDepth(tmp_path, device="cpu").predict(image)
    assert depth.shape == (24, 40) and depth.dtype == torch.float32 and torch.isfinite(depth).all()
    # Oracle: the same weights run directly through transformers, then resized by hand.
    proc = DPTImageProcessor.from_pretrained(tmp_path)
    inputs = proc(images=(image * 255).round().to(torch.uint8).numpy(), return_tensors="pt")
    with torch.no_grad():
        ref = model(**inputs).predicted_depth[None]
    ref = torch.nn.functional.interpolate(ref, size=(24, 40), mode="bilinear", align_corners=False)[0, 0]
    torch.testing.assert_close(depth, ref, rtol=1e-4, atol=1e-5)


def test_missing_model_is_a_clear_error(tmp_path):
    from recon.priors.mono_depth import MonoDepth

    with pytest.raises(ConfigError, match="cannot load the depth model"):
        MonoDepth(tmp_path / "nowhere")
