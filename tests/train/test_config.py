"""Configs: strict load/save, presets, overrides."""

from __future__ import annotations

import json

import pytest

from recon.config import TrainConfig, config_from_dict, load_config, load_preset, override, preset_names, save_config
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
    assert data["schema_version"] == 1 and data["data"]["protocol"] == "auto"


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
