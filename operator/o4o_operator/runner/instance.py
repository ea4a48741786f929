"""What a stage action works with: one instance during one pass of its worker.

Owns: :class:`InstanceContext`, which puts together what one pass needs and keeps nothing else: the
instance's identity, spec and status (the worker's, read only), its log, the names and owner it uses in the
cloud (the names themselves come from :mod:`o4o_operator.providers.ownership`), the facts it observes, and
its host context. Each other part has a module of its own, which this one composes: the Secrets read once
per pass and redacted (:mod:`~o4o_operator.runner.secret_cache`), the providers built from the spec
(:mod:`~o4o_operator.runner.instance_providers`), the host-key policy (:mod:`~o4o_operator.runner.host_keys`)
and the SSH session with trust on first use (:mod:`~o4o_operator.runner.host_session`). The operator-wide
:class:`~o4o_operator.runner.runtime.Runtime` is passed in. Must not decide what to run next.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from o4o_operator.errors import InvalidSpecError, PermanentError, TransientError
from o4o_operator.kubeapi import SecretData
from o4o_operator.models import (
    ADOPT_ANNOTATION,
    DeploymentInstanceSpec,
    DeploymentInstanceStatus,
    InstanceRef,
    StageState,
)
from o4o_operator.models_database import GENERATED_SECRET_FIELD, generated_secret_name
from o4o_operator.models_inventory import Inventory
from o4o_operator.pipeline import restore
from o4o_operator.pipeline.facts import Facts
from o4o_operator.pipeline.stages import StageName
from o4o_operator.providers.aws import ClientSettings
from o4o_operator.providers.ownership import RecordOwner, key_pair_name, server_name, static_ip_name
from o4o_operator.providers.protocols import CloudProvider, DnsProvider, HostSession, NameCheck
from o4o_operator.providers.ssh import client_public_key
from o4o_operator.rendering.host_context import HostContext, build_fields
from o4o_operator.runner import host_keys
from o4o_operator.runner.host_session import HostSessions
from o4o_operator.runner.instance_providers import InstanceProviders
from o4o_operator.runner.inventory import InventoryRecord, access_for, server_identity
from o4o_operator.runner.log import InstanceLog
from o4o_operator.runner.runtime import Runtime
from o4o_operator.runner.secret_cache import SecretCache
from o4o_operator.runner.stage_steps import Changes


async def _private_key(secrets: SecretCache, spec: DeploymentInstanceSpec) -> str:
    ref = spec.ssh.private_key_secret_ref
    return await secrets.value(ref.name, ref.key, "spec.ssh.privateKeySecretRef")


def _digest(parts: Mapping[str, str]) -> str:
    return hashlib.sha256(repr(sorted(parts.items())).encode()).hexdigest()[:16]


class InstanceContext:
    """One instance during one pass of the worker. Secrets are read at most once per pass."""

    def __init__(self, runtime: Runtime, body: Mapping[str, Any], spec: DeploymentInstanceSpec,
                 status: DeploymentInstanceStatus | Callable[[], DeploymentInstanceStatus], log: InstanceLog,
                 write: Callable[[Changes], Awaitable[None]] | None = None) -> None:
        """``status`` is the worker's (read through a callable, so that it is always the current one); ``write``
        is the worker's way of writing changes at once (see :meth:`checkpoint`), absent where nothing is made."""
        meta = body["metadata"]
        self.runtime = runtime
        self.body = body
        self.ref = InstanceRef(namespace=meta["namespace"], name=meta["name"], uid=meta["uid"],
                               generation=int(meta.get("generation", 1)))
        self.spec = spec
        self._status = status if callable(status) else (lambda: status)
        self.log = log
        self._secrets = SecretCache(runtime, self.ref.namespace, log.redactor)
        self._providers = InstanceProviders(runtime, spec, self.ref.uid, self._secrets)
        # The session reads the key through the Secrets alone, not through this context: no reference cycle, so
        # a pass's context (its spec, the Secrets it read) is freed as the pass ends, not at a full collection.
        self._sessions = HostSessions(runtime, body, spec, self._status, log,
                                      functools.partial(_private_key, self._secrets, spec))
        self._learned: dict[str, Any] = {}
        self._write = write

    # ---- status (read only: the worker holds it) --------------------------------

    @property
    def status(self) -> DeploymentInstanceStatus:
        return self._status()

    def take_learned(self) -> Changes:
        """Status changes learnt while talking to the host (a key trusted on first use) or made on the side (a
        backup bucket in the inventory, see :meth:`learn`), once each."""
        learned, self._learned = {**self._sessions.take_learned(), **self._learned}, {}
        return learned

    def learn(self, changes: Changes) -> None:
        """Status changes that must reach status even if the step that made them fails afterwards."""
        self._learned.update(changes)

    async def checkpoint(self, changes: Changes) -> None:
        """Status changes written before the caller goes on: an intent (``Pending``) before the call that makes
        something outside a stage's own steps (a backup bucket), so that a crash between the call and the next
        write leaves nothing unknown. A context that cannot write (teardown's) makes nothing."""
        if self._write is None:
            raise TransientError("InternalError", "this pass cannot write status, so it makes nothing")
        await self._write(changes)

    @property
    def adopt(self) -> bool:
        annotations = self.body["metadata"].get("annotations") or {}
        return str(annotations.get(ADOPT_ANNOTATION, "")).lower() == "true"

    @property
    def server_name(self) -> str:
        """The recorded name (servers created under an older naming keep theirs), else the new one."""
        return self.status.server.name or server_name(self.ref.namespace, self.ref.name)

    @property
    def static_ip_name(self) -> str:
        return self.status.server.static_ip_name or static_ip_name(self.server_name)

    @property
    def own_key_pair_name(self) -> str:
        """The key pair the operator imports (and may delete) when the spec names none."""
        return self.status.server.key_pair_name or key_pair_name(self.ref.namespace, self.ref.name)

    @property
    def record_owner(self) -> RecordOwner:
        return RecordOwner(self.ref.namespace, self.ref.name, self.ref.uid)

    # ---- secrets -------------------------------------------------------------

    def referenced_secrets(self) -> dict[str, str]:
        """Secret name -> the spec field that references it."""
        spec = self.spec
        refs: dict[str, str] = {spec.ssh.private_key_secret_ref.name: "spec.ssh.privateKeySecretRef"}
        lightsail = spec.provider.lightsail
        if lightsail and lightsail.credentials_secret_ref:
            refs[lightsail.credentials_secret_ref.name] = "spec.provider.lightsail.credentialsSecretRef"
        if spec.source.credentials_secret_ref:
            refs[spec.source.credentials_secret_ref.name] = "spec.source.credentialsSecretRef"
        for index, env in enumerate(spec.env):
            refs.setdefault(env.name, f"spec.env[{index}]")
        return refs

    async def secret(self, name: str, field: str) -> SecretData:
        return await self._secrets.secret(name, field)

    async def secret_value(self, name: str, key: str, field: str) -> str:
        return await self._secrets.value(name, key, field)

    async def observe_facts(self, status: DeploymentInstanceStatus) -> Facts:
        versions: dict[str, str] = {}
        for name, field in self.referenced_secrets().items():
            try:
                versions[name] = (await self.secret(name, field)).resource_version
            except InvalidSpecError as error:
                versions[name] = f"missing:{error.reason}"
        env_versions = {env.name: versions.get(env.name, "") for env in self.spec.env}
        # The operator-owned Secret and an external database's Secret feed the .env too: a change re-runs configure.
        # So do the external database's Secrets (its connection, its CA).
        own = [(generated_secret_name(self.ref.name), GENERATED_SECRET_FIELD)]
        if self.spec.database.external is not None:
            own.extend(self.spec.database.external.secret_refs())
        database_versions: dict[str, str] = {}
        for name, field in own:
            try:
                database_versions[f"{field}:{name}"] = (await self.secret(name, field)).resource_version
            except InvalidSpecError as error:
                database_versions[f"{field}:{name}"] = f"missing:{error.reason}"
            versions.setdefault(name, database_versions[f"{field}:{name}"])
        versions.update(await self._clone_source_states(status))
        server_id = server_identity(status.inventory, status.server.name)
        if self.spec.provider.existing is not None:
            server_id = status.server.host_key_fingerprint
        return Facts(server_address=status.server.ip_address, server_id=server_id, commit=status.source.commit,
                     env_version=_digest({**env_versions, **database_versions}), secrets_version=_digest(versions),
                     database_version=_digest(database_versions))

    async def _clone_source_states(self, status: DeploymentInstanceStatus) -> dict[str, str]:
        """A clone that has not been configured yet stalls on its source instance (missing, not granted, not
        backed up yet: the world's to fix, as an Argo CD sync applies both at once). What of the source decides
        that joins ``secrets_version``, so a stall clears when the source changes, not only when the spec does."""
        source = self.spec.database.bootstrap.restore
        configure = status.stage(StageName.CONFIGURE.value)
        if source is None or source.instance is None or (configure is not None
                                                         and configure.state is StageState.SUCCEEDED):
            return {}
        namespace = source.instance.namespace or self.ref.namespace
        body = await self.runtime.kube.get_instance(namespace, source.instance.name)
        return {f"clone-source:{namespace}/{source.instance.name}": restore.clone_source_state(body)}

    # ---- providers -------------------------------------------------------------

    def inventory(self) -> InventoryRecord:
        """A working copy of ``status.inventory`` for one stage run (the worker writes what it hands back)."""
        return InventoryRecord(self.status.inventory, access_for(self.spec), self.runtime.clock)

    def dns_inventory(self, items: Inventory | None = None) -> InventoryRecord:
        """As :meth:`inventory` (or from ``items``), for DNS records: Lightsail's DNS API lives in us-east-1 (Route
        53 is global)."""
        return InventoryRecord(self.status.inventory if items is None else items,
                               access_for(self.spec, region="us-east-1"), self.runtime.clock)

    async def client_settings(self) -> ClientSettings:
        return await self._providers.client_settings()

    async def cloud(self) -> CloudProvider:
        return await self._providers.cloud()

    async def dns(self) -> DnsProvider:
        return await self._providers.dns()

    def name_check(self) -> NameCheck:
        """For DNS managed elsewhere: confirms the domain resolves to the server."""
        return self._providers.name_check()

    # ---- the host ------------------------------------------------------------------

    async def private_key(self) -> str:
        return await _private_key(self._secrets, self.spec)

    async def public_key(self) -> str:
        """The OpenSSH public half of the private key; an unreadable key stalls naming its field."""
        private_key = await self.private_key()
        try:
            return client_public_key(private_key)
        except PermanentError as error:
            raise InvalidSpecError(host_keys.KEY_FIELD, error.message, reason=error.reason) from None

    def trusts_first_use(self) -> bool:
        return host_keys.trusts_first_use(self.spec)

    def host_key_pins(self) -> tuple[str, ...]:
        """The fingerprints a host key must match (see :func:`~o4o_operator.runner.host_keys.host_key_pins`)."""
        return host_keys.host_key_pins(self.spec, self.status)

    def ssh_target(self) -> tuple[str, int]:
        return host_keys.ssh_target(self.spec, self.status)

    async def session(self) -> HostSession:
        """The SSH session, opened once per pass, pinning the known host keys (or trusting on first use)."""
        return await self._sessions.session()

    def host_context(self) -> HostContext:
        spec = self.spec
        return HostContext(
            domain=spec.domain, instance_name=self.ref.name, repository=spec.source.repository,
            revision=spec.source.revision, tls_email=spec.tls.email, commit=self.status.source.commit,
            api_port=spec.api_port, acme_server=spec.tls.server, apps=spec.apps,
            namespace=self.ref.namespace, post_install=spec.post_install,
            node_mirror=self.runtime.settings.node_mirror, acme_ca_bundle=spec.tls.acme_ca_bundle,
            certificate_ca_bundle=spec.tls.certificate_ca_bundle,
            **build_fields(spec.build),
        )
