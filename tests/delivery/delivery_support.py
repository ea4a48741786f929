"""Paths and small helpers shared by the delivery tests (imported by name: tests/delivery is on sys.path)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
MANIFESTS = REPO / "manifests"
HERE = Path(__file__).resolve().parent

Render = Callable[[Path], list[dict[str, Any]]]
