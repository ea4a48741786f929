"""The Secrets one instance reads during one pass of its worker: each read once, its values redacted.

Owns: :class:`SecretCache`, which reads a Secret by name for the spec field that references it (so that a
missing one stalls naming that field), keeps it (or the error) for the rest of the pass, and adds every
secret value read to the log's redactor before anyone can print it (the names and the other keys
:func:`~o4o_operator.models_database.secret_values` calls public excepted). Must not log, return into status or
keep beyond the pass any value it read.
"""

from __future__ import annotations

from o4o_operator.errors import InvalidSpecError
from o4o_operator.kubeapi import SecretData
from o4o_operator.models_database import secret_values
from o4o_operator.redaction import Redactor
from o4o_operator.runner.runtime import Runtime


class SecretCache:
    """Secrets of one namespace, read at most once per pass; what is read is redacted from then on."""

    def __init__(self, runtime: Runtime, namespace: str, redactor: Redactor) -> None:
        self._runtime = runtime  # its Kubernetes client, as it is when a Secret is read
        self._namespace = namespace
        self._redactor = redactor
        self._read: dict[str, SecretData | InvalidSpecError] = {}

    async def secret(self, name: str, field: str) -> SecretData:
        cached = self._read.get(name)
        if cached is None:
            try:
                cached = await self._runtime.kube.read_secret(self._namespace, name, field)
                self._redactor.add(secret_values(field, dict(cached.data)))
            except InvalidSpecError as error:
                cached = error
            self._read[name] = cached
        if isinstance(cached, InvalidSpecError):
            raise cached
        return cached

    async def value(self, name: str, key: str, field: str) -> str:
        data = await self.secret(name, field)
        if key not in data.data:
            raise InvalidSpecError(field, f"Secret {name!r} has no key {key!r}", reason="SecretKeyMissing")
        return data.data[key]
