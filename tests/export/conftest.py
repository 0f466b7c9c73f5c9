"""Export test fixtures: tiny trained runs (tests/repair/tiny_run.py) and random Gaussians."""

from __future__ import annotations

import pytest
import torch

from recon.primitives.sh import num_sh_bases
from tests.repair.tiny_run import train_tiny_run


@pytest.fixture(scope="session")
def gaussian_run(tmp_path_factory):
    """A 20-step Gaussian run on the synthetic scene (48 x 40 pixels)."""
    return train_tiny_run(tmp_path_factory.mktemp("gaussian_run"))


@pytest.fixture(scope="session")
def triangle_run(tmp_path_factory):
    """A 20-step triangle run on the synthetic scene (48 x 40 pixels)."""
    return train_tiny_run(tmp_path_factory.mktemp("triangle_run"), primitive="triangle")


def random_gaussians(n: int = 40, sh_degree: int = 2, seed: int = 0) -> dict[str, torch.Tensor]:
    """Raw Gaussian parameters with every field distinct and non-trivial (unnormalised quaternions)."""
    g = torch.Generator().manual_seed(seed)
    k = num_sh_bases(sh_degree)
    return {
        "means": torch.randn(n, 3, generator=g),
        "quats": torch.randn(n, 4, generator=g) * 2.0,
        "scales": torch.randn(n, 3, generator=g) - 2.0,
        "opacities": torch.randn(n, generator=g) * 2.0,
        "sh0": torch.randn(n, 1, 3, generator=g),
        "shN": torch.randn(n, k - 1, 3, generator=g) * 0.3,
    }
