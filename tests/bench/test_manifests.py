"""The split manifests in datasets/splits agree with recon's protocol code, the shipped matrices
and, where the shared data is present, the datasets' own file names."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from recon.bench.manifests import SPLITS_DIR, load_manifest, protocol_split
from recon.bench.matrix import MATRIX_DIR, load_bench
from recon.data.splits import split_views
from recon.errors import ConfigError

MANIFESTS = sorted(SPLITS_DIR.glob("*.json"))
SHARED = Path(__file__).resolve().parents[3] / "shared" / "data"


def test_a_manifest_for_every_standard_matrix():
    assert {p.stem for p in MANIFESTS} == {"dtu-3view", "llff-3view", "blender-8view", "mipnerf360-24view"}


@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: p.stem)
def test_manifest_agrees_with_the_protocol_code_and_the_matrix(path):
    manifest = load_manifest(path)
    for scene, entry in manifest.scenes.items():
        split = protocol_split(manifest, scene)
        assert (split.train, split.test) == (entry["train"], entry["test"]), scene
        assert len(entry["train"]) == manifest.views
        if manifest.protocol != "blender":  # blender numbers train and test frames separately
            assert not set(entry["train"]) & set(entry["test"])
    matrix = load_bench(MATRIX_DIR / path.name.replace(".json", ".yaml"))
    assert [s.name for s in matrix.scenes] == list(manifest.scenes)
    assert {(s.protocol, s.views) for s in matrix.scenes} == {(manifest.protocol, manifest.views)}


def test_ids_as_the_papers_list_them():
    # METHODS.md section 7, typed here: DTU 3-view train ids and excluded ids, DietNeRF's 8 frames
    dtu = load_manifest("dtu-3view").scenes["scan8"]
    assert dtu["train"] == [25, 22, 28]
    excluded = {*range(3, 8), *range(16, 22), *range(36, 40)}
    assert sorted(dtu["test"]) == sorted(set(range(49)) - excluded - {25, 22, 28, 40, 44, 48, 0, 8, 13})
    assert load_manifest("blender-8view").scenes["lego"]["train"] == [26, 86, 2, 55, 75, 93, 16, 73]
    fern = load_manifest("llff-3view").scenes["fern"]  # 20 images: test 0, 8, 16; train spread over the other 17
    assert fern["test"] == [0, 8, 16] and fern["train"] == [1, 10, 19]


def test_manifests_match_the_shared_scenes_file_names():
    lego, scan24 = SHARED / "nerf_synthetic" / "lego_400", SHARED / "dtu" / "scan24" / "images_4"
    if not (lego.is_dir() and scan24.is_dir()):
        pytest.skip("../shared/data is not here")
    frames = {s: json.loads((lego / f"transforms_{s}.json").read_text())["frames"] for s in ("train", "test")}
    bl = load_manifest("blender-8view").scenes["lego"]
    assert (len(frames["train"]), len(frames["test"])) == (bl["num_train"], bl["num_test"])
    assert [frames["train"][i]["file_path"] for i in bl["train"]] == [f"./train/r_{i}" for i in bl["train"]]
    names = sorted(p.name for p in scan24.glob("*.png"))  # 000000.png ... 000048.png
    split = split_views(names, "dtu", 3)
    dtu = load_manifest("dtu-3view").scenes["scan8"]  # every scan has the same ids
    assert [int(names[i][:6]) for i in split.train] == dtu["train"]
    assert [int(names[i][:6]) for i in split.test] == dtu["test"]


def test_bad_manifest_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="cannot read the split manifest"):
        load_manifest(tmp_path / "none.json")
    (tmp_path / "bad.json").write_text(json.dumps({"protocol": "llff"}))
    with pytest.raises(ConfigError, match="not a split manifest"):
        load_manifest(tmp_path / "bad.json")
