"""Resolve a fleet template's revision to one commit, once, with ``git ls-remote``.

Owns: asking the repository which commit a branch or tag names (a full commit SHA is its own answer),
with the same credential handling as the source stage (templates/scripts/fetch-source.sh): a token never
appears in the URL or on a command line; it reaches git through ``GIT_ASKPASS`` and the environment. git
sees none of the operator's ``GIT_*`` variables except its TLS trust (:data:`KEPT_GIT_VARIABLES`): a
repository behind a private CA resolves once the operator is given that CA (``GIT_SSL_CAINFO``), as its
servers are.
Must not decide what to roll (pipeline/fleet_rollout.py) and must never log or raise the token.
"""

from __future__ import annotations

import asyncio
import os
import re
import tempfile

from o4o_operator.errors import PermanentError, TransientError
from o4o_operator.redaction import Redactor

COMMIT = re.compile(r"[0-9a-f]{40}")
LS_REMOTE_TIMEOUT_SECONDS = 60.0
KEPT_GIT_VARIABLES = frozenset({"GIT_SSL_CAINFO", "GIT_SSL_CAPATH"})
"""The operator's own git settings that reach ``git ls-remote``: which CAs to trust, nothing else."""
_ASKPASS = """#!/bin/sh
case "$1" in
  Username*) printf '%s\\n' "${O4O_GIT_USERNAME:-x-access-token}" ;;
  *) printf '%s\\n' "$O4O_GIT_TOKEN" ;;
esac
"""


def _write_askpass(directory: str) -> str:
    """The askpass script (it holds no secret: it prints the token from its environment)."""
    askpass = os.path.join(directory, "askpass")
    with open(os.open(askpass, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o700), "w") as file:
        file.write(_ASKPASS)
    return askpass


def _pick(listing: str, revision: str) -> str | None:
    """The commit of ``revision`` in ``git ls-remote`` output: a branch, else a tag (peeled), else None."""
    refs: dict[str, str] = {}
    for line in listing.splitlines():
        commit, _, ref = line.partition("\t")
        refs[ref.strip()] = commit.strip()
    for ref in (f"refs/heads/{revision}", f"refs/tags/{revision}^{{}}", f"refs/tags/{revision}", revision):
        found = refs.get(ref)
        if found and COMMIT.fullmatch(found):
            return found
    return None


async def resolve_revision(repository: str, revision: str, token: str | None = None) -> str:
    """The commit ``revision`` names in ``repository`` now.

    Raises PermanentError ``RevisionNotFound`` when the repository has no such branch or tag, and
    TransientError ``SourceUnavailable`` when git cannot reach it (the message redacted of the token).
    """
    if COMMIT.fullmatch(revision):
        return revision
    redactor = Redactor()
    environment = {key: value for key, value in os.environ.items()
                   if not key.startswith("GIT_") or key in KEPT_GIT_VARIABLES}
    environment["GIT_TERMINAL_PROMPT"] = "0"
    with tempfile.TemporaryDirectory(prefix="o4o-ls-remote-") as private:
        if token:
            redactor.add([token])
            askpass = _write_askpass(private)
            environment |= {"GIT_ASKPASS": askpass, "O4O_GIT_TOKEN": token}
        process = await asyncio.create_subprocess_exec(
            "git", "ls-remote", "--", repository, f"refs/heads/{revision}", f"refs/tags/{revision}",
            f"refs/tags/{revision}^{{}}", env=environment, stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        try:
            output, stderr = await asyncio.wait_for(process.communicate(), LS_REMOTE_TIMEOUT_SECONDS)
        except TimeoutError:
            process.kill()
            await process.wait()
            raise TransientError("SourceUnavailable", f"git ls-remote {repository} timed out") from None
    if process.returncode != 0:
        detail = redactor(stderr.decode(errors="replace").strip())[-500:]
        raise TransientError("SourceUnavailable", f"git ls-remote {repository} failed: {detail}")
    commit = _pick(output.decode(errors="replace"), revision)
    if commit is None:
        raise PermanentError("RevisionNotFound", f"Revision {revision} is not a branch or tag of {repository}")
    return commit
