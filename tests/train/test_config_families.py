"""Per-family config sections (schema 2): saved under the family's name, overridden by path, and the
flat schema-1 fields of old runs (``schema1_config.json``, written by the schema-1 ``recon.config``
of commit 7d147ca) moved into them; the strategy config reaches every strategy by name."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import torch

from recon.config import TrainConfig, config_from_dict, load_config, override, save_config
from recon.config_families import SCHEMA1_MOVES
from recon.errors import ConfigError
from recon.primitives import FAMILIES
from recon.strategy import STRATEGIES, ConvexStrategy, TriangleStrategy
from recon.train.optim import make_strategy

SCHEMA1 = Path(__file__).with_name("schema1_config.json")


def _get(config: TrainConfig, key: str):
    section, name = key.split(".")
    return getattr(config.section(section), name)


def test_every_schema1_field_lands_in_its_family_section():
    old = json.loads(SCHEMA1.read_text())
    config = load_config(SCHEMA1)
    assert config.primitive == "ges" and config.iterations == 1234
    assert set(SCHEMA1_MOVES) == {f"{s}.{k}" for s in ("init", "optim", "loss") for k in old[s]} - {
        f"{s}.{k}" for s, section in (("init", config.init), ("optim", config.optim), ("loss", config.loss))
        for k in dataclasses.asdict(section)
    }  # every flat field schema 1 had and schema 2 does not is moved  # fmt: skip
    for old_key, targets in SCHEMA1_MOVES.items():
        section, name = old_key.split(".")
        value = old[section][name]
        assert value != _get(TrainConfig(), targets[0]), old_key  # the file holds non-default values
        for target in targets:
            assert _get(config, target) == value, (old_key, target)
    assert config.strategy.prune_opacity == 0.02  # schema 1 passed it to the Gaussian strategies


def test_schema1_triangle_run_keeps_its_own_dead_opacity(tmp_path):
    """Schema 1 never passed strategy.prune_opacity to the triangle strategy: an old run resumes as it ran."""
    old = json.loads(SCHEMA1.read_text()) | {"primitive": "triangle"}
    (tmp_path / "config.json").write_text(json.dumps(old))
    config = load_config(tmp_path / "config.json")
    assert config.strategy.prune_opacity is None
    assert make_strategy(config, 1.0).prune_opacity == TriangleStrategy().prune_opacity == 0.014


@pytest.mark.parametrize("suffix", [".json", ".yaml"])
def test_sections_round_trip_under_the_family_name(tmp_path, suffix):
    config = override(TrainConfig(), **{"primitive": "convex", "convex.init_num_points": 5, "ges.shape_lr": 2e-3})
    save_config(config, tmp_path / f"c{suffix}")
    assert load_config(tmp_path / f"c{suffix}") == config
    data = config.to_dict()
    assert data["convex"]["init_num_points"] == 5 and data["ges"]["shape_lr"] == 2e-3
    assert set(FAMILIES) <= set(data) and "families" not in data
    assert config.section() == config.section("convex") and config.section().init_num_points == 5


def test_schema1_paths_and_section_paths_are_the_same_override():
    for old, targets in SCHEMA1_MOVES.items():
        value = 7 if isinstance(_get(TrainConfig(), targets[0]), int) else 0.0123
        by_old = override(TrainConfig(), **{old: value})
        assert by_old == override(TrainConfig(), **{t: value for t in targets}), old
        assert by_old != TrainConfig()
    # given both ways, the section path wins
    both = override(TrainConfig(), **{"optim.shape_lr": 1.0, "ges.shape_lr": 2.0})
    assert both.section("ges").shape_lr == 2.0


def test_section_keys_are_checked_strictly():
    with pytest.raises(ConfigError, match="unknown config key bogus in ges"):
        config_from_dict({"ges": {"bogus": 1}})
    with pytest.raises(ConfigError, match="ges.shape_lr: expected a number"):
        config_from_dict({"ges": {"shape_lr": "fast"}})
    with pytest.raises(ConfigError, match="optim.shape_lr: expected a number"):  # the path the user wrote
        override(TrainConfig(), **{"optim.shape_lr": "fast"})
    with pytest.raises(ConfigError, match="unknown config key families"):
        config_from_dict({"families": {}})
    with pytest.raises(ConfigError, match="primitive: 'splat' is not one of gaussian, triangle, convex, ges"):
        config_from_dict({"primitive": "splat"})


@pytest.mark.parametrize(
    ("primitive", "own"), [("gaussian", 0.005), ("triangle", 0.014), ("convex", 0.03), ("ges", 0.005)]
)
def test_prune_opacity_reaches_every_strategy(primitive, own):
    config = override(TrainConfig(), primitive=primitive)
    assert make_strategy(config, 1.0).prune_opacity == own  # unset: the strategy's own threshold
    assert make_strategy(override(config, **{"strategy.prune_opacity": 0.2}), 1.0).prune_opacity == 0.2


def test_prune_opacity_decides_which_triangles_are_dead():
    params = {"opacities": torch.logit(torch.tensor([0.05, 0.1, 0.3]))}
    state = {"max_blend": torch.ones(3)}  # every triangle blended well: only the opacity can kill it
    config = override(TrainConfig(), primitive="triangle")
    assert make_strategy(config, 1.0)._dead(params, state).tolist() == [False, False, False]
    strict = make_strategy(override(config, **{"strategy.prune_opacity": 0.2}), 1.0)
    assert strict._dead(params, state).tolist() == [True, True, False]


def test_every_strategy_option_reaches_the_strategies_that_have_it():
    """Each StrategyConfig field set to a distinct value arrives in every strategy with a field of that
    name (or its CONFIG_NAMES rename); refine_stop is capped by the run length."""
    fields = [f for f in dataclasses.fields(TrainConfig().strategy) if f.name != "name"]
    values = {}
    for i, f in enumerate(fields):
        default = getattr(TrainConfig().strategy, f.name)
        values[f.name] = (
            (not default) if isinstance(default, bool) else (100 + i if isinstance(default, int) else 0.5 + i)
        )
    base = override(TrainConfig(), iterations=10**6, **{f"strategy.{k}": v for k, v in values.items()})
    reached = set()
    for name, cls in STRATEGIES.items():
        if name == "none":
            continue
        strategy = make_strategy(override(base, **{"strategy.name": name}), scene_scale=3.0)
        renames = getattr(cls, "CONFIG_NAMES", {})
        for f in dataclasses.fields(cls):
            key = renames.get(f.name, f.name)
            if key in values:
                assert getattr(strategy, f.name) == values[key], (name, f.name)
                reached.add(key)
        if "scene_scale" in {f.name for f in dataclasses.fields(cls)}:
            assert strategy.scene_scale == 3.0
    assert reached == set(values)  # no config option is left unused
    capped = make_strategy(override(base, iterations=50, **{"strategy.name": "convex"}), 1.0)
    assert isinstance(capped, ConvexStrategy) and capped.refine_stop == 50
