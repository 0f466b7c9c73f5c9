"""Build and load of the compiled extension (``cpu``: C++/OpenMP, ``cuda``: CUDA) of the engine.

The extension is built from ``cuda/`` (shipped in the wheel, see :mod:`recon.resources`) on first
use with ``torch.utils.cpp_extension.load`` and ninja into a cache directory (``RECON_EXT_DIR``,
default ``~/.cache/recon/ext/<hash>``) and loaded from there afterwards. The CUDA kernels are
compiled in only when torch sees a GPU and ``nvcc`` is found. Loading it registers the ops
``torch.ops.recon.*``; their fake implementations and autograd formulas are registered by
:mod:`recon.ops.kernels`. Only these two modules touch the extension.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import torch
from torch import Tensor

from recon.errors import ReconError
from recon.ops import threads
from recon.resources import shipped_dir

CUDA_DIR = shipped_dir("cuda")

_CPP_SOURCES = ("bindings.cpp", "cpu_project.cpp", "cpu_isect.cpp", "cpu_raster.cpp", "cpu_threads.cpp")
_CU_SOURCES = ("cuda_project.cu", "cuda_isect.cu", "cuda_raster.cu")
# -ffp-contract=off: no FMA contraction, so CPU results do not depend on the build machine.
# -Wno-psabi: GCC notes about 32-byte vector arguments of inlined SIMD helpers (no ABI involved).
_CFLAGS = ("-O3", "-fopenmp", "-ffp-contract=off", "-Wno-psabi")

_lock = threading.RLock()  # re-entrant: an on_load callback may look the extension up
_module: ModuleType | None = None
_error: str | None = None
_on_load: list[Callable[[ModuleType], None]] = []


class ExtensionBuildError(ReconError):
    """The compiled extension could not be built or loaded."""


def _want_cuda() -> bool:
    from torch.utils.cpp_extension import CUDA_HOME

    return torch.cuda.is_available() and torch.version.cuda is not None and CUDA_HOME is not None


def _sources(with_cuda: bool) -> list[Path]:
    names = _CPP_SOURCES + (_CU_SOURCES if with_cuda else ())
    return [CUDA_DIR / "src" / n for n in names]


def _build_dir(with_cuda: bool) -> Path:
    """Cache folder keyed by the sources, headers, torch version and build flavour."""
    h = hashlib.sha256()
    headers = sorted((CUDA_DIR / "include").glob("*.h")) + sorted((CUDA_DIR / "src").glob("*.h"))
    files = headers + _sources(with_cuda)
    for f in files:
        h.update(f.name.encode())
        h.update(f.read_bytes())
    h.update(f"{torch.__version__}|{sys.version_info[:2]}|cuda={with_cuda}|{_CFLAGS}".encode())
    root = Path(os.environ.get("RECON_EXT_DIR", Path.home() / ".cache" / "recon" / "ext"))
    return root / h.hexdigest()[:16]


def _compiler_missing() -> str | None:
    cxx = os.environ.get("CXX", "c++")
    if shutil.which(cxx) is None and shutil.which("g++") is None:
        return (
            f"no C++ compiler found (looked for {cxx!r} and 'g++'); install one "
            "(e.g. `apt-get install g++`) or use backend='reference'"
        )
    if shutil.which("ninja") is None:
        try:
            import ninja  # noqa: F401
        except ImportError:
            return "ninja is missing: `pip install ninja` or use backend='reference'"
    return None


def load_extension() -> ModuleType:
    """Builds (first call) or loads (cached) the extension.

    Raises:
        ExtensionBuildError: no compiler, or the build failed (the message says what to do).
    """
    global _module, _error
    with _lock:
        if _module is not None:
            return _module
        if _error is not None:
            raise ExtensionBuildError(_error)
        missing = _compiler_missing()
        if missing is not None:
            _error = missing
            raise ExtensionBuildError(missing)
        from torch.utils.cpp_extension import load

        with_cuda = _want_cuda()
        build_dir = _build_dir(with_cuda)
        build_dir.mkdir(parents=True, exist_ok=True)
        os.environ.setdefault("MAX_JOBS", str(min(4, os.cpu_count() or 1)))
        cflags = list(_CFLAGS)
        cuda_flags = ["-O3", "-DRECON_WITH_CUDA"]
        if with_cuda:
            cflags.append("-DRECON_WITH_CUDA")
        try:
            _module = load(
                name="recon_kernels_cuda" if with_cuda else "recon_kernels_cpu",
                sources=[str(s) for s in _sources(with_cuda)],
                extra_include_paths=[str(CUDA_DIR / "include")],
                extra_cflags=cflags,
                extra_cuda_cflags=cuda_flags,
                extra_ldflags=["-fopenmp"],
                build_directory=str(build_dir),
                with_cuda=with_cuda,
                verbose=os.environ.get("RECON_EXT_VERBOSE") == "1",
            )
        except Exception as err:
            _error = (
                f"building the recon kernels in {build_dir} failed: {err}; "
                "set RECON_EXT_VERBOSE=1 to see the compiler output, or use backend='reference'"
            )
            raise ExtensionBuildError(_error) from err
        for callback in _on_load:
            callback(_module)
        return _module


def on_load(callback: Callable[[ModuleType], None]) -> None:
    """Calls ``callback(extension)`` when the extension is loaded, or now if it already is."""
    with _lock:
        if _module is None:
            _on_load.append(callback)
            return
    callback(_module)


def available(device: str | torch.device = "cpu") -> tuple[bool, str]:
    """Whether the compiled backend runs on ``device``; the reason when it does not.

    Builds the extension on the first call (tens of seconds, then cached).
    """
    device = torch.device(device)
    missing = _compiler_missing()
    if missing is not None:
        return False, missing
    if device.type == "cuda" and not torch.cuda.is_available():
        return False, "torch sees no CUDA device"
    try:
        ext = load_extension()
    except ExtensionBuildError as err:
        return False, str(err)
    if device.type == "cuda" and not ext.with_cuda:
        return False, "the extension was built without CUDA (nvcc / CUDA_HOME not found)"
    if device.type not in ("cpu", "cuda"):
        return False, f"no kernels for device type {device.type!r}"
    return True, ""


def ext_for(t: Tensor) -> ModuleType:
    """The loaded extension for tensors like ``t``, its CPU thread count set from the free cores."""
    ext = load_extension()
    if t.is_cuda and not ext.with_cuda:
        raise ExtensionBuildError("the recon extension was built without CUDA; use backend='reference' or 'gsplat'")
    if not t.is_cuda:
        threads.apply(ext)  # thread count from the free cores (recon/ops/threads.py)
    return ext


__all__ = ["CUDA_DIR", "ExtensionBuildError", "available", "ext_for", "load_extension", "on_load"]
