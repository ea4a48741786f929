"""The local Lightsail's fixed catalog: regions with zones, bundles, blueprints, host keys.

Owns: a small, realistic subset of what Lightsail offers (as output-shaped dicts)
and the default SSH host keys handed out for instances. Purely computational: no
I/O, no state.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
from typing import Any

DOMAIN_OPERATIONS = frozenset({"CreateDomain", "GetDomain", "GetDomains", "DeleteDomain",
                               "CreateDomainEntry", "UpdateDomainEntry", "DeleteDomainEntry"})

_REGIONS: dict[str, tuple[str, str, str, str]] = {
    # name: (continent, display name, description, zone letters)
    "us-east-1": ("NA", "Virginia", "This region is recommended to serve users in the eastern United States",
                  "abcdef"),
    "us-west-2": ("NA", "Oregon", "This region is recommended to serve users in the northwestern US", "abcd"),
    "eu-west-2": ("EU", "London", "This region is recommended to serve users in London", "abc"),
    "eu-central-1": ("EU", "Frankfurt", "This region is recommended to serve users in Central Europe", "abc"),
    "ap-northeast-2": ("AP", "Seoul", "This region is recommended to serve users in South Korea", "abcd"),
}

_BUNDLES: tuple[tuple[str, str, float, float, int, int, int], ...] = (
    # id, name, price, RAM GB, disk GB, transfer GB, power
    ("nano_3_0", "Nano", 5.0, 0.5, 20, 1024, 298),
    ("micro_3_0", "Micro", 7.0, 1.0, 40, 2048, 500),
    ("small_3_0", "Small", 12.0, 2.0, 60, 3072, 1000),
    ("medium_3_0", "Medium", 24.0, 4.0, 80, 4096, 2000),
)
BUNDLE_IDS = frozenset(b[0] for b in _BUNDLES)

_BLUEPRINTS: dict[str, tuple[str, str, str, str]] = {
    # id: (name, group, version, default user)
    "ubuntu_22_04": ("Ubuntu", "ubuntu_22", "22.04 LTS", "ubuntu"),
    "ubuntu_24_04": ("Ubuntu", "ubuntu_24", "24.04 LTS", "ubuntu"),
    "debian_12": ("Debian", "debian_12", "12.8", "admin"),
}
BLUEPRINT_IDS = frozenset(_BLUEPRINTS)


def zones(region: str) -> list[str]:
    letters = _REGIONS[region][3] if region in _REGIONS else ""
    return [f"{region}{letter}" for letter in letters]


def regions(include_zones: bool, include_database_zones: bool) -> list[dict[str, Any]]:
    result = []
    for name, (continent, display_name, description, _) in _REGIONS.items():
        region: dict[str, Any] = {"continentCode": continent, "description": description,
                                  "displayName": display_name, "name": name}
        if include_zones:
            region["availabilityZones"] = [{"zoneName": z, "state": "available"} for z in zones(name)]
        if include_database_zones:
            region["relationalDatabaseAvailabilityZones"] = [{"zoneName": z, "state": "available"}
                                                             for z in zones(name)[:2]]
        result.append(region)
    return result


def bundles() -> list[dict[str, Any]]:
    return [{"price": price, "cpuCount": 2, "diskSizeInGb": disk, "bundleId": bundle_id,
             "instanceType": size.lower(), "isActive": True, "name": size, "power": power, "ramSizeInGb": ram,
             "transferPerMonthInGb": transfer,
             "supportedPlatforms": ["LINUX_UNIX"], "supportedAppCategories": [], "publicIpv4AddressCount": 1}
            for bundle_id, size, price, ram, disk, transfer, power in _BUNDLES]


def blueprints() -> list[dict[str, Any]]:
    return [{"blueprintId": blueprint_id, "name": name, "group": group, "type": "os",
             "description": f"{name} {version}", "isActive": True, "minPower": 0, "version": version,
             "versionCode": "1", "productUrl": f"https://aws.amazon.com/marketplace/search?q={group}",
             "licenseUrl": "https://aws.amazon.com/marketplace", "platform": "LINUX_UNIX"}
            for blueprint_id, (name, group, version, _) in _BLUEPRINTS.items()]


def blueprint_name(blueprint_id: str) -> str:
    name, _, version, _ = _BLUEPRINTS[blueprint_id]
    return f"{name} {version}"


def username(blueprint_id: str) -> str:
    return _BLUEPRINTS[blueprint_id][3]


def hardware(bundle_id: str) -> dict[str, Any]:
    _, _, _, ram, disk, _, _ = next(b for b in _BUNDLES if b[0] == bundle_id)
    return {"cpuCount": 2, "ramSizeInGb": ram,
            "disks": [{"name": "system", "sizeInGb": disk, "isSystemDisk": True, "iops": 100,
                       "path": "/dev/xvda",
                       "state": "in-use", "isAttached": True, "attachmentState": "attached"}]}


def default_host_keys(instance_name: str) -> list[dict[str, Any]]:
    """A stable, well-formed ed25519 host key per instance (nobody holds its private half)."""
    raw = hashlib.sha256(f"o4o-local-host-key:{instance_name}".encode()).digest()
    algorithm = b"ssh-ed25519"
    blob = len(algorithm).to_bytes(4, "big") + algorithm + len(raw).to_bytes(4, "big") + raw
    return [host_key_entry("ssh-ed25519", blob)]


def host_key_entry(algorithm: str, blob: bytes) -> dict[str, Any]:
    """One ``hostKeys[]`` item for a public key in SSH wire format, fingerprints spelled as AWS does.

    Hooks can use it to describe a real sandbox host's key:
    ``host_key_entry("ssh-ed25519", base64.b64decode(line.split()[1]))``.
    """
    now = datetime.datetime.now(datetime.UTC)
    sha256 = base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")
    sha1 = base64.b64encode(hashlib.sha1(blob, usedforsecurity=False).digest()).decode().rstrip("=")
    return {"algorithm": algorithm, "publicKey": base64.b64encode(blob).decode(), "witnessedAt": now,
            "fingerprintSHA1": f"SHA1:{sha1}", "fingerprintSHA256": f"SHA256:{sha256}",
            "notValidBefore": now - datetime.timedelta(minutes=5),
            "notValidAfter": now + datetime.timedelta(days=7)}
