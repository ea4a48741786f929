"""The nine stage actions: observe, act only when needed, verify. One async function each.

Owns: what each stage does with the providers and the rendered scripts, and
what it records in status (server, commit, certificate, installed apps). Each
returns a past-tense message naming what it did ("Created server ...").
Must not decide whether a stage should run: the pipeline already did.
"""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Awaitable, Callable, Mapping

import asyncssh

from o4o_operator import metrics
from o4o_operator.errors import InvalidSpecError, PermanentError, TransientError
from o4o_operator.models import DnsProviderKind, HostKeySource, ServerStatus, SourceStatus
from o4o_operator.pipeline.stages import StageName
from o4o_operator.providers.dns import host_addresses
from o4o_operator.providers.ownership import (
    Ownership,
    WantedServer,
    adoption_mismatch,
    fingerprint_matches,
    is_ours,
    ownership,
    ownership_tags,
)
from o4o_operator.providers.protocols import CloudProvider, ServerFacts, ServerRequest
from o4o_operator.rendering import HostContext, render
from o4o_operator.runner.instance import InstanceContext

StageAction = Callable[[InstanceContext], Awaitable[str]]


async def provision(instance: InstanceContext) -> str:
    existing = instance.spec.provider.existing
    if existing is not None:
        pins = instance.host_key_pins()  # stalls naming spec.ssh.hostKeyFingerprint when nothing may be trusted
        addresses = await host_addresses(existing.host, instance.runtime.resolver)
        if not addresses:
            raise TransientError("HostNotResolving", f"spec.provider.existing.host {existing.host} does not "
                                 "resolve to an address")
        # A pin belongs to the host it was seen on: host_key_pins() keeps none from another host.
        source = HostKeySource.SPEC if instance.spec.ssh.host_key_fingerprint else \
            instance.status.server.host_key_source if pins else None
        instance.record(server=ServerStatus(
            name=existing.host, ip_address=addresses[0], ip_addresses=addresses,
            host_key_fingerprint=pins[0] if pins else None, host_key_fingerprints=pins, host_key_source=source))
        trust = "; its host key will be trusted on first use" if not pins else ""
        return f"Using existing host {existing.host}:{existing.port} ({', '.join(addresses)}){trust}"
    lightsail = instance.spec.provider.lightsail
    assert lightsail is not None
    cloud = await instance.cloud()
    await cloud.validate(lightsail.region, lightsail.availability_zone, lightsail.bundle_id,
                         lightsail.blueprint_id)
    name = instance.server_name
    found = await cloud.find_server(name)
    if found is not None:
        await _claim_server(instance, cloud, found)
    created = instance.status.server.created
    key_pair = instance.status.server.key_pair_name if found is not None else None
    if found is None:
        key_pair = await _key_pair_for_new_server(instance, cloud)
        # Record intent first: after a crash, the next attempt looks the server up by name.
        await instance.save(server=ServerStatus(name=name, region=lightsail.region, key_pair_name=key_pair,
                                           create_pending=True))
        await cloud.create_server(ServerRequest(
            name=name, region=lightsail.region, availability_zone=lightsail.availability_zone,
            bundle_id=lightsail.bundle_id, blueprint_id=lightsail.blueprint_id, key_pair_name=key_pair,
            tags=ownership_tags(instance.ref.namespace, instance.ref.name, instance.ref.uid)))
        instance.log(f"Requested server {name} ({lightsail.bundle_id}, {lightsail.blueprint_id})")
        created = True
    running = await cloud.wait_running(name, timeout=600)
    static_ip = instance.static_ip_name
    address = await cloud.ensure_static_ip(name, static_ip)
    await cloud.ensure_ports(name, lightsail.ssh_allowed_cidrs)
    server = ServerStatus(name=name, ip_address=address, static_ip_name=static_ip, region=lightsail.region,
                          key_pair_name=key_pair or running.key_pair_name, create_pending=False,
                          created=created or instance.adopt)
    pinned, source = await _lightsail_host_keys(instance, name, cloud)
    if not pinned:
        instance.record(server=server)
        raise TransientError("HostKeyUnavailable", f"Lightsail reports no SSH host key for {name} yet; waiting "
                             "for it (a key is never trusted on first use on Lightsail)")
    instance.record(server=server.model_copy(update={
        "host_key_fingerprint": pinned[0], "host_key_fingerprints": pinned, "host_key_source": source}))
    verb = "Created" if found is None else "Found"
    return f"{verb} server {name} ({running.state}) at {address}"


async def _lightsail_host_keys(instance: InstanceContext, name: str,
                               cloud: CloudProvider) -> tuple[tuple[str, ...], HostKeySource]:
    """The spec's pin, else every host key Lightsail reports (any may be negotiated); empty while none."""
    if instance.spec.ssh.host_key_fingerprint:
        return instance.host_key_pins(), HostKeySource.SPEC
    return await cloud.host_key_fingerprints(name), HostKeySource.PROVIDER


