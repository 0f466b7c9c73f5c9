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


def check_output(path: Path, overwrite: bool, folder: bool = False, replaceable: tuple[str, ...] = ()) -> None:
    """Rejects an output that exists (without ``overwrite``), is of the other kind (a folder where
    a file goes, or the reverse), or whose folder cannot be written.

    Args:
        path: the output file or folder.
        overwrite: an existing output may be replaced.
        folder: the output is a folder; with ``overwrite`` an existing one is replaced only when
            it holds nothing but files named in ``replaceable`` (a previous export, never a folder
            of the user's).
        replaceable: the file names an export of this folder writes.

    Raises:
        ConfigError: naming ``path`` and what to do.
    """
    if path.exists() and not overwrite:
        raise ConfigError("already exists", path=path, hint="pass --overwrite to replace it, or choose another --out")
    if path.exists() and path.is_dir() != folder:
        want, got = ("folder", "file") if folder else ("file", "folder")
        raise ConfigError(f"is a {got}, expected a {want}", path=path, hint="choose another --out")
    if folder and path.is_dir():
        others = sorted(p.name for p in path.iterdir() if p.name not in replaceable)
        if others:
            raise ConfigError(
                f"holds other files ({', '.join(others[:3])}{', ...' if len(others) > 3 else ''})",
                path=path, hint="--overwrite replaces only a previous export; choose another --out",
            )  # fmt: skip
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
def atomic_output(
    path: str | Path, overwrite: bool = False, folder: bool = False, replaceable: tuple[str, ...] = ()
) -> Iterator[Path]:
    """Yields a temporary path beside ``path``; on success it replaces ``path``, on failure it is deleted.

    Args:
        path: the final file (or folder, with ``folder=True``).
        overwrite: replace an existing ``path``; otherwise its existence is an error.
        folder: the output is a folder (the temporary folder is created empty).
        replaceable: for a folder, the file names an existing one may hold to be replaced.

    Raises:
        ConfigError: ``path`` exists without ``overwrite``, or its folder is not writable.
    """
    path = Path(path)
    check_output(path, overwrite, folder, replaceable)
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
