"""The stages that talk to the cloud API: provision and dns. Code, one async generator each.

Owns: what provision and dns do with the cloud and DNS providers (through their
Protocols), claiming or adopting a server, the key pair a new server gets, and
which status changes they hand back (:mod:`o4o_operator.runner.stage_steps`): a
checkpoint before a server is created, an outcome with a past-tense message
("Created server ..."). The host stages are data, run by
:mod:`o4o_operator.runner.host_stages`. Must not decide whether a stage should
run (the pipeline did), and must not write status (the worker does). An instance that brings no
credentials uses the operator's own identity only as ``O4O_AMBIENT_GRANTS`` grants it, checked before
the first cloud or DNS call.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Mapping

from o4o_operator.errors import InvalidSpecError, PermanentError, TransientError
from o4o_operator.models import BUILD_RAM_GB, DnsProviderKind, HostKeySource, ServerStatus
from o4o_operator.models_inventory import Inventory, ItemKind
from o4o_operator.pipeline.ambient_grants import dns_refusal, provider_refusal
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
from o4o_operator.runner.instance import InstanceContext
from o4o_operator.runner.inventory import DnsPlace
from o4o_operator.runner.stage_steps import Checkpoint, Keep, Outcome, StageAction, StageStep
from o4o_operator.runner.teardown_items import remove_moved_records


def _dns_grant_refusal(instance: InstanceContext) -> InvalidSpecError | None:
    """A DNS zone the instance may not write with the operator's own identity (see ``ambient_grants``)."""
    spec = instance.spec.dns
    if spec.provider is DnsProviderKind.NONE:
        return None
    lightsail = instance.spec.provider.lightsail
    return dns_refusal(instance.runtime.settings.ambient_grants, instance.ref.namespace, instance.spec.domain,
                       spec, has_credentials=lightsail is not None and lightsail.credentials_secret_ref is not None)


