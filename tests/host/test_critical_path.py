"""The booted-host worker's processes, those it started and those it starts later, run at a higher priority."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent.parent

PROBE = """
import os, subprocess, sys
sys.path.insert(0, sys.argv[1])
import critical_path
before = subprocess.Popen(["sleep", "30"])
critical_path.put_first()
critical_path.put_first()
after = subprocess.run(["sh", "-c", "cut -d ' ' -f 19 /proc/self/stat"], capture_output=True, text=True)
print(os.getpriority(os.PRIO_PROCESS, 0), os.getpriority(os.PRIO_PROCESS, before.pid), after.stdout.strip())
before.kill()
"""


@pytest.mark.skipif(os.geteuid() != 0, reason="only root raises a priority (and only root boots hosts)")
def test_the_worker_its_children_and_its_later_children_run_at_nice_minus_ten() -> None:
    probe = subprocess.run([sys.executable, "-c", PROBE, str(TESTS)], capture_output=True, text=True, check=True,
                           timeout=30)
    assert probe.stdout.split() == ["-10", "-10", "-10"], probe.stdout + probe.stderr