async def _claim_server(instance: InstanceContext, cloud: CloudProvider, found: ServerFacts) -> None:
    """Go on only with a server that is ours, or one we may adopt (then tag it ours first)."""
    owner = ownership(found.tags, instance.ref.uid)
    if owner is Ownership.OURS:
        return
    if owner is Ownership.FOREIGN:
        raise PermanentError("ServerOwnedElsewhere", f"a server named {found.name} carries another "
                             "DeploymentInstance's uid tag; it is never adopted, changed or deleted")
    if not instance.adopt:
        raise PermanentError("AlreadyExists", f"a server named {found.name} exists but does not carry this "
                             "instance's uid tag; set the annotation deploy.o4o.io/adopt=\"true\" to adopt it")
    lightsail = instance.spec.provider.lightsail
    assert lightsail is not None
    mismatch = adoption_mismatch(found, WantedServer(lightsail.availability_zone, lightsail.bundle_id,
                                                     lightsail.blueprint_id))
    if mismatch is not None:
        field, problem = mismatch
        raise InvalidSpecError(field, f"{problem}; a server is adopted only as the spec describes it",
                               reason="AdoptionMismatch")
    await cloud.tag_server(found.name, ownership_tags(instance.ref.namespace, instance.ref.name, instance.ref.uid))
    instance.log(f"Adopted server {found.name}: tagged it with this instance's uid")


async def _key_pair_for_new_server(instance: InstanceContext, cloud: CloudProvider) -> str:
    """The key pair a new server is created with, checked to hold the key in spec.ssh.privateKeySecretRef."""
    lightsail = instance.spec.provider.lightsail
    assert lightsail is not None
    public_key = await instance.public_key()
    if lightsail.key_pair_name:
        given = await cloud.find_key_pair(lightsail.key_pair_name)
        if given is None:
            raise InvalidSpecError("spec.provider.lightsail.keyPairName", f"no key pair named "
                                   f"{lightsail.key_pair_name} in {lightsail.region}", reason="KeyPairNotFound")
        if not fingerprint_matches(given.fingerprint, public_key):
            raise InvalidSpecError("spec.provider.lightsail.keyPairName", f"key pair {given.name} holds another key "
                                   "than spec.ssh.privateKeySecretRef", reason="KeyPairMismatch")
        return given.name
    name = instance.own_key_pair_name
    tags = ownership_tags(instance.ref.namespace, instance.ref.name, instance.ref.uid)
    pair = await cloud.ensure_key_pair(name, public_key, tags)
    if fingerprint_matches(pair.fingerprint, public_key):
        if ownership(pair.tags, instance.ref.uid) is Ownership.UNCLAIMED:
            await cloud.tag_key_pair(name, tags)  # imported, then the operator stopped before tagging it
        elif not is_ours(pair.tags, instance.ref.uid):
            raise InvalidSpecError("spec.ssh.privateKeySecretRef", f"key pair {name} belongs to another "
                                   "DeploymentInstance", reason="KeyPairOwnedElsewhere")
        return name
    if not is_ours(pair.tags, instance.ref.uid):
        raise InvalidSpecError("spec.ssh.privateKeySecretRef", f"a key pair named {name} exists with another key "
                               "than this Secret's; it is left as it is", reason="KeyPairMismatch")
    await cloud.delete_key_pair(name)  # ours, from a key since rotated: import the current one
    pair = await cloud.ensure_key_pair(name, public_key, tags)
    if not fingerprint_matches(pair.fingerprint, public_key):
        raise TransientError("KeyPairMismatch", f"key pair {name} does not show the imported key yet")
    instance.log(f"Replaced key pair {name}: spec.ssh.privateKeySecretRef holds another key now")
    return name


async def dns(instance: InstanceContext) -> str:
    address = instance.status.server.ip_address
    if address is None:
        raise TransientError("ServerNotProvisioned", "the server has no address yet")
    spec = instance.spec.dns
    if spec.provider is DnsProviderKind.NONE:  # an existing host may answer on several addresses; any will do
        addresses = instance.status.server.ip_addresses or (address,)
        await instance.name_check().check_resolves_to(instance.spec.domain, addresses)
        return f"Checked that {instance.spec.domain} resolves to {', '.join(addresses)}"
    zone = spec.hosted_zone_id or spec.zone
    provider = await instance.dns()
    await provider.upsert_a_record(instance.spec.domain, zone, address, spec.ttl, instance.record_owner)
    return f"Pointed {instance.spec.domain} at {address} ({spec.provider.value})"


async def _run_script(instance: InstanceContext, stage: StageName, *, env: Mapping[str, str] | None = None,
                      script_timeout: float = 1200, host: HostContext | None = None) -> dict[str, str]:
    script = render.render_script(stage, host or instance.host_context())
    session = await instance.session()
    try:
        result = await session.run(script, timeout=script_timeout, log=instance.log, env=env)
    except asyncssh.Error as error:
        raise TransientError("ConnectionLost", f"SSH session failed: {error}") from error
    return dict(result.results)


async def runtime(instance: InstanceContext) -> str:
    await _run_script(instance, StageName.RUNTIME)
    return "Installed Node.js, pnpm, nginx, PM2 and certbot"


