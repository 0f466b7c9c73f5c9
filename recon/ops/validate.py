"""Input checks for the public rasterization ops, run in Python before any kernel.

Every failure raises :class:`RasterInputError` (a ``ValueError`` and a ``ReconError``) naming the
argument, the expected shape and what was received. Valid inputs come back contiguous.

Shapes, dtypes and devices are always checked (host metadata, free). Values (finite, ranges) are
checked only where reading them back is free, on the CPU: on a GPU each read waits for the device,
so there they are checked only with ``RECON_CHECK_VALUES=1`` (debugging), and the trainer checks
the loss and the parameters once per step instead (see :func:`value_checks_enabled`).
"""

from __future__ import annotations

import os

import torch
from torch import Tensor

from recon.errors import ReconError

FLOAT_DTYPES = (torch.float32, torch.float64)


class RasterInputError(ReconError, ValueError):
    """A rasterization op was called with an argument of the wrong shape, dtype, device or value."""


def value_checks_enabled(device: torch.device) -> bool:
    """Whether the ops check input values (finite, ranges) of tensors on ``device``.

    ``RECON_CHECK_VALUES``: ``auto`` (default) = on the CPU only, ``1`` = everywhere, ``0`` = nowhere.
    Never while ``torch.compile`` traces: a value read back would break the graph.
    """
    if torch.compiler.is_compiling():
        return False
    flag = os.environ.get("RECON_CHECK_VALUES", "auto").strip().lower()
    if flag in ("1", "true", "yes", "on"):
        return True
    if flag in ("0", "false", "no", "off"):
        return False
    return device.type == "cpu"


def _fmt(shape: tuple[int | str, ...]) -> str:
    return "[" + ", ".join(str(s) for s in shape) + "]"


class InputChecker:
    """Checks a group of tensors against symbolic shapes that must agree with each other.

    Symbolic dims (``"N"``, ``"V"``, ``"C"``, ...) are bound by the first tensor that uses them;
    all float tensors must share the first float tensor's dtype and every tensor its device.
    Values are checked when :func:`value_checks_enabled` for that device (``check_values``).

    Example:
        >>> chk = InputChecker("rasterize_gaussians")
        >>> means = chk.tensor("means", torch.zeros(5, 3), ("N", 3))
        >>> chk.dims["N"]
        5
    """

    def __init__(self, op: str):
        self.op = op
        self.dims: dict[str, int] = {}
        self.dtype: torch.dtype | None = None
        self.device: torch.device | None = None
        self.check_values = False  # set with the device by the first tensor

    def fail(self, message: str) -> RasterInputError:
        return RasterInputError(f"{self.op}: {message}")

    def tensor(
        self,
        name: str,
        value: object,
        shape: tuple[int | str, ...],
        *,
        floating: bool = True,
        min_value: float | None = None,
        exclusive_min: bool = False,
        max_value: float | None = None,
    ) -> Tensor:
        """Validates one tensor argument and returns it contiguous.

        Args:
            name: argument name used in messages.
            value: what the caller passed.
            shape: expected shape; ints are fixed sizes, strings are symbolic dims.
            floating: require float32/float64 matching the group's dtype.
            min_value: optional lower bound on every element.
            exclusive_min: the bound is strict (``> min_value``).
            max_value: optional upper bound (inclusive) on every element.
        """
        expected = _fmt(shape)
        if not isinstance(value, Tensor):
            raise self.fail(
                f"{name} must be a torch.Tensor of shape {expected}, got {type(value).__name__}"
            )
        if value.dim() != len(shape):
            raise self.fail(f"{name} must have shape {expected}, got {list(value.shape)}")
        for axis, (want, got) in enumerate(zip(shape, value.shape)):
            if isinstance(want, str):
                bound = self.dims.setdefault(want, got)
                if bound != got:
                    raise self.fail(
                        f"{name} must have shape {expected} with {want}={bound} (from earlier "
                        f"arguments), got {list(value.shape)} (axis {axis} is {got})"
                    )
            elif want != got:
                raise self.fail(f"{name} must have shape {expected}, got {list(value.shape)}")
        if self.device is None:
            self.device = value.device
            self.check_values = value_checks_enabled(value.device)
        elif value.device != self.device:
            raise self.fail(
                f"{name} is on {value.device} but the other inputs are on {self.device}; "
                "move every tensor to one device"
            )
        if floating:
            if value.dtype not in FLOAT_DTYPES:
                raise self.fail(f"{name} must be float32 or float64, got {value.dtype}")
            if self.dtype is None:
                self.dtype = value.dtype
            elif value.dtype != self.dtype:
                raise self.fail(
                    f"{name} is {value.dtype} but the other inputs are {self.dtype}; "
                    "use one float dtype for every tensor"
                )
        if self.check_values and value.numel():
            self._check_range(name, value.detach(), floating, min_value, exclusive_min, max_value)
        return value.contiguous()

    def _check_range(self, name: str, value: Tensor, floating: bool, min_value: float | None, exclusive_min: bool,
                     max_value: float | None) -> None:  # fmt: skip
        """Value checks: they read values back (a device sync off the CPU)."""
        if floating and not bool(torch.isfinite(value).all()):
            raise self.fail(f"{name} contains NaN or inf values")
        if min_value is not None:
            low = value.min().item()
            if low < min_value or (exclusive_min and low <= min_value):
                op = ">" if exclusive_min else ">="
                raise self.fail(f"{name} values must be {op} {min_value}, found {low:g}")
        if max_value is not None:
            high = value.max().item()
            if high > max_value:
                raise self.fail(f"{name} values must be <= {max_value}, found {high:g}")

    def optional(self, name: str, value: object, shape: tuple[int | str, ...]) -> Tensor | None:
        """Like :meth:`tensor` but ``None`` passes through."""
        return None if value is None else self.tensor(name, value, shape)


def check_image_size(op: str, width: object, height: object) -> tuple[int, int]:
    """Width and height must be positive Python (or 0-d tensor) integers."""
    out = []
    for name, value in (("width", width), ("height", height)):
        if isinstance(value, Tensor) and value.numel() == 1 and not value.is_floating_point():
            value = int(value.item())
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise RasterInputError(f"{op}: {name} must be a positive integer, got {value!r}")
        out.append(value)
    return out[0], out[1]


def check_planes(op: str, near_plane: float, far_plane: float) -> None:
    """``0 < near_plane < far_plane``."""
    if not (0.0 < float(near_plane) < float(far_plane)):
        raise RasterInputError(
            f"{op}: need 0 < near_plane < far_plane, got near_plane={near_plane}, "
            f"far_plane={far_plane}"
        )
