"""A rich progress bar that stays silent when disabled or when stderr is not a terminal.

Bars go to one shared stderr console (:func:`stderr_console`), so a bar started while another is
live (a repair fit inside ``recon train``'s bar) shows nested under it instead of fighting it.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from rich.console import Console

T = TypeVar("T")


@functools.cache
def stderr_console() -> Console:
    """The rich console every recon progress bar and status line writes to (stderr)."""
    from rich.console import Console

    return Console(stderr=True)


def track(items: Iterable[T], description: str, enabled: bool = True) -> Iterator[T]:
    """Iterates ``items`` with a transient rich progress bar on an interactive stderr."""
    stream = getattr(sys.stderr, "rich_proxied_file", sys.stderr)  # under a live bar, stderr is rich's proxy
    if not enabled or not stream.isatty():
        yield from items
        return
    from rich.progress import track as rich_track

    yield from rich_track(items, description=description, transient=True, console=stderr_console())
