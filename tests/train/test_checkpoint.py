"""Checkpoints: safetensors + JSON only, exact round trip, latest pointer, pruning old ones."""

from __future__ import annotations

import json
import struct

import torch

from recon.train.checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint


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
    assert files == ["latest.json", "step_000020.json", "step_000020.safetensors",
                     "step_000030.json", "step_000030.safetensors"]
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
