"""The spec's declared install-time steps: the admin account command and ``spec.postInstall``.

Owns: :class:`PostInstallStep` (a command or a request to the instance's own API, run once per
instance), the word rule for declared commands (plain characters plus the two credential
placeholders ``${O4O_ADMIN_EMAIL}`` and ``${O4O_ADMIN_PASSWORD}``, which the host script expands
from its environment), O4O's default admin command and the digest that keys a step's marker.
Pure data: imports no client or framework, and never sees a credential's value.
"""

from __future__ import annotations

import enum
import hashlib
import json
import re
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator
from pydantic.alias_generators import to_camel

ADMIN_PLACEHOLDERS = ("O4O_ADMIN_EMAIL", "O4O_ADMIN_PASSWORD")
"""The only variables a declared word may name, as ``${NAME}``; their values come from the operator-owned
Secret ``<name>-database`` (keys ADMIN_EMAIL, ADMIN_PASSWORD), through the script's environment."""
_PLACEHOLDER = r"\$\{(?:O4O_ADMIN_EMAIL|O4O_ADMIN_PASSWORD)\}"
DECLARED_WORD_PATTERN = rf"^(?:[A-Za-z0-9_@%+=:,./-]|{_PLACEHOLDER})+$"
"""A command word: the build's plain characters, or a credential placeholder, in any mix."""
PLACEHOLDER_SPLIT = re.compile(rf"({_PLACEHOLDER})")
STEP_NAME_PATTERN = r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$"
REQUEST_PATH_PATTERN = r"^/[A-Za-z0-9._~/%:@+,=-]*(\?[A-Za-z0-9._~/%:@+,=&-]*)?$"
MAX_WORDS = 32
MAX_BODY_BYTES = 8192

ADMIN_COMMAND_DEFAULT = ("npx", "tsx", "src/scripts/create-admin-user.ts", "--email=${O4O_ADMIN_EMAIL}",
                         "--password=${O4O_ADMIN_PASSWORD}")
"""O4O's ``create-admin`` script (apps/api-server/package.json); it leaves an existing email alone.
It takes the password in argv, so the password is visible in the process list while it runs."""

_WORD = re.compile(DECLARED_WORD_PATTERN)
_NAME = re.compile(STEP_NAME_PATTERN)
_PATH = re.compile(REQUEST_PATH_PATTERN)


def check_word(value: str) -> str:
    if len(value) > 255 or not _WORD.fullmatch(value):
        raise ValueError("must be a word of plain characters (at most 255), optionally with ${O4O_ADMIN_EMAIL} "
                         "or ${O4O_ADMIN_PASSWORD}")
    return value


def _check_name(value: str) -> str:
    if not _NAME.fullmatch(value):
        raise ValueError("must be a DNS label such as seed-pages")
    return value


def _check_path(value: str) -> str:
    if len(value) > 512 or not _PATH.fullmatch(value) or "/../" in f"{value}/" or "//" in value:
        raise ValueError("must be an absolute URL path of plain characters such as /api/v1/admin/settings")
    return value


DeclaredWord = Annotated[str, AfterValidator(check_word)]
StepName = Annotated[str, AfterValidator(_check_name)]
RequestPath = Annotated[str, AfterValidator(_check_path)]


class _Spec(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, frozen=True, extra="ignore")


class HttpMethod(enum.StrEnum):
    GET = "GET"
    POST = "POST"
    PUT = "PUT"
    PATCH = "PATCH"
    DELETE = "DELETE"


class PostInstallRequest(_Spec):
    """A call to the instance's own API on 127.0.0.1, as the operator's admin account."""

    method: HttpMethod = HttpMethod.POST
    path: RequestPath
    body: dict[str, Any] | None = None
    """Sent as JSON; never a secret (it is rendered into the script)."""

    @model_validator(mode="after")
    def _bounded(self) -> PostInstallRequest:
        if self.body is not None and len(json.dumps(self.body)) > MAX_BODY_BYTES:
            raise ValueError(f"body must encode to at most {MAX_BODY_BYTES} bytes of JSON")
        return self


class PostInstallStep(_Spec):
    """One declared step after the apps: exactly one of ``command`` (run as the app user in the live
    release's API directory with the .env loaded) or ``request``. Run once per instance; a changed step
    (another digest) runs again. Any failure stalls ``PostInstallFailed`` naming the step."""

    name: StepName
    command: tuple[DeclaredWord, ...] | None = Field(default=None, min_length=1, max_length=MAX_WORDS)
    request: PostInstallRequest | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> PostInstallStep:
        if (self.command is None) == (self.request is None):
            raise ValueError("set exactly one of command or request")
        return self

    @property
    def digest(self) -> str:
        """Keys the step's marker: what it does, not only its name."""
        shape = {"name": self.name, "command": list(self.command or ()),
                 "request": self.request.model_dump(mode="json") if self.request else None}
        return hashlib.sha256(json.dumps(shape, sort_keys=True).encode()).hexdigest()[:16]


def unique_step_names(steps: tuple[PostInstallStep, ...]) -> tuple[PostInstallStep, ...]:
    seen: set[str] = set()
    for index, step in enumerate(steps):
        if step.name in seen:
            raise ValueError(f"spec.postInstall[{index}]: the name {step.name!r} is used twice")
        seen.add(step.name)
    return steps
