"""The run folder itself: its marker, and the ``--out`` folder of ``recon train`` / ``recon demo``,
checked before anything is written, deleted only when recon made it, and cleaned up when a start
fails on its input.

``--overwrite`` deletes a non-empty folder only when it holds the run marker (:data:`RUN_MARKER`,
written by :func:`mark_run` once the scene has loaded) and when it neither is nor contains the
scene being read. Anything else (a scene folder, a home directory, a run from before the marker
existed) is refused with one line.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from recon.errors import ConfigError

RUN_MARKER = ".recon-run"


def mark_run(run_dir: Path) -> None:
    """Writes the marker that makes ``run_dir`` a folder recon may delete with ``--overwrite``."""
    (run_dir / RUN_MARKER).write_text(json.dumps({"recon_run": 1}) + "\n")


def is_marked_run(path: Path) -> bool:
    """Whether ``path`` is a run folder recon created (it holds the marker)."""
    return (path / RUN_MARKER).is_file()


@dataclass(frozen=True)
class OutFolder:
    """A prepared run folder.

    Attributes:
        path: the folder.
        fresh: it was empty (or new) before this start, so everything in it belongs to this start.
        created: this start created the folder itself.
    """

    path: Path
    fresh: bool
    created: bool


def _contains(folder: Path, path: Path) -> bool:
    """Whether ``path`` is ``folder`` or lies inside it (symlinks resolved)."""
    folder, path = folder.resolve(), path.resolve()
    return path == folder or folder in path.parents


def _check_deletable(out: Path, data: str | None) -> None:
    if data and Path(data).exists() and _contains(out, Path(data)):
        raise ConfigError(
            "--overwrite would delete the scene being read (--data lies inside --out)",
            path=out,
            hint="pick a new folder for --out, e.g. runs/NAME",
        )
    if not is_marked_run(out):
        raise ConfigError(
            "--overwrite deletes only run folders recon created (no .recon-run marker here)",
            path=out,
            hint="pick a new folder for --out, or delete this one yourself if it is an old run",
        )


def prepare_out(out: Path, *, resume: bool = False, overwrite: bool = False, data: str | None = None) -> OutFolder:
    """Checks ``out`` and readies it for a new run (or a resumed one).

    Args:
        out: the ``--out`` folder.
        resume: continue the run in ``out`` (it must hold ``config.json``).
        overwrite: replace a non-empty ``out``, if recon made it and it does not hold ``data``.
        data: the scene path (``--data``), never deleted.

    Raises:
        ConfigError: ``out`` is a file, not a run to resume, or not a folder that may be replaced.
    """
    if out.exists() and not out.is_dir():
        raise ConfigError("--out is an existing file, not a folder", path=out, hint="pass a folder path for the run")
    if resume:
        if not (out / "config.json").is_file():
            raise ConfigError(
                "--resume: no run to resume here (no config.json)", path=out, hint="start it without --resume"
            )
        return OutFolder(out, fresh=False, created=False)
    created = not out.exists()
    if not created and any(out.iterdir()):
        if not overwrite:
            raise ConfigError(
                "the run folder already exists",
                path=out,
                hint="pass --resume to continue it or --overwrite to replace it",
            )
        _check_deletable(out, data)
        shutil.rmtree(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ConfigError(
            f"cannot create the run folder ({err.strerror})",
            path=out,
            hint="pass a folder path whose parents are folders you can write to",
        ) from None
    return OutFolder(out, fresh=True, created=created)


@contextmanager
def removed_if_start_fails(folder: OutFolder) -> Iterator[None]:
    """Removes what a failed start wrote into a fresh folder before the run was marked.

    A start that fails on its input (a bad data path, a bad split, SfM failing) leaves the folder
    as it found it, so the retry needs no ``--overwrite``. Once the run is marked (the scene
    loaded), its files stay: a later failure keeps the checkpoints written so far.
    """
    try:
        yield
    except BaseException:
        if folder.fresh and folder.path.is_dir() and not is_marked_run(folder.path):
            if folder.created:
                shutil.rmtree(folder.path, ignore_errors=True)
            else:
                for child in folder.path.iterdir():
                    if child.is_dir() and not child.is_symlink():
                        shutil.rmtree(child, ignore_errors=True)
                    else:
                        child.unlink(missing_ok=True)
        raise