async def provision(instance: InstanceContext) -> AsyncGenerator[StageStep]:
    existing = instance.spec.provider.existing
    lightsail = instance.spec.provider.lightsail
    # What the operator's own identity may not do is known now: refused before a server is made (and bills)
    # for an instance that could never publish its name. The identity first, then the zone.
    refusal = (provider_refusal(instance.runtime.settings.ambient_grants, instance.ref.namespace,
                                has_credentials=lightsail.credentials_secret_ref is not None)
               if lightsail is not None else None) or _dns_grant_refusal(instance)
    if refusal is not None:
        raise refusal
    if existing is not None:
        pins = instance.host_key_pins()  # stalls naming spec.ssh.hostKeyFingerprint when nothing may be trusted
        addresses = await host_addresses(existing.host, instance.runtime.resolver)
        if not addresses:
            raise TransientError("HostNotResolving", f"spec.provider.existing.host {existing.host} does not "
                                 "resolve to an address")
        # A pin belongs to the host it was seen on: host_key_pins() keeps none from another host.
        source = HostKeySource.SPEC if instance.spec.ssh.host_key_fingerprint else \
            instance.status.server.host_key_source if pins else None
        server = ServerStatus(
            name=existing.host, ip_address=addresses[0], ip_addresses=addresses,
            host_key_fingerprint=pins[0] if pins else None, host_key_fingerprints=pins, host_key_source=source)
        trust = "; its host key will be trusted on first use" if not pins else ""
        yield Outcome(f"Using existing host {existing.host}:{existing.port} ({', '.join(addresses)}){trust}",
                      {"server": server, "inventory": dns_intents(instance, instance.status.inventory, addresses[0])})
        return
    assert lightsail is not None
    cloud = await instance.cloud()
    await cloud.validate(lightsail.region, lightsail.availability_zone, lightsail.bundle_id,
                         lightsail.blueprint_id, min_ram_gb=BUILD_RAM_GB)
    name = instance.server_name
    found = await cloud.find_server(name)
    adopted = False
    if found is not None:
        adopted = await _claim_server(instance, cloud, found)
    created = instance.status.server.created
    key_pair = instance.status.server.key_pair_name if found is not None else None
    record = instance.inventory()
    static_ip = instance.static_ip_name
    static_ip_added = record.intent(ItemKind.STATIC_IP, static_ip)
    if found is None:
        own_key_pair = not lightsail.key_pair_name
        record.intent(ItemKind.SERVER, name)
        if own_key_pair:
            record.intent(ItemKind.KEY_PAIR, instance.own_key_pair_name)
        # The intent first, in one write: after a crash, the next attempt looks the server up by name, and
        # teardown knows what may exist (the key pair, server and static IP, each deleted only if ours).
        yield Checkpoint({"server": ServerStatus(name=name, region=lightsail.region, create_pending=True,
                                                 key_pair_name=lightsail.key_pair_name or instance.own_key_pair_name),
                          "inventory": record.items})
        key_pair, fingerprint = await _key_pair_for_new_server(instance, cloud)
        if own_key_pair:
            record.confirm(ItemKind.KEY_PAIR, key_pair, cloud_id=fingerprint)
        await cloud.create_server(ServerRequest(
            name=name, region=lightsail.region, availability_zone=lightsail.availability_zone,
            bundle_id=lightsail.bundle_id, blueprint_id=lightsail.blueprint_id, key_pair_name=key_pair,
            tags=ownership_tags(instance.ref.namespace, instance.ref.name, instance.ref.uid)))
        instance.log(f"Requested server {name} ({lightsail.bundle_id}, {lightsail.blueprint_id})")
        created = True
    elif static_ip_added:  # a static IP made before inventories, or released by hand: record it first
        yield Checkpoint({"inventory": record.items})
    if found is not None and found.state == "stopped":
        await cloud.start_server(name)
        message = f"Started server {name}, which was stopped"
        instance.log(message)
        await instance.runtime.kube.post_event(instance.body, "ServerStarted", message, warning=True)
    running = await cloud.wait_running(name, timeout=600)
    replaced = record.replaced_server(name, running.cloud_id)
    if replaced:
        message = (f"Server {name} is another machine than the one set up ({replaced}); every host stage runs "
                   "again from scratch")
        instance.log(message)
        await instance.runtime.kube.post_event(instance.body, "ServerReplaced", message, warning=True)
    record.confirm(ItemKind.SERVER, name, cloud_id=running.cloud_id, adopted=adopted)
    address = await cloud.ensure_static_ip(name, static_ip)
    record.confirm(ItemKind.STATIC_IP, static_ip, value=address)
    await cloud.ensure_ports(name, lightsail.ssh_allowed_cidrs)
    server = ServerStatus(name=name, ip_address=address, static_ip_name=static_ip, region=lightsail.region,
                          key_pair_name=key_pair or running.key_pair_name, create_pending=False,
                          created=created or instance.adopt)
    pinned, source = await _lightsail_host_keys(instance, name, cloud)
    if not pinned:
        yield Keep({"server": server, "inventory": record.items})  # what provisioning learnt is kept for the retry
        raise TransientError("HostKeyUnavailable", f"Lightsail reports no SSH host key for {name} yet; waiting "
                             "for it (a key is never trusted on first use on Lightsail)")
    verb = "Created" if found is None else "Found"
    yield Outcome(f"{verb} server {name} ({running.state}) at {address}", {"server": server.model_copy(update={
        "host_key_fingerprint": pinned[0], "host_key_fingerprints": pinned, "host_key_source": source}),
        "inventory": dns_intents(instance, record.items, address)})


def _dns_places(instance: InstanceContext, address: str) -> list[tuple[DnsPlace, str]]:
    """The A record and its ownership TXT the dns stage writes for ``address`` (none when DNS is elsewhere)."""
    spec = instance.spec.dns
    if spec.provider is DnsProviderKind.NONE:
        return []
    zone = spec.hosted_zone_id or spec.zone
    return [(DnsPlace(spec.provider.value, zone, "A"), address),
            (DnsPlace(spec.provider.value, zone, "TXT"), instance.record_owner.txt_value())]


def dns_intents(instance: InstanceContext, items: Inventory, address: str) -> Inventory:
    """``items`` with the DNS records the dns stage will write recorded as intents: written with provision's
    outcome, so the dns stage needs no write of its own before it calls the provider."""
    record = instance.dns_inventory(items)
    for where, value in _dns_places(instance, address):
        record.intent(ItemKind.DNS_RECORD, instance.spec.domain, where, value)
    return record.items


