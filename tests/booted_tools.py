"""What the booted-host tiers (tests/real, tests/realhosts) need of the machine: root and some Debian tools.

Owns: :func:`skip_without_root_or`, which skips the test naming what is missing (the Debian packages to
install, as ``make debian-packages`` does). Must not: install anything itself.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping

import pytest

BOOT_TOOLS = {"debootstrap": "debootstrap", "systemd-nspawn": "systemd-container", "tinyproxy": "tinyproxy",
              "ip": "iproute2", "ssh": "openssh-client"}
"""Tool -> the Debian package that has it: what booting a host and reaching it takes."""


def skip_without_root_or(tools: Mapping[str, str], root_reason: str) -> None:
    """Skip unless running as root (``root_reason`` says why root) with every tool of ``tools`` on PATH."""
    if os.geteuid() != 0:
        pytest.skip(root_reason)
    missing = sorted({package for tool, package in tools.items() if not shutil.which(tool)})
    if missing:
        pytest.skip(f"missing Debian packages {', '.join(missing)} (make debian-packages)")
