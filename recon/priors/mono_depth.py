"""Monocular depth through ``transformers`` depth-estimation models (Depth Anything, DPT).

Weights are never downloaded by recon: the user names a local folder (``save_pretrained``
layout) or a hub id already in their cache. The models predict affine-invariant inverse depth
(relative disparity); align it with :func:`recon.priors.align.align_inverse_depth`.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

from recon.errors import ConfigError


class MonoDepth:
    """A depth-estimation model and its image processor, loaded once.

    Args:
        model: local folder or hub id of a transformers depth-estimation model.
        device: torch device (default: CUDA when available, else CPU).
    """

    def __init__(self, model: str | Path, device: str | torch.device | None = None):
        try:
            from transformers import AutoImageProcessor, AutoModelForDepthEstimation
        except ImportError as err:  # pragma: no cover - transformers is in the priors extra
            raise ConfigError("monocular depth needs transformers", hint="pip install 'recon[priors]'") from err
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        src = str(model)
        try:
            self.processor = AutoImageProcessor.from_pretrained(src)
            self.model = AutoModelForDepthEstimation.from_pretrained(src).to(self.device).eval()
        except (OSError, ValueError) as err:
            raise ConfigError(
                f"cannot load the depth model {src!r}: {str(err).splitlines()[0]}",
                hint="give a local folder with config.json, preprocessor_config.json and weights, or a "
                "hub id already in your Hugging Face cache (recon never downloads weights)",
            ) from err

    @torch.no_grad()
    def predict(self, image: Tensor) -> Tensor:
        """Relative inverse depth of one image.

        Args:
            image: [H, W, 3] float image in [0, 1].

        Returns:
            [H, W] float32 affine-invariant inverse depth (larger = nearer), at the image size.
        """
        h, w = image.shape[:2]
        arr = (image.clamp(0, 1) * 255).round().to(torch.uint8).cpu().numpy()
        inputs = self.processor(images=arr, return_tensors="pt").to(self.device)
        pred = self.model(**inputs).predicted_depth  # [1, h', w']
        pred = pred.reshape(1, 1, *pred.shape[-2:]).float()
        return F.interpolate(pred, size=(h, w), mode="bilinear", align_corners=False)[0, 0].cpu()
