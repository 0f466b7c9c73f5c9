"""The shipped matrices (configs/bench/*.yaml) load strictly and expand to distinct cells."""

from __future__ import annotations

from pathlib import Path

import pytest

from recon.bench.matrix import expand, load_bench
from recon.errors import ConfigError
from recon.resources import shipped_dir

REPO = Path(__file__).resolve().parents[2]

MATRICES = sorted((shipped_dir("configs") / "bench").glob("*.yaml"))


def test_the_issue_matrices_ship():
    assert {p.stem for p in MATRICES} >= {
        "smoke",
        "dtu-3view",
        "llff-3view",
        "blender-8view",
        "mipnerf360-24view",
        "shared-scenes",
    }


@pytest.mark.parametrize("path", MATRICES, ids=lambda p: p.stem)
def test_shipped_matrix_expands(path):
    spec = load_bench(path)
    cells = expand(spec)
    assert spec.name == path.stem
    assert len(cells) == len(spec.scenes) * len(spec.primitives) * len(spec.settings) * len(spec.seeds)
    assert len({c.id for c in cells}) == len(cells)


def test_shared_scenes_point_at_the_shared_data(shared_data, monkeypatch):
    monkeypatch.chdir(REPO)  # the matrix's paths are read from the repository root
    if shared_data.resolve() != (REPO.parent / "shared" / "data").resolve():
        pytest.skip(f"the matrix names ../shared/data; RECON_SHARED_DATA points at {shared_data}")
    cells = expand(load_bench(shipped_dir("configs") / "bench" / "shared-scenes.yaml"))
    assert all(c.available for c in cells)


def test_a_shipped_matrix_by_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no smoke.yaml here: the name is looked up in configs/bench
    assert load_bench("smoke") == load_bench(shipped_dir("configs") / "bench" / "smoke.yaml")
    with pytest.raises(ConfigError, match=r"unknown benchmark matrix 'smok' .*smoke"):
        load_bench("smok")
    with pytest.raises(ConfigError, match="cannot read"):
        load_bench("nowhere/smoke.yaml")


@pytest.mark.parametrize("path", MATRICES, ids=lambda p: p.stem)
def test_a_missing_scene_points_at_its_datasets_page(path, tmp_path, monkeypatch):
    from recon.bench.cli import missing_scenes

    spec = load_bench(path)
    assert (REPO / spec.datasets).is_file() or spec.datasets.startswith("../shared/"), spec.datasets
    monkeypatch.chdir(tmp_path)  # no scene of any matrix is here (the synthetic one always is)
    cells = expand(spec)
    lines = missing_scenes(cells, spec.datasets)
    assert len(lines) == len({c.scene.name for c in cells if not c.available})
    assert all(f"see {spec.datasets} for how to obtain it" in line for line in lines)
