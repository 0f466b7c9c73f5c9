"""Progress bars started under recon train's live bar (the repair fit) still show: rich swaps
stderr for a proxy while a bar is live, and the terminal test must look through it."""

from __future__ import annotations

import io
import sys

import rich.progress
from rich.file_proxy import FileProxy

from recon.priors._progress import stderr_console, track


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_track_shows_a_bar_under_a_live_display(monkeypatch):
    shown = []

    def fake_track(items, **kwargs):
        shown.append(kwargs)
        yield from items

    monkeypatch.setattr(rich.progress, "track", fake_track)
    tty = _Tty()
    monkeypatch.setattr(sys, "stderr", FileProxy(stderr_console(), tty))  # what rich's Live installs
    assert list(track(range(3), "fit")) == [0, 1, 2]
    assert len(shown) == 1 and shown[0]["console"] is stderr_console()  # nests under bars on that console
    monkeypatch.setattr(sys, "stderr", FileProxy(stderr_console(), io.StringIO()))  # not a terminal: silent
    assert list(track(range(3), "fit")) == [0, 1, 2] and len(shown) == 1
