"""The output marker protocol scripts use to talk back to the operator.

Owns: parsing of ``::o4o::result key=value``, ``::o4o::permanent reason=X ...``
and ``::o4o::transient reason=X ...`` lines (see :mod:`o4o_operator.rendering`
for the protocol), and the host fence's refusal (``::o4o::fenced ...`` with its
own exit status, ``templates/scripts/_fence.sh``). It sits on the ground floor beside :mod:`o4o_operator.errors`:
the templates speak it (rendering) and the SSH session reads it (providers), and
neither of those may import the other. Purely computational: no I/O.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable

PREFIX = "::o4o::"
_RESULT = re.compile(r"^::o4o::result ([A-Za-z][A-Za-z0-9_.-]*)=(.*)$")
_FAILURE = re.compile(r"^::o4o::(permanent|transient) reason=([A-Z][A-Za-z0-9]*)(?: (.*))?$")


@dataclasses.dataclass(frozen=True)
class FailureMarker:
    """A script's own verdict on why it failed."""

    permanent: bool
    reason: str
    message: str


def parse_results(lines: Iterable[str]) -> dict[str, str]:
    """Every ``::o4o::result key=value`` line, later lines winning."""
    results: dict[str, str] = {}
    for line in lines:
        match = _RESULT.fullmatch(line.rstrip("\r\n"))
        if match:
            results[match.group(1)] = match.group(2)
    return results


def parse_failure(line: str) -> FailureMarker | None:
    """The failure marker on this line, if it is one (reason must be CamelCase).

    Its length is not bounded here: :class:`o4o_operator.errors.StageError` bounds every reason.
    """
    match = _FAILURE.fullmatch(line.rstrip("\r\n"))
    if not match:
        return None
    return FailureMarker(match.group(1) == "permanent", match.group(2), (match.group(3) or "").strip())


def last_failure(lines: Iterable[str]) -> FailureMarker | None:
    """The last failure marker among the lines, if any."""
    found: FailureMarker | None = None
    for line in lines:
        found = parse_failure(line) or found
    return found


FENCED_MARKER = "::o4o::fenced"
"""The line the host fence prints when it refuses a script: ``::o4o::fenced epoch=<ours> recorded=<theirs>``."""
FENCED_EXIT_STATUS = 75
"""The host fence's exit status when it refuses (EX_TEMPFAIL): the operator stops, the instance is not stalled."""


def refusal_reason(line: str) -> str | None:
    """The host fence's refusal, from its marker line, as a sentence; None for any other line."""
    if not line.startswith(FENCED_MARKER):
        return None
    fields = dict(part.split("=", 1) for part in line[len(FENCED_MARKER):].split() if "=" in part)
    return (f"the server refused epoch {fields.get('epoch', '?')}: it has seen epoch "
            f"{fields.get('recorded', '?')} (a newer leader)")
