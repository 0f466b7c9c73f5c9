"""User-facing errors.

A :class:`ReconError` is an expected failure caused by the user's input (a wrong path, a corrupt
image, SfM that registered too few views). The CLI prints it as one line, without a traceback
unless ``--verbose`` is given, and exits with a non-zero status. Every message names the file or
argument at fault and says what to do.
"""

from __future__ import annotations

from pathlib import Path


class ReconError(Exception):
    """An error the user can fix; ``str(err)`` is a one-line message."""

    def __init__(self, message: str, *, path: str | Path | None = None, hint: str | None = None):
        self.path = None if path is None else Path(path)
        self.hint = hint
        text = message if path is None else f"{path}: {message}"
        if hint:
            text = f"{text} ({hint})"
        super().__init__(text)


class DataError(ReconError):
    """Scene data that cannot be read or is inconsistent."""


class ConfigError(ReconError):
    """Invalid options, presets or run directories."""
