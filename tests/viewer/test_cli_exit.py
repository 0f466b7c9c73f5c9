"""`recon view` ends on Ctrl-C even when a thread it does not own would keep the interpreter alive."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SCRIPT = """
import threading, time
from viewer.cli import _exit_soon
threading.Thread(target=time.sleep, args=(3600,)).start()  # non-daemon: a plain exit would wait an hour
print("stopping", flush=True)
_exit_soon(0.5)
"""


def test_exit_soon_ends_a_process_a_lingering_thread_would_hold():
    repo = Path(__file__).resolve().parents[2]
    proc = subprocess.run([sys.executable, "-c", SCRIPT], cwd=repo, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and proc.stdout.strip() == "stopping", proc.stderr
