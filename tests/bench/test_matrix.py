"""Matrix parsing: cell expansion, stable ids, strict errors naming the key."""

from __future__ import annotations

import pytest
import yaml

from recon.bench.matrix import expand, load_bench, parse_bench
from recon.config import load_preset, override
from recon.errors import ConfigError

BASE = {
    "name": "t",
    "preset": "demo",
    "train": {"iterations": 20},
    "scenes": [{"name": "synthetic", "path": "synthetic"}],
    "primitives": ["gaussian", "triangle"],
    "settings": {"default": {}, "no-sparse": {"sparse.enabled": False}},
    "seeds": [0, 1],
}


def _with(**changes):
    return {**BASE, **changes}


def test_expansion_is_the_product_with_resolved_configs():
    cells = expand(parse_bench(BASE))
    assert len(cells) == 1 * 2 * 2 * 2
    assert [(c.primitive, c.setting, c.seed) for c in cells[:4]] == [
        ("gaussian", "default", 0),
        ("gaussian", "default", 1),
        ("gaussian", "no-sparse", 0),
        ("gaussian", "no-sparse", 1),
    ]
    cell = cells[3]
    # oracle: the same config built by hand from the preset with recon.config.override
    want = override(
        load_preset("demo"),
        **{"iterations": 20, "sparse.enabled": False, "data.path": "synthetic", "primitive": "gaussian", "seed": 1},
    )
    assert cell.config == want
    assert cell.id.startswith("synthetic-gaussian-no-sparse-s1-")
    assert len({c.id for c in cells}) == len(cells)


def test_ids_are_stable_and_change_with_the_config(tmp_path):
    path = tmp_path / "m.yaml"
    path.write_text(yaml.safe_dump(BASE))
    ids = [c.id for c in expand(load_bench(path))]
    assert ids == [c.id for c in expand(parse_bench(BASE))]  # same config, same ids (file or dict)
    changed = expand(parse_bench(_with(settings={"default": {}, "no-sparse": {"sparse.enabled": True}})))
    kept = [c.id for c in changed if c.setting == "default"]
    assert kept == [i for i in ids if "-default-" in i]  # the untouched setting keeps its ids
    assert not {c.id for c in changed if c.setting == "no-sparse"} & set(ids)  # the changed override: new ids
    longer = expand(parse_bench(_with(train={"iterations": 21})))
    assert not {c.id for c in longer} & set(ids)


@pytest.mark.parametrize(
    ("data", "key"),
    [
        (_with(sceens=[]), "sceens"),
        (_with(settings={"x": {"sparse.enabld": False}}), "enabld"),
        (_with(settings={"x": {"iterations": "many"}}), "iterations"),
        (_with(train={"strategy.cap": 3}), "cap"),
        (_with(scenes=[{"path": "synthetic", "view": 3}]), "view"),
        (_with(primitives=["sphere"]), "sphere"),
        (_with(settings={"x": {"preset": "nope"}}), "nope"),
        (_with(settings={"x": {"backend": "vulkan"}}), "backend"),
    ],
)
def test_bad_matrix_is_one_line_error_naming_the_key(data, key):
    with pytest.raises(ConfigError) as err:
        expand(parse_bench(data))
    message = str(err.value)
    assert key in message and "\n" not in message


def test_bad_override_names_setting_and_file(tmp_path):
    path = tmp_path / "m.yaml"
    path.write_text(yaml.safe_dump(_with(settings={"fast": {"optim.means_lr": "high"}})))
    with pytest.raises(ConfigError, match=r"m\.yaml: settings\.fast: optim\.means_lr: expected a number"):
        expand(load_bench(path))
