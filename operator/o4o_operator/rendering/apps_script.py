"""What the apps script is rendered from: declared words, wanted apps by spec index, post-install steps.

Owns: turning a declared command (``spec.build.api.adminCommand``, ``spec.postInstall[i].command``)
into bash words in which only the credential placeholders expand, from the script's environment, at run
time (the values are never rendered); the ``spec.apps[i]`` each wanted app is reported under; and the
rendered shape of each post-install step with the digest that keys its marker. Pure: no I/O.
"""

from __future__ import annotations

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


def _step(index: int, step: PostInstallStep) -> dict[str, Any]:
    rendered: dict[str, Any] = {"field": f"spec.postInstall[{index}]", "name": step.name,
                                "marker": f"{step.name}.{step.digest}"}
    if step.command is not None:
        rendered.update(kind="command", words=shell_words(step.command), program=step.command[0])
    else:
        assert step.request is not None
        body = None if step.request.body is None else json.dumps(step.request.body, sort_keys=True,
                                                                 separators=(",", ":"))
        rendered.update(kind="request", method=step.request.method.value, path=step.request.path, body=body)
    return rendered


def apps_variables(context: HostContext) -> dict[str, Any]:
    """The apps script's variables besides ``ctx``."""
    return {
        "admin_words": shell_words(context.admin_command),
        "admin_program": context.admin_command[0],
        "admin_marker": "admin." + hashlib.sha256(json.dumps(context.admin_command).encode()).hexdigest()[:16],
        "wanted": [(f"spec.apps[{index}]", app) for index, app in enumerate(context.apps)],
        "steps": [_step(index, step) for index, step in enumerate(context.post_install)],
    }
