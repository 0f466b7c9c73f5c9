"""The wheel ships the presets and the kernel sources, and an installed wheel finds them."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PROJECT_FILES = ("pyproject.toml", "setup.py", "README.md")
PROJECT_DIRS = ("recon", "viewer", "configs", "cuda")
BUILD_JUNK = shutil.ignore_patterns("__pycache__", "*.pyc", "*.so", "*.egg-info", "build", "dist")


def _source_files(folder: str) -> dict[str, bytes]:
    """Every file under the top-level ``folder`` of the source tree (the oracle), by relative path."""
    root = REPO / folder
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and "__pycache__" not in p.parts and p.suffix not in (".pyc", ".so")
    }


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """A wheel built from a clean copy of the project (no build folders in the working tree)."""
    if importlib.util.find_spec("setuptools") is None:
        pytest.skip("setuptools is not installed")
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"
    src.mkdir()
    for name in PROJECT_FILES:
        shutil.copy2(REPO / name, src / name)
    for name in PROJECT_DIRS:
        shutil.copytree(REPO / name, src / name, ignore=BUILD_JUNK)
    cmd = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp), str(src)]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (path,) = tmp.glob("recon-*.whl")
    return path


@pytest.mark.parametrize(("folder", "packaged"), [("configs", "recon/_configs"), ("cuda", "recon/_cuda")])
def test_wheel_holds_every_preset_and_kernel_source(wheel, folder, packaged):
    expected = _source_files(folder)
    assert expected, f"{folder}/ is empty in the source tree"
    with zipfile.ZipFile(wheel) as zf:
        shipped = {n[len(packaged) + 1 :]: zf.read(n) for n in zf.namelist() if n.startswith(packaged + "/")}
    assert sorted(shipped) == sorted(expected)
    assert shipped == expected


def test_wheel_holds_the_same_python_modules_as_the_tree(wheel):
    expected = {p.relative_to(REPO).as_posix() for d in ("recon", "viewer") for p in (REPO / d).rglob("*.py")
                if "__pycache__" not in p.parts}  # fmt: skip
    with zipfile.ZipFile(wheel) as zf:
        shipped = {n for n in zf.namelist() if n.endswith(".py")}
    assert shipped == expected


def test_installed_wheel_finds_presets_and_sources_inside_itself(wheel, tmp_path):
    target = tmp_path / "site"
    proc = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target),
                           str(wheel)], capture_output=True, text=True, check=False)  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    code = (
        "from recon.config import load_preset, PRESET_DIR; from recon.resources import shipped_dir; "
        "print(PRESET_DIR); print(shipped_dir('cuda')); print(load_preset('demo').preset)"
    )
    env = {**os.environ, "PYTHONPATH": str(target)}
    run = tmp_path / "empty"
    run.mkdir()
    proc = subprocess.run([sys.executable, "-c", code], cwd=run, env=env, capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    presets, cuda, name = proc.stdout.split()
    assert Path(presets) == target / "recon" / "_configs" / "train"
    assert Path(cuda) == target / "recon" / "_cuda"
    assert name == "demo"


def test_source_tree_resolves_the_top_level_folders():
    from recon.config import PRESET_DIR
    from recon.ops.kernels import CUDA_DIR

    assert PRESET_DIR == REPO / "configs" / "train" and CUDA_DIR == REPO / "cuda"
