"""The Lightsail cloud: servers, static IPs, firewalls and key pairs, through boto3.

Owns: :class:`LightsailCloud`, the ``CloudProvider`` for Amazon Lightsail, tags in
Lightsail's shape and within its limits, and the catalog checks behind ``validate``. Every
method is idempotent: it reads first and changes only what differs, and after a failed
change it re-reads before complaining (``CreateInstances`` has no idempotency token; the
unique name is the token).

Must not: decide whether a server or key pair may be adopted, reused or deleted (the
runner does, with :mod:`o4o_operator.providers.ownership`), log or return anything from
``GetInstanceAccessDetails`` other than host-key fingerprints (the response carries a
temporary private key), or know Kopf.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
from collections.abc import Mapping
from typing import Any

from o4o_operator import errors
from o4o_operator.providers.aws import AwsClient, ClientSettings, CloudCallError
from o4o_operator.providers.protocols import KeyPairFacts, ServerFacts, ServerRequest

logger = logging.getLogger(__name__)

MAX_TAGS = 50
MAX_TAG_KEY_LENGTH = 128
MAX_TAG_VALUE_LENGTH = 256
HOST_KEY_PREFERENCE = ("ssh-ed25519", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521",
                       "ssh-rsa")
_SPEC_FIELD = "spec.provider.lightsail"


def lightsail_tags(tags: Mapping[str, str]) -> list[dict[str, str]]:
    """Tags in Lightsail's shape, refused early if they break Lightsail's limits."""
    if len(tags) > MAX_TAGS:
        raise errors.PermanentError("TagLimitExceeded",
                                    f"{len(tags)} tags requested, Lightsail allows {MAX_TAGS}")
    for key, value in tags.items():
        if not key or len(key) > MAX_TAG_KEY_LENGTH or len(value) > MAX_TAG_VALUE_LENGTH:
            raise errors.PermanentError(
                "TagLimitExceeded",
                f"tag {key[:40]!r} breaks Lightsail's limits (key 1-{MAX_TAG_KEY_LENGTH}, "
                f"value up to {MAX_TAG_VALUE_LENGTH} characters)",
            )
    return [{"key": key, "value": value} for key, value in sorted(tags.items())]


def _tag_dict(resource: Mapping[str, Any]) -> dict[str, str]:
    return {str(t["key"]): str(t.get("value", "")) for t in resource.get("tags", [])}


def facts_from_instance(instance: Mapping[str, Any]) -> ServerFacts:
    public_ip = instance.get("publicIpAddress")
    return ServerFacts(
        name=str(instance["name"]),
        state=str(instance.get("state", {}).get("name", "unknown")),
        tags=_tag_dict(instance),
        public_ip=public_ip,
        static_ip=public_ip if instance.get("isStaticIp") else None,
        availability_zone=instance.get("location", {}).get("availabilityZone"),
        bundle_id=instance.get("bundleId"),
        blueprint_id=instance.get("blueprintId"),
        key_pair_name=instance.get("sshKeyName"),
        cloud_id=instance.get("arn"),
    )


def facts_from_key_pair(key_pair: Mapping[str, Any]) -> KeyPairFacts:
    return KeyPairFacts(name=str(key_pair["name"]), fingerprint=key_pair.get("fingerprint"),
                        tags=_tag_dict(key_pair))


def openssh_fingerprint(value: str) -> str:
    """``SHA256:<unpadded base64>``, whichever of the usual spellings AWS returns."""
    digest = value.strip().removeprefix("SHA256:").rstrip("=")
    return f"SHA256:{digest}"


def ranked_host_keys(host_keys: list[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """The reported host keys that carry a SHA256 fingerprint, preferred algorithm first."""
    usable = [k for k in host_keys if k.get("fingerprintSHA256")]
    preference = {algorithm: rank for rank, algorithm in enumerate(HOST_KEY_PREFERENCE)}
    return sorted(usable, key=lambda key: preference.get(str(key.get("algorithm", "")), len(preference)))


def wanted_ports(ssh_cidrs: tuple[str, ...]) -> list[dict[str, Any]]:
    """80 and 443 open to the world; 22 open to ``ssh_cidrs`` (IPv4 and IPv6 split) or to all."""
    everyone = {"cidrs": ["0.0.0.0/0"], "ipv6Cidrs": ["::/0"]}
    ssh: dict[str, list[str]] = {"cidrs": [], "ipv6Cidrs": []}
    for cidr in ssh_cidrs:
        network = ipaddress.ip_network(cidr, strict=False)
        ssh["ipv6Cidrs" if network.version == 6 else "cidrs"].append(str(network))
    ssh_rule = {k: v for k, v in ssh.items() if v} if ssh_cidrs else everyone
    return [
        {"fromPort": 80, "toPort": 80, "protocol": "tcp", **everyone},
        {"fromPort": 443, "toPort": 443, "protocol": "tcp", **everyone},
        {"fromPort": 22, "toPort": 22, "protocol": "tcp", **ssh_rule},
    ]


def _port_key(port: Mapping[str, Any]) -> tuple[int, int, str, frozenset[str], frozenset[str]]:
    return (int(port.get("fromPort", -1)), int(port.get("toPort", -1)), str(port.get("protocol", "")),
            frozenset(port.get("cidrs", [])), frozenset(port.get("ipv6Cidrs", [])))


class LightsailCloud:
    """``CloudProvider`` for Lightsail in one region (the spec's region)."""

    def __init__(self, region: str, settings: ClientSettings | None = None, *,
                 client: AwsClient | None = None, poll_interval: float = 5.0) -> None:
        self.region = region
        self._client = client or AwsClient("lightsail", region, settings)
        self._poll_interval = poll_interval
        self._catalog: dict[str, Any] = {}

    # ---- plumbing ----------------------------------------------------------

    async def _call(self, operation: str, **params: Any) -> dict[str, Any]:
        try:
            return await self._client.call(operation, **params)
        except CloudCallError as failure:
            raise failure.to_stage_error() from None

    async def _call_or_none(self, operation: str, **params: Any) -> dict[str, Any] | None:
        """Like ``_call``, but NotFound means "absent" and gives None."""
        try:
            return await self._client.call(operation, **params)
        except CloudCallError as failure:
            if failure.is_not_found:
                return None
            raise failure.to_stage_error() from None

    # ---- catalog -----------------------------------------------------------

    async def _regions(self) -> dict[str, list[str]]:
        if "regions" not in self._catalog:
            response = await self._call("get_regions", includeAvailabilityZones=True)
            self._catalog["regions"] = {
                r["name"]: [z["zoneName"] for z in r.get("availabilityZones", [])
                            if z.get("state") == "available"]
                for r in response.get("regions", [])
            }
        regions: dict[str, list[str]] = self._catalog["regions"]
        return regions

    async def _paged_ids(self, operation: str, list_key: str, id_key: str) -> list[str]:
        if operation not in self._catalog:
            ids: list[str] = []
            page: dict[str, Any] = {}
            while True:
                response = await self._call(operation, **page)
                active = [item for item in response.get(list_key, []) if item.get("isActive", True)]
                ids.extend(item[id_key] for item in active)
                if operation == "get_bundles":
                    self._catalog.setdefault("bundle_ram", {}).update(
                        {item[id_key]: float(item.get("ramSizeInGb", 0.0)) for item in active})
                if not response.get("nextPageToken"):
                    break
                page = {"pageToken": response["nextPageToken"]}
            self._catalog[operation] = sorted(ids)
        known: list[str] = self._catalog[operation]
        return known

    async def validate(self, region: str, availability_zone: str | None,
                       bundle_id: str, blueprint_id: str, *, min_ram_gb: float = 0.0) -> None:
        regions = await self._regions()
        if region not in regions:
            raise _unknown("region", "UnknownRegion", "region", region, sorted(regions))
        if availability_zone is not None and availability_zone not in regions[region]:
            raise _unknown("availabilityZone", "UnknownAvailabilityZone", f"availability zone in {region}",
                           availability_zone, regions[region])
        bundles = await self._paged_ids("get_bundles", "bundles", "bundleId")
        if bundle_id not in bundles:
            raise _unknown("bundleId", "UnknownBundle", "bundle", bundle_id, bundles)
        memory: dict[str, float] = self._catalog.get("bundle_ram", {})
        if memory.get(bundle_id, 0.0) < min_ram_gb:
            large_enough = [b for b in bundles if memory.get(b, 0.0) >= min_ram_gb]
            raise errors.InvalidSpecError(
                f"{_SPEC_FIELD}.bundleId",
                f"bundle {bundle_id} has {memory.get(bundle_id, 0.0):g} GB of memory; the build needs at least "
                f"{min_ram_gb:g} GB (O4O's TypeScript build peaks at about 1.6 GB); choose one of "
                f"{', '.join(large_enough) or 'none available'}", reason="BundleTooSmall")
        blueprints = await self._paged_ids("get_blueprints", "blueprints", "blueprintId")
        if blueprint_id not in blueprints:
            raise _unknown("blueprintId", "UnknownBlueprint", "blueprint", blueprint_id, blueprints)

    async def _default_zone(self, region: str) -> str:
        zones = (await self._regions()).get(region) or [f"{region}a"]
        return zones[0]

    # ---- servers -----------------------------------------------------------

    async def find_server(self, name: str) -> ServerFacts | None:
        response = await self._call_or_none("get_instance", instanceName=name)
        return facts_from_instance(response["instance"]) if response else None

    async def find_key_pair(self, name: str) -> KeyPairFacts | None:
        response = await self._call_or_none("get_key_pair", keyPairName=name)
        return facts_from_key_pair(response["keyPair"]) if response else None

    async def ensure_key_pair(self, name: str, public_key_openssh: str,
                              tags: Mapping[str, str] | None = None) -> KeyPairFacts:
        found = await self.find_key_pair(name)
        if found is not None:
            return found
        lightsail_tags(tags or {})  # refused before anything is imported
        try:
            await self._client.call("import_key_pair", keyPairName=name,
                                    publicKeyBase64=public_key_openssh.strip())
        except CloudCallError as failure:
            found = await self.find_key_pair(name)
            if found is not None:
                return found  # imported meanwhile (or our earlier response was lost): the caller checks it
            raise failure.to_stage_error() from None
        logger.info("Imported key pair %s into %s", name, self.region)
        if tags:  # ImportKeyPair takes no tags
            await self.tag_key_pair(name, tags)
        found = await self.find_key_pair(name)
        if found is None:
            raise errors.TransientError("KeyPairNotVisible", f"key pair {name} is not visible yet")
        return found

    async def tag_key_pair(self, name: str, tags: Mapping[str, str]) -> None:
        key_pair = (await self._call("get_key_pair", keyPairName=name))["keyPair"]
        # The ARN says which resource of that name: a server may share it.
        await self._call("tag_resource", resourceName=name, resourceArn=key_pair["arn"], tags=lightsail_tags(tags))

    async def delete_key_pair(self, name: str) -> None:
        if await self._call_or_none("delete_key_pair", keyPairName=name):
            logger.info("Deleted key pair %s from %s", name, self.region)

    async def tag_server(self, name: str, tags: Mapping[str, str]) -> None:
        instance = (await self._call("get_instance", instanceName=name))["instance"]
        await self._call("tag_resource", resourceName=name, resourceArn=instance["arn"], tags=lightsail_tags(tags))
        logger.info("Tagged server %s as %s", name, ", ".join(sorted(tags)))

    async def create_server(self, request: ServerRequest) -> None:
        tags = lightsail_tags(request.tags)
        if await self.find_server(request.name) is not None:
            logger.info("Found server %s already created; left it as it is", request.name)
            return
        zone = request.availability_zone or await self._default_zone(request.region)
        params: dict[str, Any] = {"instanceNames": [request.name], "availabilityZone": zone,
                                  "blueprintId": request.blueprint_id, "bundleId": request.bundle_id,
                                  "keyPairName": request.key_pair_name, "tags": tags}
        try:
            await self._client.call("create_instances", **params)
        except CloudCallError as failure:
            if await self.find_server(request.name) is not None:
                logger.info("Found server %s already created; left it as it is", request.name)
                return
            raise failure.to_stage_error() from None
        logger.info("Created server %s in %s (%s, %s)", request.name, zone, request.bundle_id,
                    request.blueprint_id)

    async def start_server(self, name: str) -> None:
        await self._call("start_instance", instanceName=name)
        logger.info("Started server %s", name)

    async def wait_running(self, name: str, timeout: float) -> ServerFacts:  # noqa: ASYNC109 (the Protocol)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            facts = await self.find_server(name)
            if facts is not None and facts.state == "running":
                return facts
            remaining = deadline - loop.time()
            if remaining <= 0:
                seen = facts.state if facts else "not found"
                raise errors.TransientError("ServerNotRunning", f"server {name} is {seen} after {timeout:g}s")
            await asyncio.sleep(min(self._poll_interval, remaining))

    async def ensure_static_ip(self, server_name: str, static_ip_name: str) -> str:
        static_ip = await self._static_ip(static_ip_name)
        if static_ip is None:
            try:
                await self._client.call("allocate_static_ip", staticIpName=static_ip_name)
            except CloudCallError as failure:
                if await self._static_ip(static_ip_name) is None:
                    raise failure.to_stage_error() from None
            else:
                logger.info("Allocated static IP %s", static_ip_name)
            static_ip = await self._static_ip(static_ip_name)
            if static_ip is None:
                raise errors.TransientError("StaticIpNotVisible",
                                            f"static IP {static_ip_name} is not visible yet")
        address = str(static_ip["ipAddress"])
        attached_to = static_ip.get("attachedTo") if static_ip.get("isAttached") else None
        if attached_to == server_name:
            return address
        if attached_to:
            raise errors.PermanentError(
                "StaticIpInUse", f"static IP {static_ip_name} ({address}) is attached to {attached_to}, "
                f"not to {server_name}")
        await self._call("attach_static_ip", staticIpName=static_ip_name, instanceName=server_name)
        logger.info("Attached static IP %s (%s) to server %s", static_ip_name, address, server_name)
        return address

    async def _static_ip(self, name: str) -> dict[str, Any] | None:
        response = await self._call_or_none("get_static_ip", staticIpName=name)
        return response["staticIp"] if response else None

    async def ensure_ports(self, server_name: str, ssh_cidrs: tuple[str, ...]) -> None:
        try:
            wanted = wanted_ports(ssh_cidrs)
        except ValueError as exc:
            raise errors.InvalidSpecError(f"{_SPEC_FIELD}.sshAllowedCidrs", str(exc)) from None
        response = await self._call("get_instance", instanceName=server_name)
        current = [p for p in response["instance"].get("networking", {}).get("ports", [])
                   if p.get("accessDirection", "inbound") == "inbound"]
        if sorted(map(_port_key, current)) == sorted(map(_port_key, wanted)):
            return
        await self._call("put_instance_public_ports", instanceName=server_name, portInfos=wanted)
        logger.info("Declared firewall of server %s: 80, 443 and 22 (%s)", server_name,
                    ", ".join(ssh_cidrs) or "anywhere")

    async def host_key_fingerprint(self, server_name: str) -> str | None:
        fingerprints = await self.host_key_fingerprints(server_name)
        return fingerprints[0] if fingerprints else None

    async def host_key_fingerprints(self, server_name: str) -> tuple[str, ...]:
        response = await self._call_or_none("get_instance_access_details", instanceName=server_name,
                                            protocol="ssh")
        if response is None:
            return ()
        ranked = ranked_host_keys(response.get("accessDetails", {}).get("hostKeys", []))
        return tuple(dict.fromkeys(openssh_fingerprint(str(key["fingerprintSHA256"])) for key in ranked))

    async def delete_server(self, server_name: str, static_ip_name: str | None) -> None:
        if static_ip_name:
            await self._release_static_ip(server_name, static_ip_name)
        if await self._call_or_none("delete_instance", instanceName=server_name, forceDeleteAddOns=True):
            logger.info("Deleted server %s", server_name)

    async def release_static_ip(self, static_ip_name: str) -> None:
        await self._release_static_ip(None, static_ip_name)

    async def _release_static_ip(self, server_name: str | None, static_ip_name: str) -> None:
        static_ip = await self._static_ip(static_ip_name)
        if static_ip is None:
            return
        attached_to = static_ip.get("attachedTo") if static_ip.get("isAttached") else None
        if attached_to and attached_to != server_name:
            logger.warning("Left static IP %s alone: it is attached to %s, not %s",
                           static_ip_name, attached_to, server_name)
            return
        if attached_to:
            await self._call_or_none("detach_static_ip", staticIpName=static_ip_name)
        if await self._call_or_none("release_static_ip", staticIpName=static_ip_name):
            logger.info("Released static IP %s", static_ip_name)


def _unknown(field: str, reason: str, what: str, value: str, choices: list[str]) -> errors.InvalidSpecError:
    listed = ", ".join(choices) if choices else "none available"
    message = f"unknown {what} {value!r}; valid choices: {listed}"
    return errors.InvalidSpecError(f"{_SPEC_FIELD}.{field}", message, reason=reason)
