"""recon.run.load_run reads a run folder written to the documented on-disk format, bit for bit.

The folder is written here by hand (numpy safetensors, plain JSON), not by recon's writers, so a
change of the format (key names, JSON fields, dtypes) breaks this test: existing run folders must
keep loading.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from safetensors.numpy import save_file

from recon.config import TrainConfig, save_config
from recon.errors import ConfigError
from recon.run import RUN_MARKER, is_marked_run, load_run, mark_run, read_cameras


def _write_run_by_hand(run, rng: np.random.Generator) -> dict[str, np.ndarray]:
    run.mkdir()
    save_config(TrainConfig(), run / "config.json")
    viewmats = np.tile(np.eye(4), (3, 1, 1))
    viewmats[:, 2, 3] = [3.0, 4.0, 5.0]
    cameras = {
        "names": ["a.png", "b.png", "c.png"],
        "Ks": np.tile([[50.0, 0, 16], [0, 50.0, 12], [0, 0, 1]], (3, 1, 1)).tolist(),
        "viewmats": viewmats.tolist(),
        "widths": [32, 32, 32],
        "heights": [24, 24, 24],
        "split": {"protocol": "generic", "train": [0, 2], "test": [1]},
        "scene_root": "/somewhere/scene",
        "image_sha1": {"a.png": "0" * 40},
    }
    (run / "cameras.json").write_text(json.dumps(cameras))
    params = {
        "means": rng.normal(size=(7, 3)).astype(np.float32),
        "quats": rng.normal(size=(7, 4)).astype(np.float32),
        "opacities": rng.normal(size=7).astype(np.float32),
    }
    tensors = {f"param/{k}": v for k, v in params.items()}
    tensors["adam/means/exp_avg"] = rng.normal(size=(7, 3)).astype(np.float32)
    tensors["strategy/grad2d"] = rng.random(7).astype(np.float32)
    tensors["rng/torch"] = torch.get_rng_state().numpy()
    ckpt = run / "checkpoints"
    ckpt.mkdir()
    save_file(tensors, str(ckpt / "step_000042.safetensors"))
    state = {
        "schema_version": 1,
        "step": 42,
        "tensors": "step_000042.safetensors",
        "adam": {"means": {"lr": 0.01, "step": 42.0}},
        "strategy": {"round": 2},
        "extra": {"sh_degree": 1, "background": [0.25, 0.5, 1.0]},
    }
    (ckpt / "step_000042.json").write_text(json.dumps(state))
    (ckpt / "latest.json").write_text(json.dumps({"step": 42, "checkpoint": "step_000042.json"}))
    return params


def test_a_run_written_to_the_documented_format_loads_bit_for_bit(tmp_path):
    run = tmp_path / "run"
    params = _write_run_by_hand(run, np.random.default_rng(0))
    loaded = load_run(run)
    assert loaded.step == 42 and loaded.sh_degree == 1 and loaded.primitive == "gaussian"
    assert sorted(loaded.params) == sorted(params)
    for name, value in params.items():
        assert loaded.params[name].dtype == torch.float32
        np.testing.assert_array_equal(loaded.params[name].numpy(), value)  # exact, not close
    assert loaded.background.tolist() == [0.25, 0.5, 1.0]
    assert loaded.names == ["a.png", "b.png", "c.png"] and loaded.scene_root == "/somewhere/scene"
    assert (list(loaded.split.train), list(loaded.split.test), loaded.split.protocol) == ([0, 2], [1], "generic")
    assert loaded.cameras.viewmats[:, 2, 3].tolist() == [3.0, 4.0, 5.0]
    assert loaded.image_hashes == {"a.png": "0" * 40} and loaded.sfm_dir is None
    cams, names, _, _ = read_cameras(run)
    assert names == loaded.names and torch.equal(cams.Ks, loaded.cameras.Ks)


def test_the_run_marker_is_the_documented_file(tmp_path):
    assert not is_marked_run(tmp_path)
    mark_run(tmp_path)
    assert (tmp_path / RUN_MARKER).is_file() and RUN_MARKER == ".recon-run" and is_marked_run(tmp_path)


def test_a_folder_without_config_or_checkpoint_is_not_a_run(tmp_path):
    with pytest.raises(ConfigError, match="not a run directory"):
        load_run(tmp_path)
    save_config(TrainConfig(), tmp_path / "config.json")
    with pytest.raises(ConfigError, match="no checkpoint yet"):
        load_run(tmp_path)
