"""A rich progress bar that stays silent when disabled or when stderr is not a terminal."""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")


def track(items: Iterable[T], description: str, enabled: bool = True) -> Iterator[T]:
    """Iterates ``items`` with a transient rich progress bar on an interactive stderr."""
    if not enabled or not sys.stderr.isatty():
        yield from items
        return
    from rich.progress import track as rich_track

    yield from rich_track(items, description=description, transient=True)
