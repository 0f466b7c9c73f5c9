"""Building the compiled extension: CPU build and loading, CUDA sources through nvcc, GPU runs."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import torch

from recon.ops import _extension, kernels
from tests.ops.test_kernels_gaussians import cameras, gaussians, render

CUDA_SRC = Path(kernels.CUDA_DIR) / "src"


def test_cpu_extension_available_and_cached():
    ok, why = kernels.available("cpu")
    if not ok and "compiler" in why:
        pytest.skip(why)
    assert ok, why
    ext = kernels.load_extension()
    assert kernels.load_extension() is ext  # loaded once per process
    assert ext.with_cuda == (torch.cuda.is_available() and _extension._want_cuda())
    build_dir = _extension._build_dir(ext.with_cuda)
    assert any(build_dir.glob("*.so"))  # cached build: later processes only load it


def test_no_compiler_gives_a_clear_reason(monkeypatch):
    monkeypatch.setattr(_extension.shutil, "which", lambda name: None)
    monkeypatch.setenv("CXX", "no-such-compiler")
    ok, why = kernels.available("cpu")
    assert not ok and "no C++ compiler" in why and "reference" in why


def test_cuda_sources_have_no_torch_headers():
    sources = list(CUDA_SRC.glob("*.cu")) + list(CUDA_SRC.glob("cpu_*.cpp"))
    assert len(sources) == 7  # 3 .cu, 4 cpu_*.cpp
    for src in sources:
        includes = [l for l in src.read_text().splitlines() if l.startswith("#include")]
        assert includes and not any("torch" in l or "ATen" in l for l in includes), src.name


@pytest.mark.skipif(shutil.which("nvcc") is None, reason="nvcc not found")
def test_cuda_sources_compile_with_nvcc(tmp_path):
    include = Path(kernels.CUDA_DIR) / "include"
    procs = [
        subprocess.Popen(
            ["nvcc", "-c", "-std=c++17", "-arch=sm_90", f"-I{include}", str(src), "-o",
             str(tmp_path / f"{src.stem}.o")],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
        for src in sorted(CUDA_SRC.glob("*.cu"))
    ]
    assert len(procs) == 3
    for p in procs:
        out, _ = p.communicate(timeout=300)
        assert p.returncode == 0, out
    assert len(list(tmp_path.glob("*.o"))) == 3


@pytest.mark.cuda
def test_cuda_kernels_match_cpu_kernels():
    V, N, W, H, C = 2, 500, 64, 48, 3
    viewmats, Ks = cameras(V, W, H)
    g = gaussians(N)
    feats = torch.rand(V, N, C)
    outs = {}
    for device in ("cpu", "cuda"):
        gg = {k: v.to(device).requires_grad_() for k, v in g.items()}
        (colors, alphas, _), _, _ = render(kernels, gg, feats.to(device), viewmats.to(device), Ks.to(device), W, H)
        (colors.sum() + alphas.sum()).backward()
        outs[device] = [colors, alphas] + [gg[k].grad for k in ("means", "quats", "scales", "opacities")]
    for a, b in zip(outs["cpu"], outs["cuda"]):
        torch.testing.assert_close(b.cpu(), a, atol=1e-4, rtol=1e-3)