async def source(instance: InstanceContext) -> str:
    env: dict[str, str] = {}
    ref = instance.spec.source.credentials_secret_ref
    if ref is not None:
        env["O4O_GIT_TOKEN"] = await instance.secret_value(ref.name, ref.key, "spec.source.credentialsSecretRef")
    # Stay on the recorded commit only while repository and revision are the ones it was resolved from.
    pinned = instance.status.source.pinned_commit(instance.spec.source)
    host = dataclasses.replace(instance.host_context(), commit=pinned)
    results = await _run_script(instance, StageName.SOURCE, env=env, host=host)
    commit = results.get("commit")
    if not commit:
        raise TransientError("NoCommit", "fetch-source did not report a commit")
    wanted = instance.spec.source
    instance.record(source=SourceStatus(repository=wanted.repository, revision=wanted.revision, commit=commit))
    return f"Fetched {instance.spec.source.revision} at commit {commit[:12]}"


async def build_site(instance: InstanceContext) -> str:
    await _run_script(instance, StageName.BUILD_SITE, script_timeout=1800)
    return f"Built the main site for commit {(instance.status.source.commit or '')[:12]}"


async def build_api(instance: InstanceContext) -> str:
    await _run_script(instance, StageName.BUILD_API, script_timeout=1800)
    return f"Built the API server for commit {(instance.status.source.commit or '')[:12]}"


async def _env_values(instance: InstanceContext) -> tuple[dict[str, str], dict[str, str]]:
    """The merged env values (later Secrets win) and, per key, the ``spec.env[i]`` it came from."""
    values: dict[str, str] = {}
    origins: dict[str, str] = {}
    for index, ref in enumerate(instance.spec.env):
        field = f"spec.env[{index}]"
        data = (await instance.secret(ref.name, field)).data
        values.update(data)
        origins.update(dict.fromkeys(data, field))
    return values, origins


async def _upload_ca_bundles(instance: InstanceContext, host: HostContext) -> None:
    """The public CA bundles spec.tls gives, as files for curl and certbot (absent: the system roots)."""
    session = await instance.session()
    for path, bundle in ((host.acme_ca_path, host.acme_ca_bundle),
                         (host.certificate_ca_path, host.certificate_ca_bundle)):
        if path and bundle:
            await session.upload(path, bundle.encode(), mode=0o644)


async def configure(instance: InstanceContext) -> str:
    host = instance.host_context()
    session = await instance.session()
    await _upload_ca_bundles(instance, host)
    env_file = render.render_env(*await _env_values(instance))
    await session.upload(host.env_path, env_file.encode(), mode=0o600, owner=host.app_user)
    await session.upload(host.ecosystem_path, render.render_ecosystem(host).encode(), mode=0o644,
                         owner=host.app_user)
    for https in (False, True):
        await session.upload(host.nginx_site_path(https), render.render_nginx_site(host, https).encode(),
                             mode=0o644)
    results = await _run_script(instance, StageName.CONFIGURE)
    release = results.get("release", host.commit or "")
    return f"Configured nginx, PM2 and .env; serving release {release[:12]}"


async def tls(instance: InstanceContext) -> str:
    await _upload_ca_bundles(instance, instance.host_context())  # a changed bundle re-runs this stage
    results = await _run_script(instance, StageName.TLS)
    not_after = results.get("notAfter")
    if not_after:
        moment = datetime.datetime.fromisoformat(not_after.replace("Z", "+00:00"))
        metrics.CERTIFICATE_EXPIRY.labels(namespace=instance.ref.namespace, name=instance.ref.name).set(
            moment.timestamp())
        instance.record(certificate=instance.status.certificate.model_copy(update={"not_after": not_after}))
    return f"Certificate for {instance.spec.domain} valid until {not_after or 'unknown'}"


async def apps(instance: InstanceContext) -> str:
    catalog = render.load_app_catalog()
    for index, app in enumerate(instance.spec.apps):
        if app not in catalog:
            raise InvalidSpecError(f"spec.apps[{index}]", f"no app named {app!r}; known apps: "
                                   f"{', '.join(sorted(catalog))}", reason="UnknownApp")
    await _run_script(instance, StageName.APPS)
    before, after = set(instance.status.installed_apps), set(instance.spec.apps)
    instance.record(installed_apps=tuple(instance.spec.apps))
    added, removed = sorted(after - before), sorted(before - after)
    parts = [f"Installed {', '.join(added)}" if added else "", f"removed {', '.join(removed)}" if removed else ""]
    summary = "; ".join(part for part in parts if part) or "no change"
    return f"Apps up to date ({summary})"


STAGE_ACTIONS: Mapping[StageName, StageAction] = {
    StageName.PROVISION: provision,
    StageName.DNS: dns,
    StageName.RUNTIME: runtime,
    StageName.SOURCE: source,
    StageName.BUILD_SITE: build_site,
    StageName.BUILD_API: build_api,
    StageName.CONFIGURE: configure,
    StageName.TLS: tls,
    StageName.APPS: apps,
}
