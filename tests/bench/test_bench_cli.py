"""``recon bench`` end to end on a tiny matrix: run, skip finished cells, resume interrupted ones."""

from __future__ import annotations

import contextlib
import io
import json
import shutil
from pathlib import Path

import pytest
import yaml

import recon.train.cli as train_cli
from recon.bench.executors import LocalExecutor
from recon.bench.matrix import expand, load_bench
from recon.cli import main


@pytest.fixture
def training_calls(monkeypatch):
    """Records every ``run_training`` call (resume flag, run folder) and runs the real one."""
    calls = []
    real = train_cli.run_training

    def counted(config, out, resume=False, **kwargs):
        calls.append((Path(out).name, resume))
        return real(config, out, resume=resume, **kwargs)

    monkeypatch.setattr(train_cli, "run_training", counted)
    return calls


def _mtimes(folder: Path) -> dict[str, int]:
    return {str(p.relative_to(folder)): p.stat().st_mtime_ns for p in folder.rglob("*") if p.is_file()}


def test_runs_every_available_cell_and_reports_the_missing_scene(finished):
    matrix, out, err = finished
    cells = [c for c in expand(load_bench(matrix)) if c.scene.name == "synthetic"]
    records = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert [r["id"] for r in records] == [c.id for c in cells]
    for cell, record in zip(cells, records):
        run = out / "cells" / cell.id
        assert record["config"] == cell.config.to_dict()
        assert json.loads((run / "config.json").read_text()) == cell.config.to_dict()  # an ordinary run folder
        assert record["metrics"] == json.loads((run / "eval" / "metrics.json").read_text())
        assert record["steps"] == 20 and record["num_primitives"] > 0 and record["cpu_seconds"] > 0
        assert record["versions"]["torch"] and record["machine"]["cpus"] >= 1
    # oracle: `recon eval --json` of a cell, run separately, gives the recorded score
    text = io.StringIO()
    with contextlib.redirect_stdout(text):
        assert main(["eval", str(out / "cells" / cells[1].id), "--json", "--no-images"]) == 0
    assert json.loads(text.getvalue())["psnr"] == pytest.approx(records[1]["metrics"]["psnr"], abs=1e-9)
    assert "scene absent: /nonexistent/recon-scene not found, 2 cells skipped" in err and "datasets/README.md" in err
    report = (out / "report.md").read_text()
    assert "## synthetic" in report and "| gaussian | default | 0,1 |" in report
    assert "2 of 4 cells finished" in report and "scene absent" in report


def test_rerun_skips_finished_cells(bench, training_calls):
    matrix, out = bench
    before = _mtimes(out / "cells")
    assert main(["bench", str(matrix), "--out", str(out)]) == 0
    assert training_calls == []
    assert _mtimes(out / "cells") == before
    assert len((out / "results.jsonl").read_text().splitlines()) == 2


def test_interrupted_cell_resumes_from_its_checkpoint(bench, training_calls):
    matrix, out = bench
    runs = sorted((out / "cells").iterdir())
    done, cut = runs[0], runs[1]
    # interrupted after the step-10 checkpoint: no step 20, no evaluation
    for name in ("step_000020.json", "step_000020.safetensors"):
        (cut / "checkpoints" / name).unlink()
    (cut / "checkpoints" / "latest.json").write_text(json.dumps({"step": 10, "checkpoint": "step_000010.json"}))
    shutil.rmtree(cut / "eval")
    (cut / "cell.json").unlink()
    done_before, step10 = _mtimes(done), (cut / "checkpoints" / "step_000010.safetensors").stat().st_mtime_ns
    assert main(["bench", str(matrix), "--out", str(out), "--dry-run"]) == 0
    assert main(["bench", str(matrix), "--out", str(out)]) == 0
    assert training_calls == [(cut.name, True)]  # only the cut cell, resumed (not started over)
    assert (cut / "checkpoints" / "step_000010.safetensors").stat().st_mtime_ns == step10
    assert (cut / "checkpoints" / "step_000020.json").is_file() and (cut / "eval" / "metrics.json").is_file()
    assert _mtimes(done) == done_before
    record = json.loads((cut / "cell.json").read_text())
    assert record["resumed"] and record["steps"] == 20


def test_cell_without_checkpoint_starts_over(bench, training_calls):
    matrix, out = bench
    run = min((out / "cells").iterdir())  # the seed-0 cell
    for name in ("checkpoints", "eval"):
        shutil.rmtree(run / name)
    (run / "cell.json").unlink()
    assert main(["bench", str(matrix), "--out", str(out), "--only", "*-s0-*"]) == 0
    assert training_calls == [(run.name, False)]
    assert (run / "eval" / "metrics.json").is_file()
    # the report still covers the whole matrix, not only the --only selection
    assert len((out / "results.jsonl").read_text().splitlines()) == 2


