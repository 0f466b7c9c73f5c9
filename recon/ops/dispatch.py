"""Backend dispatch: which module of engine stage functions (ENGINE.md) renders a call.

A tiny table maps ``backend`` names to a resolver taking the tensors' device. Only this module
imports the compiled extension, on first use, and a failed build falls back (``"auto"``) or
raises a clear error (explicit ``"cpu"``/``"cuda"``).
"""

from __future__ import annotations

import importlib
import types
import warnings

import torch

from recon.ops import reference
from recon.ops.validate import RasterInputError

_warned: set[str] = set()
_kernel_cache: dict[str, tuple[types.ModuleType | None, str]] = {}


def _warn_once(key: str, message: str) -> None:
    if key not in _warned:
        _warned.add(key)
        warnings.warn(message, RuntimeWarning, stacklevel=3)


def _load_kernels(device: torch.device) -> tuple[types.ModuleType | None, str]:
    """The compiled extension module if it loads and supports ``device``, else (None, why).

    The answer is cached per device type: a failed build is not retried on every call.
    """
    if device.type not in _kernel_cache:
        _kernel_cache[device.type] = _try_kernels(device)
    return _kernel_cache[device.type]


def _try_kernels(device: torch.device) -> tuple[types.ModuleType | None, str]:
    try:
        # import_module reads sys.modules (a package attribute left by an earlier import would not)
        kernels = importlib.import_module("recon.ops.kernels")

        if kernels.available(device):
            return kernels, ""
        return None, f"recon.ops.kernels.available({device.type!r}) is False"
    except Exception as err:  # noqa: BLE001 (a failed build must not break rendering)
        return None, f"{type(err).__name__}: {err}"


def _kernels_or_raise(device: torch.device) -> types.ModuleType:
    module, why = _load_kernels(device)
    if module is None:
        raise RuntimeError(
            f"backend={device.type!r}: the compiled rasterizer is unavailable ({why}); "
            "install a C++ compiler (gcc) and ninja, or pass backend='reference'"
        )
    return module


def _auto(device: torch.device) -> types.ModuleType:
    module, why = _load_kernels(device)
    if module is not None:
        return module
    _warn_once(
        f"auto-{device.type}",
        f"recon.ops: compiled {device.type} rasterizer unavailable ({why}); using the slower "
        "pure-PyTorch reference backend",
    )
    return reference


def _cuda(device: torch.device) -> types.ModuleType:
    if device.type != "cuda":
        raise RasterInputError(f"backend='cuda' needs CUDA tensors, got tensors on {device}")
    return _kernels_or_raise(device)


def _cpu(device: torch.device) -> types.ModuleType:
    if device.type != "cpu":
        raise RasterInputError(f"backend='cpu' needs CPU tensors, got tensors on {device}")
    return _kernels_or_raise(device)


_BACKENDS = {
    "auto": _auto,
    "cuda": _cuda,
    "cpu": _cpu,
    "reference": lambda device: reference,
}


def resolve_backend(backend: str, device: torch.device) -> types.ModuleType:
    """The module of stage functions (ENGINE.md) that ``backend`` means for ``device``.

    ``"auto"`` picks the compiled kernels when they load for the device (CUDA or CPU), else the
    reference with a one-time warning saying why.
    """
    if backend not in _BACKENDS:
        raise RasterInputError(
            f"backend must be one of {sorted(_BACKENDS) + ['gsplat']}, got {backend!r}"
        )
    return _BACKENDS[backend](device)
