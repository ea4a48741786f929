"""What a waiting host replays: scripts and API answers recorded once on a sandbox host, keyed so others can reuse them.

Owns: the identity of an SSH command (which host script it runs, read from the rendered script's header line,
never from its values), :class:`ScriptRecording` (the output lines with the moment each came, the shimmed
commands made before each, the exit status) and when a replay writes each line for a given latency per shimmed
command, :class:`HttpRecording` for the instance API's answers, the :class:`Transcript` that holds both by
identity and occurrence, and the renames that make one instance's recording speak of another.

Must not: keep a command's stdin (the ``export`` lines carry the Secrets' values): only its identity; do I/O,
or import asyncssh (:mod:`o4o_operator.testing.waiting_hosts` serves what this module decides).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable

_PID_LINE = re.compile(r"^printf '::o4o::pid ")
_HEADER = re.compile(r"^# +(\S+(?: +\S+){0,2})")
UPLOAD = "upload"
"""An owner's upload (``runuser ... o4o-upload``): its content is written, never replayed as output."""
PROBE = "probe"
"""The connector's first command: the host's ``O4O_ROOT`` and its API stand-in."""
KILL = "kill"
"""The operator stopping a script's process group (on a timeout or a cancel)."""


def command_identity(command: str, stdin: str) -> str:
    """Which host script (or which kind of helper command) this is: the same for every instance.

    A wrapped host script (``bash -s`` with the operator's pid marker first) is named by the first three words
    of its header comment (``# Stage "source": clone ...`` -> ``script Stage "source": clone``), which
    precede every rendered value in each template's header.
    """
    if "O4O_SANDBOX_API" in command:
        return PROBE
    if "o4o-upload" in command:
        return UPLOAD
    lines = stdin.splitlines()
    if lines and lines[0].startswith("kill -TERM --"):
        return KILL
    if len(lines) > 1 and _PID_LINE.match(lines[1]):
        for index in range(len(lines) - 2, 1, -1):  # the last shebang: the host fence's script comes before
            if lines[index].startswith("#!"):
                header = _HEADER.match(lines[index + 1])
                if header:
                    return f"script {header.group(1)}"
        return "script (no header)"
    return "command " + (lines[0][:60] if lines else command[:60])


@dataclasses.dataclass(frozen=True)
class OutputLine:
    seconds: float
    """When the line came, from the command's start, on the recording host (whose shims did not wait)."""
    shim_calls: int
    """Shimmed commands made before the line came."""
    text: str
    stderr: bool = False


@dataclasses.dataclass(frozen=True)
class ScriptRecording:
    lines: tuple[OutputLine, ...]
    seconds: float
    shim_calls: int
    exit_status: int

    def schedule(self, latency: float) -> tuple[list[tuple[float, OutputLine]], float]:
        """When a replay writes each line, and when it exits: as recorded, plus ``latency`` seconds for every
        shimmed command made before (as the sandbox's shims wait before they act)."""
        timed = [(line.seconds + line.shim_calls * latency, line) for line in self.lines]
        end = self.seconds + self.shim_calls * latency
        return timed, max([end, *(at for at, _ in timed)])


@dataclasses.dataclass(frozen=True)
class HttpRecording:
    status: int
    body: bytes
    content_type: str = "application/json"


def http_identity(method: str, path: str) -> str:
    return f"{method.upper()} {path.split('?', 1)[0]}"


class Transcript:
    """Recordings by identity, in the order they were made; shared by the recording host and every replayer (all
    served by one event loop)."""

    def __init__(self) -> None:
        self._scripts: dict[str, list[ScriptRecording]] = {}
        self._answers: dict[str, list[HttpRecording]] = {}

    def add_script(self, identity: str, recording: ScriptRecording) -> None:
        self._scripts.setdefault(identity, []).append(recording)

    def add_answer(self, identity: str, recording: HttpRecording) -> None:
        self._answers.setdefault(identity, []).append(recording)

    def script(self, identity: str, occurrence: int) -> ScriptRecording | None:
        """The ``occurrence``-th recording (0-based) of this script; past the recorded ones, the last."""
        found = self._scripts.get(identity) or []
        return found[min(occurrence, len(found) - 1)] if found else None

    def answer(self, identity: str, occurrence: int) -> HttpRecording | None:
        found = self._answers.get(identity) or []
        return found[min(occurrence, len(found) - 1)] if found else None

    def counts(self) -> dict[str, int]:
        return {**{k: len(v) for k, v in self._scripts.items()}, **{k: len(v) for k, v in self._answers.items()}}


class Occurrences:
    """How often a replaying host has been asked for each identity (its own sequence, as its instance goes)."""

    def __init__(self) -> None:
        self._seen: dict[str, int] = {}

    def next(self, identity: str) -> int:
        occurrence = self._seen.get(identity, 0)
        self._seen[identity] = occurrence + 1
        return occurrence


def renamed(text: str, renames: Iterable[tuple[str, str]]) -> str:
    """The recording's instance names (and what contains them: slugs, domains, paths) as this host's."""
    for old, new in renames:
        text = text.replace(old, new)
    return text