def test_two_jobs_in_a_process_pool(bench):
    matrix, out = bench
    for run in (out / "cells").iterdir():
        (run / "eval" / "metrics.json").unlink()
        (run / "cell.json").unlink()
    assert main(["bench", str(matrix), "--out", str(out), "--jobs", "2"]) == 0
    records = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert [r["status"] for r in records] == ["done", "done"] and all(r["threads"] >= 1 for r in records)
    # one cell per fresh worker process, so each has its own peak memory (torch alone takes > 100 MB)
    assert all(r["peak_rss_mb"] > 100 for r in records)
    assert all((out / "cells" / r["id"] / "eval" / "metrics.json").is_file() for r in records)


@pytest.mark.parametrize(
    ("cores", "jobs", "cells", "omp", "want"),
    [
        (2, 1, 4, None, 2),
        (2, 2, 4, None, 1),
        (8, 3, 4, None, 2),
        (8, 4, 1, None, 8),
        (2, 4, 4, None, 1),
        (16, 2, 4, 4, 4),
    ],
)
def test_threads_per_job_never_oversubscribe(cores, jobs, cells, omp, want, monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    threads = LocalExecutor(jobs, cores=cores, max_threads=omp).threads_per_job(cells)
    assert threads == want
    assert min(jobs, cells) * threads <= cores or threads == 1  # one thread is the floor


def test_threads_per_job_respects_omp_num_threads(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert LocalExecutor(1, cores=8).threads_per_job(4) == 1


def test_failed_cell_is_reported_and_the_others_run(tmp_path, tiny_matrix):
    TINY = tiny_matrix
    empty = tmp_path / "not-a-scene"
    empty.mkdir()
    matrix = tmp_path / "m.yaml"
    matrix.write_text(
        yaml.safe_dump(
            {
                **TINY,
                "train": {**TINY["train"], "iterations": 5},
                "seeds": [0],
                "scenes": [{"name": "bad", "path": str(empty)}, {"path": "synthetic"}],
            }
        )
    )
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        assert main(["bench", str(matrix), "--out", str(tmp_path / "out")]) == 1
    records = [json.loads(line) for line in (tmp_path / "out" / "results.jsonl").read_text().splitlines()]
    assert [(r["scene"], r["status"]) for r in records] == [("bad", "failed"), ("synthetic", "done")]
    assert str(empty) in records[0]["error"] and "FAILED" in err.getvalue()
    assert "## Failed cells" in (tmp_path / "out" / "report.md").read_text()
    assert not (tmp_path / "out" / "cells" / records[0]["id"]).exists()  # a start failing on its input leaves nothing


def test_ctrl_c_stops_the_whole_benchmark(tmp_path, tiny_matrix, monkeypatch):
    from recon.train.trainer import TrainResult

    calls = []

    def interrupted(config, out, resume=False, **kwargs):  # what training returns after SIGINT
        calls.append(Path(out).name)
        return None, TrainResult(step=5, num_primitives=1, seconds=0.1, last_loss=0.0, last_psnr=0.0, interrupted=True)

    monkeypatch.setattr(train_cli, "run_training", interrupted)
    matrix = tmp_path / "m.yaml"
    matrix.write_text(yaml.safe_dump(tiny_matrix))
    with contextlib.redirect_stderr(io.StringIO()) as err:
        assert main(["bench", str(matrix), "--out", str(tmp_path / "out")]) == 130
    assert len(calls) == 1 and "interrupted" in err.getvalue()  # the second cell never started


def test_executor_and_jobs_errors(finished):
    from recon.bench.executors import make_executor
    from recon.errors import ConfigError

    with pytest.raises(ConfigError, match="--executor 'slurm' is not available.*local, ray"):
        make_executor("slurm")
    matrix, out, _ = finished
    with pytest.raises(ConfigError, match="--jobs 0"):
        main(["--verbose", "bench", str(matrix), "--out", str(out), "--jobs", "0"])


def test_a_driver_killed_after_one_cell_leaves_its_result_and_resumes(bench, training_calls, monkeypatch):
    import recon.bench.cli as bench_cli

    matrix, out = bench
    shutil.rmtree(out / "cells")
    (out / "results.jsonl").unlink()

    class DiesAfterFirstCell(LocalExecutor):
        def run(self, jobs):
            for record in super().run(jobs):
                yield record
                raise KeyboardInterrupt  # the driver dies once the first cell is reported

    real = bench_cli.make_executor
    monkeypatch.setattr(bench_cli, "make_executor", lambda name, jobs, address=None: DiesAfterFirstCell(jobs))
    with contextlib.redirect_stderr(io.StringIO()):
        assert main(["bench", str(matrix), "--out", str(out)]) == 130
    first = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert len(first) == 1 and first[0]["status"] == "done"  # written as soon as the cell finished
    assert [name for name, _ in training_calls] == [first[0]["id"]]
    monkeypatch.setattr(bench_cli, "make_executor", real)
    assert main(["bench", str(matrix), "--out", str(out)]) == 0  # the next start runs only the other cell
    records = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert len(records) == 2 and first[0]["id"] in {r["id"] for r in records}
    assert [name for name, _ in training_calls] == [
        first[0]["id"],
        *(r["id"] for r in records if r["id"] != first[0]["id"]),
    ]
