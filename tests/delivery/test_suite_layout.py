"""The suite's own layout: test modules are imported by basename (rootdir imports, no packages), so two
modules of one name in different directories cannot be collected in one run."""

from __future__ import annotations

import ast
from collections import Counter
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]


def test_no_two_test_modules_share_a_basename() -> None:
    names = Counter(path.name for path in TESTS.rglob("*.py") if path.name != "conftest.py")
    assert [name for name, count in names.items() if count > 1] == []


def test_every_module_scheduled_long_first_exists() -> None:
    """tests/conftest.py's LONG_FIRST names modules by path: a renamed module silently loses its place."""
    tree = ast.parse((TESTS / "conftest.py").read_text())
    assigned = next(node.value for node in tree.body if isinstance(node, ast.Assign)
                    and any(isinstance(target, ast.Name) and target.id == "LONG_FIRST" for target in node.targets))
    long_first = ast.literal_eval(assigned)
    assert long_first and [path for path in long_first if not (TESTS / path).is_file()] == []