async def _lightsail_host_keys(instance: InstanceContext, name: str,
                               cloud: CloudProvider) -> tuple[tuple[str, ...], HostKeySource]:
    """The spec's pin, else every host key Lightsail reports (any may be negotiated); empty while none."""
    if instance.spec.ssh.host_key_fingerprint:
        return instance.host_key_pins(), HostKeySource.SPEC
    return await cloud.host_key_fingerprints(name), HostKeySource.PROVIDER


async def _claim_server(instance: InstanceContext, cloud: CloudProvider, found: ServerFacts) -> bool:
    """Go on only with a server that is ours, or one we may adopt (then tag it ours first; True)."""
    owner = ownership(found.tags, instance.ref.uid)
    if owner is Ownership.OURS:
        return False
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
    return True


async def _key_pair_for_new_server(instance: InstanceContext, cloud: CloudProvider) -> tuple[str, str | None]:
    """The key pair a new server is created with (and its fingerprint), checked to hold the key in
    spec.ssh.privateKeySecretRef."""
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
        return given.name, given.fingerprint
    name = instance.own_key_pair_name
    tags = ownership_tags(instance.ref.namespace, instance.ref.name, instance.ref.uid)
    pair = await cloud.ensure_key_pair(name, public_key, tags)
    if fingerprint_matches(pair.fingerprint, public_key):
        if ownership(pair.tags, instance.ref.uid) is Ownership.UNCLAIMED:
            await cloud.tag_key_pair(name, tags)  # imported, then the operator stopped before tagging it
        elif not is_ours(pair.tags, instance.ref.uid):
            raise InvalidSpecError("spec.ssh.privateKeySecretRef", f"key pair {name} belongs to another "
                                   "DeploymentInstance", reason="KeyPairOwnedElsewhere")
        return name, pair.fingerprint
    if not is_ours(pair.tags, instance.ref.uid):
        raise InvalidSpecError("spec.ssh.privateKeySecretRef", f"a key pair named {name} exists with another key "
                               "than this Secret's; it is left as it is", reason="KeyPairMismatch")
    await cloud.delete_key_pair(name)  # ours, from a key since rotated: import the current one
    pair = await cloud.ensure_key_pair(name, public_key, tags)
    if not fingerprint_matches(pair.fingerprint, public_key):
        raise TransientError("KeyPairMismatch", f"key pair {name} does not show the imported key yet")
    instance.log(f"Replaced key pair {name}: spec.ssh.privateKeySecretRef holds another key now")
    return name, pair.fingerprint


async def dns(instance: InstanceContext) -> AsyncGenerator[StageStep]:
    address = instance.status.server.ip_address
    if address is None:
        raise TransientError("ServerNotProvisioned", "the server has no address yet")
    spec, domain = instance.spec.dns, instance.spec.domain
    record = instance.dns_inventory()
    if spec.provider is DnsProviderKind.NONE:  # an existing host may answer on several addresses; any will do
        addresses = instance.status.server.ip_addresses or (address,)
        await instance.name_check().check_resolves_to(domain, addresses)
        moved = await remove_moved_records(instance, record, keep=None)
        yield Outcome(f"Checked that {domain} resolves to {', '.join(addresses)}{moved}", {"inventory": record.items})
        return
    refusal = _dns_grant_refusal(instance)
    if refusal is not None:
        raise refusal
    zone = spec.hosted_zone_id or spec.zone
    places = _dns_places(instance, address)
    # Usually recorded by provision already (no write here); a changed DNS spec records its intent first.
    if any([record.intent(ItemKind.DNS_RECORD, domain, where, value) for where, value in places]):
        yield Checkpoint({"inventory": record.items})
    provider = await instance.dns()
    await provider.upsert_a_record(domain, zone, address, spec.ttl, instance.record_owner)
    for where, value in places:
        record.confirm(ItemKind.DNS_RECORD, domain, where, value)
    moved = await remove_moved_records(instance, record, keep=(spec.provider.value, zone, domain))
    yield Outcome(f"Pointed {domain} at {address} ({spec.provider.value}){moved}", {"inventory": record.items})


CLOUD_STAGES: Mapping[StageName, StageAction] = {StageName.PROVISION: provision, StageName.DNS: dns}
