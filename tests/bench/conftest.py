"""Fixtures of the benchmark tests: a tiny matrix and one finished benchmark shared by the tests."""

from __future__ import annotations

import contextlib
import io
import shutil

import pytest
import yaml

from recon.cli import main

TINY = {
    "name": "tiny",
    "preset": "demo",
    "train": {
        "iterations": 20,
        "checkpoint_every": 10,
        "data.synthetic_width": 32,
        "data.synthetic_height": 24,
        "data.synthetic_views": 8,
        "init.max_points": 300,
    },
    "scenes": [{"name": "synthetic", "path": "synthetic"}, {"name": "absent", "path": "/nonexistent/recon-scene"}],
    "primitives": ["gaussian"],
    "seeds": [0, 1],
}


@pytest.fixture(scope="session")
def finished(tmp_path_factory):
    """A finished tiny benchmark: (matrix file, bench folder, stderr of the run)."""
    root = tmp_path_factory.mktemp("bench")
    matrix = root / "tiny.yaml"
    matrix.write_text(yaml.safe_dump(TINY))
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        status = main(["bench", str(matrix), "--out", str(root / "out")])
    assert status == 0, err.getvalue()
    return matrix, root / "out", err.getvalue()


@pytest.fixture
def bench(finished, tmp_path):
    """A private copy of the finished benchmark (each test changes it)."""
    matrix, out, _ = finished
    shutil.copytree(out, tmp_path / "out")
    return matrix, tmp_path / "out"


@pytest.fixture
def tiny_matrix():
    """The tiny matrix as a dict (2 synthetic cells of 20 steps at 32x24, one absent scene)."""
    return {**TINY, "train": dict(TINY["train"])}
