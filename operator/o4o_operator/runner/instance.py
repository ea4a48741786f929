"""What a stage action works with: one instance during one pass of its worker.

Owns: :class:`InstanceContext` (one instance's spec, the status as the pass
began, its log and lazily opened providers, Secrets read once per pass, the
observed facts, which cloud names and owner it uses: the names themselves come
from :mod:`o4o_operator.providers.ownership`). The operator-wide
:class:`~o4o_operator.runner.runtime.Runtime` is passed in. Must not decide what
to run next.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Callable, Mapping
from typing import Any

from o4o_operator.errors import InvalidSpecError, PermanentError, StageError
from o4o_operator.kubeapi import SecretData
from o4o_operator.models import (
    ADOPT_ANNOTATION,
    DeploymentInstanceSpec,
    DeploymentInstanceStatus,
    DnsProviderKind,
    HostKeySource,
    InstanceRef,
)
from o4o_operator.models_database import (
    GENERATED_SECRET_FIELD,
    generated_secret_name,
    secret_values,
)
from o4o_operator.models_inventory import Inventory
from o4o_operator.pipeline.facts import Facts
from o4o_operator.providers.aws import ClientSettings, StaticCredentials
from o4o_operator.providers.ownership import RecordOwner, key_pair_name, server_name, static_ip_name
from o4o_operator.providers.protocols import CloudProvider, DnsProvider, HostSession, NameCheck
from o4o_operator.providers.ssh import client_public_key, normalise_fingerprint
from o4o_operator.rendering.host_context import HostContext, build_fields
from o4o_operator.runner.inventory import InventoryRecord, access_for, server_identity
from o4o_operator.runner.log import InstanceLog
from o4o_operator.runner.runtime import Runtime
from o4o_operator.runner.stage_steps import Changes

_KEY_FIELD = "spec.ssh.privateKeySecretRef"
_PIN_FIELD = "spec.ssh.hostKeyFingerprint"


def _with_field(instance: InstanceContext, error: StageError) -> StageError:
    """A permanent SSH failure as an InvalidSpecError naming the field to fix; anything else unchanged."""
    if error.transient:
        return error
    if error.reason == "HostKeyMismatch":
        field = _PIN_FIELD if instance.spec.ssh.host_key_fingerprint else "status.server.hostKeyFingerprints"
    elif error.reason in ("InvalidSshKey", "SshAuthenticationFailed"):
        field = _KEY_FIELD
    else:
        return error
    return InvalidSpecError(field, error.message, reason=error.reason)


def _digest(parts: Mapping[str, str]) -> str:
    return hashlib.sha256(repr(sorted(parts.items())).encode()).hexdigest()[:16]


class InstanceContext:
    """One instance during one pass of the worker. Secrets are read at most once per pass."""

    def __init__(self, runtime: Runtime, body: Mapping[str, Any], spec: DeploymentInstanceSpec,
                 status: DeploymentInstanceStatus | Callable[[], DeploymentInstanceStatus], log: InstanceLog) -> None:
        """``status`` is the worker's (read through a callable, so that it is always the current one)."""
        meta = body["metadata"]
        self.runtime = runtime
        self.body = body
        self.ref = InstanceRef(namespace=meta["namespace"], name=meta["name"], uid=meta["uid"],
                               generation=int(meta.get("generation", 1)))
        self.spec = spec
        self._status = status if callable(status) else (lambda: status)
        self.log = log
        self._secrets: dict[str, SecretData | InvalidSpecError] = {}
        self._session: HostSession | None = None
        self._learned: dict[str, Any] = {}

    # ---- status (read only: the worker holds it) --------------------------------

    @property
    def status(self) -> DeploymentInstanceStatus:
        return self._status()

    def take_learned(self) -> Changes:
        """Status changes learnt while talking to the host (a key trusted on first use), once each."""
        learned, self._learned = self._learned, {}
        return learned

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
        cached = self._secrets.get(name)
        if cached is None:
            try:
                cached = await self.runtime.kube.read_secret(self.ref.namespace, name, field)
                self.log.redactor.add(secret_values(field, dict(cached.data)))
            except InvalidSpecError as error:
                cached = error
            self._secrets[name] = cached
        if isinstance(cached, InvalidSpecError):
            raise cached
        return cached

    async def secret_value(self, name: str, key: str, field: str) -> str:
        data = await self.secret(name, field)
        if key not in data.data:
            raise InvalidSpecError(field, f"Secret {name!r} has no key {key!r}", reason="SecretKeyMissing")
        return data.data[key]

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
        server_id = server_identity(status.inventory, status.server.name)
        if self.spec.provider.existing is not None:
            server_id = status.server.host_key_fingerprint
        return Facts(server_address=status.server.ip_address, server_id=server_id, commit=status.source.commit,
                     env_version=_digest({**env_versions, **database_versions}), secrets_version=_digest(versions),
                     database_version=_digest(database_versions))

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
        lightsail = self.spec.provider.lightsail
        credentials = None
        if lightsail and lightsail.credentials_secret_ref:
            ref = lightsail.credentials_secret_ref
            field = "spec.provider.lightsail.credentialsSecretRef"
            credentials = StaticCredentials(
                access_key_id=await self.secret_value(ref.name, ref.access_key_id_key, field),
                secret_access_key=await self.secret_value(ref.name, ref.secret_access_key_key, field))
        settings = self.runtime.settings
        return ClientSettings(max_attempts=settings.aws_max_attempts, credentials=credentials,
                              endpoint_url=settings.lightsail_endpoint_url,
                              in_flight=self.runtime.in_flight_for(self.ref.uid))

    async def cloud(self) -> CloudProvider:
        lightsail = self.spec.provider.lightsail
        assert lightsail is not None, "cloud() is only for the lightsail provider"
        return self.runtime.cloud_factory(lightsail.region, await self.client_settings(),
                                          self.runtime.settings.cloud_poll_interval)

    async def dns(self) -> DnsProvider:
        kind = self.spec.dns.provider
        settings = await self.client_settings()
        if kind is DnsProviderKind.ROUTE53:
            settings = dataclasses.replace(settings, endpoint_url=self.runtime.settings.route53_endpoint_url)
        return self.runtime.dns_factory(kind, settings)

    def name_check(self) -> NameCheck:
        """For DNS managed elsewhere: confirms the domain resolves to the server."""
        return self.runtime.name_check_factory(self.runtime.resolver)

    async def private_key(self) -> str:
        ref = self.spec.ssh.private_key_secret_ref
        return await self.secret_value(ref.name, ref.key, "spec.ssh.privateKeySecretRef")

    async def public_key(self) -> str:
        """The OpenSSH public half of the private key; an unreadable key stalls naming its field."""
        private_key = await self.private_key()
        try:
            return client_public_key(private_key)
        except PermanentError as error:
            raise InvalidSpecError(_KEY_FIELD, error.message, reason=error.reason) from None

    def trusts_first_use(self) -> bool:
        """An existing host without a pinned key whose spec asks for trust on first use."""
        ssh = self.spec.ssh
        return self.spec.provider.existing is not None and not ssh.host_key_fingerprint and ssh.trust_on_first_use

    def host_key_pins(self) -> tuple[str, ...]:
        """The fingerprints a host key must match. Empty only when trusting on first use (existing hosts).

        Lightsail: the spec's pin, else what Lightsail reported (provision waits for it). Existing hosts: the
        spec's pin, else (``trustOnFirstUse``) the key trusted on first use. Otherwise stall naming the field.
        """
        ssh, server = self.spec.ssh, self.status.server
        if ssh.host_key_fingerprint:
            return (normalise_fingerprint(ssh.host_key_fingerprint),)
        existing = self.spec.provider.existing
        if existing is not None and not ssh.trust_on_first_use:
            raise InvalidSpecError(_PIN_FIELD, f"the SSH host key of {existing.host}:{existing.port} is not "
                                   "pinned; set it (ssh-keygen -lf on the host's key, or ssh-keyscan), or set "
                                   "spec.ssh.trustOnFirstUse: true to trust the first key seen",
                                   reason="HostKeyNotPinned")
        if existing is not None and (server.host_key_source is not HostKeySource.TRUSTED_ON_FIRST_USE
                                     or server.name != existing.host):
            return ()  # trust on first use, and nothing trusted yet on this host
        pins = server.host_key_fingerprints or ((server.host_key_fingerprint,) if server.host_key_fingerprint else ())
        if not pins and existing is None:
            raise InvalidSpecError(_PIN_FIELD, "no SSH host key is known for the server: Lightsail reported none",
                                   reason="HostKeyNotPinned")
        return tuple(pins)

    def ssh_target(self) -> tuple[str, int]:
        existing = self.spec.provider.existing
        if existing is not None:
            return existing.host, existing.port
        if not self.status.server.ip_address:
            raise InvalidSpecError("status.server.ipAddress", "the server has no address yet",
                                   reason="ServerNotProvisioned")
        return self.status.server.ip_address, 22

    async def session(self) -> HostSession:
        """The SSH session, opened once per pass, pinning the known host keys (see :meth:`host_key_pins`)."""
        if self._session is None:
            host, port = self.ssh_target()
            pins = self.host_key_pins()
            try:
                self._session = await self.runtime.connector.connect(
                    host, port, self.spec.ssh.user, await self.private_key(), pins or None,
                    self.runtime.settings.ssh_connect_timeout)
            except StageError as error:
                raise _with_field(self, error) from error
            if not pins:
                await self._trusted_on_first_use(host, port, self._session.host_key_fingerprint)
        return self._session

    async def _trusted_on_first_use(self, host: str, port: int, fingerprint: str) -> None:
        """Pin the first key seen from now on, and say so in status, the log and an Event."""
        self._learned["server"] = self.status.server.model_copy(update={
            "host_key_fingerprint": fingerprint, "host_key_fingerprints": (fingerprint,),
            "host_key_source": HostKeySource.TRUSTED_ON_FIRST_USE})
        message = (f"Trusted the SSH host key {fingerprint} of {host}:{port} on first use "
                   "(spec.ssh.trustOnFirstUse); it is pinned from now on")
        self.log(message)
        await self.runtime.kube.post_event(self.body, "HostKeyTrustedOnFirstUse", message, warning=True)

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
