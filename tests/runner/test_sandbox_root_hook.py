"""Issue 13.13: the sandbox root (``O4O_ROOT``) is a test hook the shipped operator never honours.

No setting or environment variable turns it on; only ``o4o_operator.testing.operator_main`` does, in
Python. (tests/host/test_ssh_sandbox.py proves the shipped connector ignores a host's ``O4O_ROOT``.)
"""

from __future__ import annotations

import sys

import kopf
import pytest

from o4o_operator import handlers
from o4o_operator.runner.settings import OperatorSettings


def fresh_runtime() -> kopf.Memo:
    """A fresh operator memo, as after startup and login: the runtime is built from it on first use."""
    memo = kopf.Memo(shared={})
    handlers._state(memo).credentials = handlers.credentials_from(kopf.ConnectionInfo(server="https://127.0.0.1:9"))
    return memo


def test_no_environment_variable_makes_the_shipped_operator_honour_the_sandbox_root(
        monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("O4O_ROOT", "O4O_HONOUR_SANDBOX_ROOT", "O4O_SANDBOX_ROOT"):
        monkeypatch.setenv(name, "1")
    assert not any("root" in name for name in vars(OperatorSettings.from_environment()))
    runtime = handlers._runtime(fresh_runtime())
    assert runtime.connector.honours_sandbox_root is False  # type: ignore[attr-defined]


def test_only_the_testing_entry_point_turns_it_on(monkeypatch: pytest.MonkeyPatch) -> None:
    from o4o_operator import cli
    from o4o_operator.testing import operator_main

    monkeypatch.setattr(handlers, "HONOUR_SANDBOX_ROOT", False)
    monkeypatch.setattr(cli, "main", lambda argv: 0)  # the hook is set before the shipped CLI runs
    monkeypatch.setitem(sys.modules, "kubernetes", sys.modules.get("kubernetes"))
    assert operator_main.main(["run", "-A"]) == 0
    runtime = handlers._runtime(fresh_runtime())
    assert runtime.connector.honours_sandbox_root is True  # type: ignore[attr-defined]
