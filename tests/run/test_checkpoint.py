"""Checkpoints: safetensors + JSON only, exact round trip, latest pointer, pruning old ones."""

from __future__ import annotations

import json
import logging
import struct

import pytest
import torch

from recon.errors import ConfigError
from recon.run import find_checkpoint, latest_checkpoint, load_checkpoint, save_checkpoint


def test_round_trip_and_no_pickle(tmp_path):
    params = {"means": torch.nn.Parameter(torch.randn(5, 3)), "opacities": torch.nn.Parameter(torch.randn(5))}
    opts = {k: torch.optim.Adam([p], lr=0.01) for k, p in params.items()}
    (params["means"] ** 2).sum().backward()
    params["opacities"].sum().backward()
    for o in opts.values():
        o.step()
    state = {"grad2d": torch.rand(5), "round": 3}
    for step in (10, 20, 30):
        path = save_checkpoint(tmp_path, step, params, opts, state, {"sh_degree": 1}, keep=2)
    assert latest_checkpoint(tmp_path) == path
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == [
        "latest.json",
        "step_000020.json",
        "step_000020.safetensors",
        "step_000030.json",
        "step_000030.safetensors",
    ]
    raw = (tmp_path / "step_000030.safetensors").read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])  # safetensors: 8-byte header length, then a JSON header
    json.loads(raw[8 : 8 + n])
    assert b"\x80\x04" not in raw[:2]  # not a pickle stream
    ck = load_checkpoint(path)
    assert ck.step == 30 and ck.extra == {"sh_degree": 1} and ck.strategy["round"] == 3
    torch.testing.assert_close(ck.params["means"], params["means"].detach())
    torch.testing.assert_close(ck.adam["means"]["exp_avg"], opts["means"].state[params["means"]]["exp_avg"])
    torch.testing.assert_close(ck.strategy["grad2d"], state["grad2d"])
    assert ck.adam_meta["means"]["step"] == 1.0
    torch.testing.assert_close(ck.rng, torch.get_rng_state())


def _three_checkpoints(tmp_path):
    params = {"means": torch.nn.Parameter(torch.zeros(4, 3))}
    saved = {}
    for step in (10, 20, 30):
        with torch.no_grad():
            params["means"].normal_()
        save_checkpoint(tmp_path, step, params, {}, {}, keep=3)
        saved[step] = params["means"].detach().clone()
    return saved


def test_truncated_newest_checkpoint_falls_back_to_the_previous_one(tmp_path, caplog):
    saved = _three_checkpoints(tmp_path)
    newest = tmp_path / "step_000030.safetensors"
    newest.write_bytes(newest.read_bytes()[:40])  # a crash or a full disk mid-copy
    with pytest.raises(ConfigError, match="cannot read the checkpoint"):
        load_checkpoint(tmp_path / "step_000030.json")
    with caplog.at_level(logging.WARNING):
        ck = find_checkpoint(tmp_path)
    assert ck.step == 20 and torch.equal(ck.params["means"], saved[20])
    assert "using step 20" in caplog.text and "step_000030" in caplog.text


def test_empty_latest_pointer_falls_back_to_the_newest_readable(tmp_path, caplog):
    saved = _three_checkpoints(tmp_path)
    (tmp_path / "latest.json").write_text("")
    assert latest_checkpoint(tmp_path) is None
    with caplog.at_level(logging.WARNING):
        ck = find_checkpoint(tmp_path)
    assert ck.step == 30 and torch.equal(ck.params["means"], saved[30])
    assert "latest.json is unreadable" in caplog.text
    (tmp_path / "step_000030.json").write_text("{")  # and the newest state file cut short
    assert find_checkpoint(tmp_path).step == 20


def test_a_chosen_step_loads_exactly_that_checkpoint(tmp_path):
    saved = _three_checkpoints(tmp_path)
    assert torch.equal(find_checkpoint(tmp_path, step=10).params["means"], saved[10])
    with pytest.raises(ConfigError, match="no checkpoint at step 15.*10, 20, 30"):
        find_checkpoint(tmp_path, step=15)
    assert find_checkpoint(tmp_path / "none") is None


def test_non_finite_tensors_are_never_saved_nor_loaded(tmp_path):
    _three_checkpoints(tmp_path)
    bad = {"means": torch.nn.Parameter(torch.tensor([[0.0, float("nan"), 1.0]]))}
    with pytest.raises(ValueError, match="non-finite tensors: param/means"):
        save_checkpoint(tmp_path, 40, bad, {}, {}, keep=3)
    assert latest_checkpoint(tmp_path).name == "step_000030.json" and not list(tmp_path.glob("*40*"))
    # a run written before this check: the diverged checkpoint is skipped
    from safetensors.torch import save_file

    save_file({"param/means": torch.full((4, 3), float("inf"))}, str(tmp_path / "step_000030.safetensors"))
    assert find_checkpoint(tmp_path).step == 20
