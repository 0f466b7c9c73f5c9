"""Writing an export safely: a temporary name in the destination folder, renamed when complete.

Every exporter writes through :func:`atomic_output`, so a failure (bad input, a full disk, an
interrupt) never leaves a partial file or folder behind, and never damages an existing output.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from recon.errors import ConfigError


def check_output(path: Path, overwrite: bool) -> None:
    """Rejects an output that exists (without ``overwrite``) or whose folder cannot be written.

    Raises:
        ConfigError: naming ``path`` and what to do.
    """
    if path.exists() and not overwrite:
        raise ConfigError("already exists", path=path, hint="pass --overwrite to replace it, or choose another --out")
    if path.is_dir() and not path.is_symlink() and path.suffix:
        raise ConfigError("is a folder, expected a file", path=path, hint="choose another --out")
    parent = _existing_parent(path.parent)
    if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        raise ConfigError(
            f"cannot write here ({parent} is not a writable folder)", path=path, hint="choose another --out"
        )


def _existing_parent(folder: Path) -> Path:
    folder = folder.absolute()
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    return folder


@contextmanager
def atomic_output(path: str | Path, overwrite: bool = False, folder: bool = False) -> Iterator[Path]:
    """Yields a temporary path beside ``path``; on success it replaces ``path``, on failure it is deleted.

    Args:
        path: the final file (or folder, with ``folder=True``).
        overwrite: replace an existing ``path``; otherwise its existence is an error.
        folder: the output is a folder (the temporary folder is created empty).

    Raises:
        ConfigError: ``path`` exists without ``overwrite``, or its folder is not writable.
    """
    path = Path(path)
    check_output(path, overwrite)
    # a plain name (not mkstemp): the finished file gets the usual permissions, not 0600
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.partial{path.suffix}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if folder:
            tmp.mkdir()
    except OSError as err:
        raise ConfigError(
            f"cannot write here ({err.strerror or err})", path=path, hint="choose another --out"
        ) from None
    try:
        yield tmp
        _replace(tmp, path)
    except OSError as err:
        raise ConfigError(
            f"writing failed ({err.strerror or err})", path=path, hint="check the disk and --out"
        ) from None
    finally:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            tmp.unlink(missing_ok=True)


def _replace(tmp: Path, path: Path) -> None:
    """Moves ``tmp`` onto ``path``; an existing folder is moved aside first and deleted after."""
    if tmp.is_dir() and path.exists():
        old = path.with_name(f".{path.name}.old")
        shutil.rmtree(old, ignore_errors=True)
        os.replace(path, old)
        os.replace(tmp, path)
        if old.is_dir():
            shutil.rmtree(old, ignore_errors=True)
        else:
            old.unlink(missing_ok=True)
    else:
        umask = os.umask(0)  # writers that use mkstemp leave 0600: give the file the usual permissions
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
