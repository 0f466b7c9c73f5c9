"""The layers stay layered: run-directory I/O below the trainer and the viewer, which ignore each other.

Two independent checks: what a fresh interpreter has in ``sys.modules`` after importing a layer
(import-time dependencies, however indirect), and every ``import`` statement in the layer's
source files, including the ones inside functions, which run only when called.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _modules_after_import(modules: list[str]) -> list[str]:
    """Names in ``sys.modules`` of a fresh interpreter after importing ``modules``."""
    code = (
        "import importlib, json, sys\n"
        f"for m in {modules!r}:\n"
        "    importlib.import_module(m)\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    return json.loads(out.stdout.strip().splitlines()[-1])


def _package_modules(package: str) -> list[str]:
    folder = ROOT.joinpath(*package.split("."))
    return sorted(f"{package}.{p.stem}" if p.stem != "__init__" else package for p in folder.glob("*.py"))


def _imported_names(path: Path) -> set[str]:
    """Every module named by an import statement of ``path`` (top level or inside functions)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def _is_under(name: str, packages: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in packages)


def test_run_package_imports_neither_the_trainer_nor_the_viewer():
    loaded = _modules_after_import(_package_modules("recon.run"))
    assert "recon.run.load" in loaded and "recon.run.checkpoint" in loaded  # the probe did import them
    assert [m for m in loaded if _is_under(m, ("recon.train", "viewer"))] == []


def test_trainer_does_not_import_the_viewer():
    loaded = _modules_after_import(_package_modules("recon.train"))
    assert "recon.train.cli" in loaded and "recon.train.trainer" in loaded
    assert [m for m in loaded if _is_under(m, ("viewer",))] == []


def test_viewer_loads_no_trainer_module():
    """Not even indirectly: recon.wild's median filter took its warp from recon.train.losses once."""
    loaded = _modules_after_import(_package_modules("viewer"))
    assert "viewer.cli" in loaded and "viewer.app" in loaded
    assert [m for m in loaded if _is_under(m, ("recon.train", "recon.app"))] == []


@pytest.mark.parametrize(
    ("package", "forbidden"),
    [
        ("recon.run", ("recon.train", "viewer", "recon.app")),
        ("recon.train", ("viewer", "recon.app")),
        ("viewer", ("recon.train", "recon.app")),  # the viewer reads runs through recon.run, never the trainer
    ],
)
def test_no_import_statement_crosses_a_layer(package, forbidden):
    """Function-level imports too: the trainer once started the viewer from inside run_training."""
    files = sorted(ROOT.joinpath(*package.split(".")).glob("*.py"))
    assert files
    crossing = {f.name: sorted(n for n in _imported_names(f) if _is_under(n, forbidden)) for f in files}
    assert {k: v for k, v in crossing.items() if v} == {}
