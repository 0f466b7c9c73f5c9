"""``recon bench --executor ray`` on a local Ray instance with 2 CPUs (skipped when Ray cannot start).

Oracles: the local executor's records of the same matrix (deterministic CPU kernels: the same
numbers), each cell's own ``eval/metrics.json``, and injected failures whose kind is known.
"""

from __future__ import annotations

import contextlib
import io
import json
import socket
import sys

import pytest
import yaml

from recon.bench.executors import CellJob, make_executor
from recon.bench.matrix import expand, load_bench
from recon.bench.ray_executor import CELL_RAISED, WORKER_DIED, RayExecutor, cell_resources, check_reachable
from recon.cli import main
from recon.errors import ConfigError
from tests.bench.ray_cells import flaky_cell


@pytest.fixture(scope="module")
def ray_instance():
    """A local Ray instance with 2 CPUs for the whole module; the executors join it."""
    ray = pytest.importorskip("ray")
    try:
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="WARNING")
    except Exception as err:  # noqa: BLE001 - any start failure (no /dev/shm, sandbox) is a skip
        pytest.skip(f"a local Ray instance cannot start here: {err}")
    yield ray
    ray.shutdown()


def _results(out):
    return [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]


def _bench(*args) -> tuple[int, str]:
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        status = main(["bench", *map(str, args)])
    return status, err.getvalue()


def test_two_cells_through_ray_match_the_local_executor(ray_instance, finished, tmp_path):
    matrix, local_out, _ = finished  # the same matrix, run by the local executor
    status, err = _bench(matrix, "--out", tmp_path / "out", "--executor", "ray", "--jobs", 2)
    assert status == 0, err
    ray_records, local_records = _results(tmp_path / "out"), _results(local_out)
    assert [r["id"] for r in ray_records] == [r["id"] for r in local_records] and len(ray_records) == 2
    for got, want in zip(ray_records, local_records):
        assert got["status"] == "done" and got["attempts"] == 1 and got["threads"] == 1  # 2 CPUs / 2 jobs
        assert got["config"] == want["config"] and got["steps"] == want["steps"] == 20
        # equal on one thread each (OMP_NUM_THREADS=1); other thread counts may reorder float sums
        same = got["threads"] == want["threads"]
        assert got["metrics"]["psnr"] == pytest.approx(want["metrics"]["psnr"], abs=1e-6 if same else 1e-2)
        assert got["metrics"]["ssim"] == pytest.approx(want["metrics"]["ssim"], abs=1e-8 if same else 1e-4)
        assert got["num_primitives"] == want["num_primitives"]
        run = tmp_path / "out" / "cells" / got["id"]
        assert json.loads((run / "eval" / "metrics.json").read_text()) == got["metrics"]
        assert got["peak_rss_mb"] > 100  # a fresh worker process per cell (max_calls=1): its own peak
    assert "scene absent" in err and "datasets/" in err


def _jobs(matrix_dict, tmp_path) -> list[CellJob]:
    path = tmp_path / "m.yaml"
    path.write_text(yaml.safe_dump(matrix_dict))
    cells = [c for c in expand(load_bench(path)) if c.available]
    labels = [{"scene": c.scene.name, "primitive": c.primitive, "setting": c.setting, "seed": c.seed} for c in cells]
    return [
        CellJob(c.id, str(tmp_path / "out" / "cells" / c.id), c.config.to_dict(), lab, 1)
        for c, lab in zip(cells, labels)
    ]


def test_failed_attempts_are_retried_once_then_reported(ray_instance, tiny_matrix, tmp_path):
    empty = tmp_path / "not-a-scene"  # a scene that fails every attempt
    empty.mkdir()
    tiny_matrix["train"].update(iterations=5, checkpoint_every=5)
    tiny_matrix["scenes"] = [{"name": "bad", "path": str(empty)}, {"path": "synthetic"}]
    jobs = [j for j in _jobs(tiny_matrix, tmp_path) if j.labels["scene"] == "synthetic" or j.labels["seed"] == 0]
    (tmp_path / "out" / "cells").mkdir(parents=True)
    records = {(r["scene"], r["seed"]): r for r in RayExecutor(jobs=2, runner=flaky_cell).run(jobs)}
    assert set(records) == {("bad", 0), ("synthetic", 0), ("synthetic", 1)}
    for seed, kind in ((0, CELL_RAISED), (1, WORKER_DIED)):  # failed once (injected), then finished
        record = records["synthetic", seed]
        assert record["status"] == "done" and record["attempts"] == 2 and record["steps"] == 5
        assert [f["kind"] for f in record["failures"]] == [kind]
        assert (tmp_path / "out" / "cells" / record["id"] / "eval" / "metrics.json").is_file()
    assert "injected failure" in records["synthetic", 0]["failures"][0]["error"]
    bad = records["bad", 0]
    assert (bad["status"], bad["attempts"]) == ("failed", 2)
    assert [f["kind"] for f in bad["failures"]] == [CELL_RAISED, CELL_RAISED] and str(empty) in bad["error"]
    assert ray_instance.is_initialized()  # an instance the executor joined is left running


def test_cell_resources_follow_threads_and_device():
    job = CellJob("c", "/x", {"device": "cpu"}, {}, threads=3)
    assert cell_resources(job) == {"num_cpus": 3, "num_gpus": 0}
    assert cell_resources(CellJob("c", "/x", {"device": "cuda:0"}, {}, 2)) == {"num_cpus": 2, "num_gpus": 1}


def test_unreachable_or_malformed_address_is_one_clear_error():
    with socket.socket() as s:  # a port nothing listens on: bound, then closed
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(ConfigError, match=f"--address 127.0.0.1:{port}: cannot reach the Ray cluster"):
        check_reachable(f"127.0.0.1:{port}", timeout=2)
    with pytest.raises(ConfigError, match="expected HOST:PORT"):
        check_reachable("head-node")
    with socket.socket() as server:  # something listening: accepted
        server.bind(("127.0.0.1", 0))
        server.listen()
        check_reachable(f"ray://127.0.0.1:{server.getsockname()[1]}", timeout=2)


def test_missing_ray_and_address_without_ray_executor(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now raises ImportError
    with pytest.raises(ConfigError, match=r"needs Ray, which is not installed") as info:
        make_executor("ray")
    assert "recon[cluster]" in str(info.value)
    with pytest.raises(ConfigError, match="only --executor ray joins a cluster"):
        make_executor("local", address="10.0.0.5:6379")
