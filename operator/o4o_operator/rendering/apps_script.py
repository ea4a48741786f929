"""What the apps scripts (``apps``, ``apps-ledger``) are rendered from: declared words, post-install steps,
and what the ledger records.

Owns: turning a declared command (``spec.build.api.adminCommand``, ``spec.postInstall[i].command``)
into bash words in which only the credential placeholders expand, from the script's environment, at run
time (the values are never rendered); the marker each post-install step is recorded under (its name and
the digest of what it does); and :class:`AppsLedger`, one change to root's record on the host (apps
recorded or forgotten, steps marked, and at most one post-install command run first). The instance's API
is the operator's to speak (``runner/apps_step.py``): nothing here renders a request. Pure: no I/O.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from typing import Any

from o4o_operator.rendering.host_context import HostContext
from o4o_operator.spec_install import PLACEHOLDER_SPLIT, PostInstallStep


def _quote(value: str) -> str:
    return "'" + value.replace("'", "'\\''") + "'"


def shell_word(word: str) -> str:
    """One bash word: literal parts single-quoted, each ``${O4O_ADMIN_*}`` as a double-quoted expansion."""
    parts = [part for part in PLACEHOLDER_SPLIT.split(word) if part]
    rendered = [f'"{part}"' if PLACEHOLDER_SPLIT.fullmatch(part) else _quote(part) for part in parts]
    return "".join(rendered) or "''"


def shell_words(words: tuple[str, ...]) -> str:
    return " ".join(shell_word(word) for word in words)


def step_marker(step: PostInstallStep) -> str:
    """The name of the file that records that ``step`` ran (a changed step has another one)."""
    return f"{step.name}.{step.digest}"


@dataclasses.dataclass(frozen=True)
class AppsLedger:
    """One change to root's record of the apps stage (``apps-ledger``)."""

    record: tuple[str, ...] = ()
    """App ids this operator installed (or adopted as wanted)."""
    forget: tuple[str, ...] = ()
    """App ids it removed."""
    steps: tuple[str, ...] = ()
    """Markers (:func:`step_marker`) of post-install steps that ran."""
    command: int | None = None
    """The index of the post-install command step to run before recording anything."""


def _command(index: int, step: PostInstallStep) -> dict[str, Any]:
    assert step.command is not None, f"spec.postInstall[{index}] is no command"
    return {"field": f"spec.postInstall[{index}]", "name": step.name, "words": shell_words(step.command),
            "program": step.command[0]}


def apps_variables(context: HostContext) -> dict[str, Any]:
    """The apps script's variables besides ``ctx``."""
    return {
        "admin_words": shell_words(context.admin_command),
        "admin_program": context.admin_command[0],
        "admin_marker": "admin." + hashlib.sha256(json.dumps(context.admin_command).encode()).hexdigest()[:16],
        "steps": [{"name": step.name} for step in context.post_install],
    }


def ledger_variables(context: HostContext, ledger: AppsLedger) -> dict[str, Any]:
    """The apps-ledger script's variables besides ``ctx``."""
    command = None if ledger.command is None else _command(ledger.command, context.post_install[ledger.command])
    return {"ledger": {"record": list(ledger.record), "forget": list(ledger.forget), "steps": list(ledger.steps),
                       "command": command}}
