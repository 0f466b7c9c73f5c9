"""Folders shipped with the package: the presets (``configs/``) and the kernel sources (``cuda/``).

In the source tree they sit beside the ``recon`` package; ``setup.py`` ships them in the wheel as
``recon/_configs`` and ``recon/_cuda``. An installed wheel finds them inside the package, an
editable install or a plain checkout in the source tree.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from recon.errors import ReconError

SHIPPED = ("configs", "cuda")


def shipped_dir(name: str) -> Path:
    """Path of the shipped folder ``name`` (``"configs"`` or ``"cuda"``).

    Raises:
        ReconError: the folder is in neither place (a broken install).
    """
    if name not in SHIPPED:
        raise ValueError(f"unknown shipped folder {name!r}; one of {SHIPPED}")
    installed = Path(str(files("recon") / f"_{name}"))  # wheel install
    source = Path(__file__).resolve().parents[1] / name  # editable install or checkout
    for path in (installed, source):
        if path.is_dir():
            return path
    raise ReconError(
        f"the recon installation lacks its {name}/ folder (looked in {installed} and {source})",
        hint="reinstall recon: `pip install --force-reinstall recon` or `pip install -e .` in a checkout",
    )
