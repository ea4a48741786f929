"""The host fence's comparison in bash agrees with :class:`Epoch`'s order, pair by pair.

The rendered ``_fence.sh`` runs in a local bash with ``O4O_ROOT`` a temporary directory (its state under
``$O4O_ROOT/var/lib/o4o``), as a sandbox host runs it, with no sshd: a script under ``epoch`` on a server that
recorded ``recorded`` is refused exactly when ``epoch < recorded``, and the newer of the two is recorded.
"""

from __future__ import annotations

import itertools
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from o4o_operator.markers import FENCED_EXIT_STATUS
from o4o_operator.pipeline.epoch import Epoch
from o4o_operator.rendering import render

TOKENS = ("0", "7", "12", "1.0", "5.3", "5.4", "12.1", "999999999999999999.0")
"""Older operators' plain numbers, and ours: equal revisions, equal transitions, a plain number above a revision,
and the largest parts the fence takes."""

pytestmark = pytest.mark.skipif(shutil.which("flock") is None, reason="the fence needs flock (util-linux)")


def run_fence(root: Path, epoch: str) -> subprocess.CompletedProcess[str]:
    script = render.render_fence() + 'touch "$O4O_ROOT/ran"\n'
    return subprocess.run(["bash", "-c", script], capture_output=True, text=True, check=False, timeout=30,
                          env={"PATH": os.environ["PATH"], "O4O_ROOT": str(root), "O4O_EPOCH": epoch})


def test_every_pair_is_ordered_as_the_operator_orders_it(tmp_path: Path) -> None:
    for index, (recorded, epoch) in enumerate(itertools.product(TOKENS, TOKENS)):
        root = tmp_path / str(index)
        (root / "var/lib/o4o").mkdir(parents=True)
        (root / "var/lib/o4o/fence-epoch").write_text(f"{recorded}\n")
        ran = run_fence(root, epoch)
        refused = Epoch.from_token(epoch) < Epoch.from_token(recorded)
        assert (ran.returncode == FENCED_EXIT_STATUS) is refused, (recorded, epoch, ran.returncode, ran.stderr)
        assert (root / "ran").exists() is not refused, (recorded, epoch)
        newest = max(recorded, epoch, key=Epoch.from_token)
        assert (root / "var/lib/o4o/fence-epoch").read_text() == f"{newest}\n", (recorded, epoch)
        if refused:
            assert f"::o4o::fenced epoch={epoch} recorded={recorded}" in ran.stdout


@pytest.mark.parametrize("recorded", ["", "garbage", "1.2.3", "1234567890123456789.0", "-5"])
def test_a_record_that_is_no_epoch_reads_as_the_oldest(tmp_path: Path, recorded: str) -> None:
    (tmp_path / "var/lib/o4o").mkdir(parents=True)
    (tmp_path / "var/lib/o4o/fence-epoch").write_text(f"{recorded}\n")
    ran = run_fence(tmp_path, "1.0")
    assert ran.returncode == 0, ran.stderr
    assert (tmp_path / "var/lib/o4o/fence-epoch").read_text() == "1.0\n"


@pytest.mark.parametrize("epoch", ["", "1.2.3", "x", "1234567890123456789"])
def test_a_script_sent_under_no_epoch_runs_nothing(tmp_path: Path, epoch: str) -> None:
    ran = run_fence(tmp_path, epoch)
    assert ran.returncode == 1 and f"Refused: O4O_EPOCH={epoch} is no fencing epoch" in ran.stderr
    assert not (tmp_path / "ran").exists()


def test_the_fence_parses_and_passes_shellcheck(tmp_path: Path) -> None:
    path = tmp_path / "fence.sh"
    path.write_text("#!/bin/bash\n" + render.render_fence())
    parsed = subprocess.run(["bash", "-n", str(path)], capture_output=True, text=True, check=False)
    assert parsed.returncode == 0, parsed.stderr
    shellcheck = shutil.which("shellcheck")
    if shellcheck is None:
        pytest.skip("shellcheck is not installed (make debian-packages)")
    checked = subprocess.run([shellcheck, "--shell=bash", "--severity=style", str(path)],
                             capture_output=True, text=True, check=False)
    assert checked.returncode == 0, checked.stdout
