"""Sparse-view protocols against index lists written out by hand."""

from __future__ import annotations

from pathlib import Path

import pytest

from recon.data.splits import Split, SplitError, split_views
from recon.errors import ConfigError


def _reversed_names(n: int) -> list[str]:
    """Scene order is the reverse of name order: scene index i has sorted position n - 1 - i."""
    return [f"img_{n - 1 - i:02d}.png" for i in range(n)]


def test_llff_sorts_by_name_and_spaces_train_views():
    names = _reversed_names(20)
    # sorted positions: test 0, 8, 16; remaining 17 positions 1-7, 9-15, 17-19
    s3 = split_views(names, "llff", views=3)
    # linspace(0, 16, 3) = 0, 8, 16 -> positions 1, 10, 19 -> scene indices 18, 9, 0
    assert s3 == Split(train=[18, 9, 0], test=[3, 11, 19], protocol="llff")
    s6 = split_views(names, "llff", views=6)
    # linspace(0, 16, 6) = 0, 3.2, 6.4, 9.6, 12.8, 16 -> 0, 3, 6, 10, 13, 16
    # -> positions 1, 4, 7, 12, 15, 19 -> scene indices 18, 15, 12, 7, 4, 0
    assert s6.train == [18, 15, 12, 7, 4, 0]
    every = split_views(names, "llff")  # all 17 remaining views
    assert sorted(every.train) == sorted(set(range(20)) - {3, 11, 19})


def test_generic_keeps_scene_order_and_rounds_half_to_even():
    names = [f"z{9 - i}.png" for i in range(7)]  # name order must not matter here
    s = split_views(names, "generic", views=3, test_every=7)
    # test = [0]; rest = 1..6 (M = 6); linspace(0, 5, 3) = 0, 2.5, 5 -> 0, 2, 5 -> views 1, 3, 6
    assert s == Split(train=[1, 3, 6], test=[0], protocol="generic")
    s = split_views([f"v{i}" for i in range(24)], "generic", views=4)
    # test 0, 8, 16; rest has 21 views; linspace(0, 20, 4) = 0, 6.67, 13.33, 20 -> 0, 7, 13, 20
    # rest = 1-7, 9-15, 17-23 -> rest[0]=1, rest[7]=9, rest[13]=15, rest[20]=23
    assert s.train == [1, 9, 15, 23] and s.test == [0, 8, 16]
    none_held = split_views([f"v{i}" for i in range(3)], "generic", test_every=0)
    assert none_held.train == [0, 1, 2] and none_held.test == []


def test_dtu_fixed_ids_through_sorted_names():
    names = [f"{i:06d}.png" for i in range(49)]
    s = split_views(names, "dtu")
    assert s.train == [25, 22, 28]
    assert s.test == [
        1,
        2,
        9,
        10,
        11,
        12,
        14,
        15,
        23,
        24,
        26,
        27,
        29,
        30,
        31,
        32,
        33,
        34,
        35,
        41,
        42,
        43,
        45,
        46,
        47,
    ]
    assert split_views(names, "dtu", views=6).train == [25, 22, 28, 40, 44, 48]
    assert split_views(names, "dtu", views=9).train == [25, 22, 28, 40, 44, 48, 0, 8, 13]
    # scene order reversed: DTU id k is scene index 48 - k
    rev = list(reversed(names))
    assert split_views(rev, "dtu").train == [23, 26, 20]
    excluded = set(range(49)) - set(s.test) - {25, 22, 28, 40, 44, 48, 0, 8, 13}
    assert excluded == {3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 36, 37, 38, 39}


def test_blender_eight_views_from_the_train_split():
    names = [f"r_{i}" for i in range(400)]
    split = {"train": list(range(100)), "val": list(range(100, 200)), "test": list(range(200, 400))}
    s = split_views(names, "blender", scene_split=split)
    assert s.train == [26, 86, 2, 55, 75, 93, 16, 73]
    assert s.test == list(range(200, 400, 8)) and len(s.test) == 25
    assert split_views(names, "blender", views=4, scene_split=split).train == [26, 86, 2, 55]
    # train entries are looked up through the split, not used as raw indices
    shifted = {"train": list(range(300, 400)), "test": list(range(200))}
    assert split_views(names, "blender", views=2, scene_split=shifted).train == [326, 386]


def test_auto_follows_the_scene_format():
    from recon.data.synthetic import make_synthetic_scene

    scene = make_synthetic_scene(num_views=16, width=8, height=6, num_points=10, supersample=1)
    s = split_views(scene, "auto", views=2)
    assert s.protocol == "generic" and s.test == scene.split["test"] == [0, 8]
    assert s.train == [1, 15]  # rest = 1-7, 9-15; linspace(0, 13, 2) -> 0, 13
    dtu = split_views([f"{i:06d}.png" for i in range(49)], "auto", scene_format="dtu")
    assert dtu.protocol == "dtu" and dtu.train == [25, 22, 28]


def test_impossible_requests_are_clear_errors():
    with pytest.raises(SplitError, match="--views 3"):
        split_views(["a.png", "b.png"], "generic", views=3)
    with pytest.raises(ValueError, match="49 DTU views"):
        split_views([f"{i:06d}.png" for i in range(10)], "dtu")
    with pytest.raises(ConfigError, match="at most 9"):
        split_views([f"{i:06d}.png" for i in range(49)], "dtu", views=12)
    with pytest.raises(SplitError, match="transforms_train"):
        split_views([f"r_{i}" for i in range(120)], "blender")
    with pytest.raises(SplitError, match="at least 94 train views"):
        split_views(
            [f"r_{i}" for i in range(60)],
            "blender",
            scene_split={"train": list(range(50)), "test": list(range(50, 60))},
        )
    with pytest.raises(SplitError, match="unknown protocol"):
        split_views(["a"], "mipnerf")
    with pytest.raises(SplitError, match="at least 1"):
        split_views(["a", "b"], "generic", views=0)
    with pytest.raises(SplitError, match="no views left"):
        split_views(["a"], "generic")


def test_real_scenes_names(shared_data: Path):
    dtu = sorted(p.name for p in (shared_data / "dtu" / "scan24" / "images_4").iterdir())
    s = split_views(dtu, "dtu")
    assert [dtu[i] for i in s.train] == ["000025.png", "000022.png", "000028.png"]
    cape = sorted(p.name for p in (shared_data / "nerd_real" / "gold_cape" / "images_8").iterdir())
    assert len(cape) == 119
    s = split_views(cape, "llff", views=3)
    assert s.test == list(range(0, 119, 8)) and len(s.test) == 15
    # 104 remaining; linspace(0, 103, 3) = 0, 51.5, 103 -> 0, 52 (half to even), 103
    rest = [i for i in range(119) if i % 8]
    assert s.train == [rest[0], rest[52], rest[103]] == [1, 60, 118]
