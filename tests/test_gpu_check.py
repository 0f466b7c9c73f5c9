"""scripts/gpu_check.sh: valid bash, the answer without a GPU, stages that fail without hiding others.

The GPU stages themselves run only on a machine with a GPU; here GPU_CHECK_FORCE runs the cheap
``env`` stage for real and two stages with a 1 s timeout, which must be recorded as timed out.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "gpu_check.sh"

pytestmark = pytest.mark.skipif(
    shutil.which("bash") is None or shutil.which("timeout") is None, reason="needs bash and coreutils timeout"
)


def _run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(SCRIPT), *args], cwd=REPO, env={**os.environ, **env}, capture_output=True,
                          text=True, timeout=300, check=False)  # fmt: skip


def test_script_is_valid_bash():
    proc = subprocess.run(["bash", "-n", str(SCRIPT)], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr


@pytest.mark.skipif(torch.cuda.is_available(), reason="with a GPU the script runs the real check")
def test_without_a_gpu_it_writes_cuda_false_and_exits_0(tmp_path):
    out = tmp_path / "out"
    proc = _run({"OUT": str(out)})  # the folder from $OUT when no argument is given
    assert proc.returncode == 0, proc.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["cuda"] is False and summary["stages"] == {} and summary["torch"] == torch.__version__


def test_every_stage_records_its_own_outcome(tmp_path):
    env = {"GPU_CHECK_FORCE": "1", "GPU_CHECK_ONLY": "env,tests,dtu", "GPU_CHECK_TIMEOUT_TESTS": "1",
           "GPU_CHECK_TIMEOUT_DTU": "1"}  # fmt: skip
    proc = _run(env, str(tmp_path))
    assert proc.returncode == 1, proc.stdout + proc.stderr  # a stage failed
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert list(summary["stages"]) == ["env", "tests", "dtu"] and summary["ok"] is False
    env_stage = summary["stages"]["env"]
    assert env_stage["ok"] and not env_stage["timed_out"]
    assert env_stage["result"]["torch"] == torch.__version__
    assert env_stage["result"]["cuda"] == torch.cuda.is_available()
    for name in ("tests", "dtu"):
        stage = summary["stages"][name]
        assert stage["timed_out"] and not stage["ok"] and stage["rc"] in (124, 137), stage
        assert (tmp_path / stage["log"]).is_file()
