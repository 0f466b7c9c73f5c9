"""Configs: strict load/save, presets, overrides."""

from __future__ import annotations

import json

import pytest

from recon.config import (
    SCHEMA_VERSION,
    TrainConfig,
    config_from_dict,
    load_config,
    load_preset,
    override,
    preset_names,
    save_config,
)
from recon.errors import ConfigError


@pytest.mark.parametrize("suffix", [".json", ".yaml"])
def test_round_trip(tmp_path, suffix):
    cfg = override(TrainConfig(), **{"data.views": 3, "primitive": "triangle", "sparse.enabled": True})
    path = tmp_path / f"c{suffix}"
    save_config(cfg, path)
    assert load_config(path) == cfg


def test_saved_json_is_plain_with_schema(tmp_path):
    save_config(TrainConfig(), tmp_path / "c.json")
    data = json.loads((tmp_path / "c.json").read_text())
    assert data["schema_version"] == SCHEMA_VERSION and data["data"]["protocol"] == "auto"


def test_unknown_and_mistyped_keys_rejected():
    with pytest.raises(ConfigError, match="unknown config key bogus in optim"):
        config_from_dict({"optim": {"bogus": 1}})
    with pytest.raises(ConfigError, match="iterations: expected an integer"):
        config_from_dict({"iterations": "ten"})
    with pytest.raises(ConfigError, match="primitive"):
        config_from_dict({"primitive": "sphere"})
    with pytest.raises(ConfigError, match="schema_version 99"):
        config_from_dict({"schema_version": 99})


def test_presets_load_and_unknown_preset_lists_names():
    names = preset_names()
    assert {"demo", "sparse-3view", "dense"} <= set(names)
    for name in names:
        assert load_preset(name).preset == name
    assert load_preset("sparse-3view").sparse.enabled is True
    with pytest.raises(ConfigError, match="unknown preset 'nope'.*demo"):
        load_preset("nope")


def test_preset_from_a_user_yaml_file(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text("iterations: 77\nprimitive: triangle\nsparse:\n  enabled: true\n  depth_weight: 0.5\n")
    expected = override(TrainConfig(), **{"iterations": 77, "primitive": "triangle", "sparse.enabled": True,
                                          "sparse.depth_weight": 0.5})  # fmt: skip
    assert load_preset(str(path)) == override(expected, preset=str(path))
    # a run's saved config.json is a preset too
    save_config(expected, tmp_path / "config.json")
    assert load_preset(str(tmp_path / "config.json")).sparse.depth_weight == 0.5


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (None, "cannot read config"),
        ("iterations: [1,\n  2\n", "not valid YAML"),
        ("- 1\n- 2\n", "expected a mapping of config keys, got list"),
        ("optim:\n  bogus: 1\n", "unknown config key bogus in optim"),
        ("iterations: ten\n", "iterations: expected an integer"),
    ],
)
def test_bad_preset_file_is_a_one_line_config_error(tmp_path, capsys, text, message):
    from recon.cli import main

    path = tmp_path / "bad.yaml"
    if text is not None:
        path.write_text(text)
    with pytest.raises(ConfigError, match=message) as err:
        load_preset(str(path))
    assert str(path) in str(err.value) and "\n" not in str(err.value)
    assert main(["train", "--data", "synthetic", "--out", str(tmp_path / "r"), "--preset", str(path)]) == 2
    out = capsys.readouterr().err.strip()
    assert message in out and len(out.splitlines()) == 1
