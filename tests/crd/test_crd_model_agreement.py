"""The CRD refuses whatever the models refuse, so a spec the operator cannot parse never gets in.

A stored spec that ``DeploymentInstanceSpec`` refuses stalls the instance, and teardown cannot read it
either. So for every field, any value the models refuse must already be refused by the apiserver, naming
that field. Two tests say so: a table of the values found to slip through (each refused by the real
apiserver naming its field, and by the models naming the same field), and a walk over every string field
of the models that mutates a full, valid spec (control characters, trailing newlines, Unicode spaces,
path segments, lengths just past the models' limits) and checks each value the models refuse against
the apiserver. What CEL cannot say stays in :data:`BEYOND_THE_SCHEMA`, each with the reason.
"""

from __future__ import annotations

import copy
import datetime
import functools
import json
import ssl
import types
import typing
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pydantic
import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from o4o_operator.models import DeploymentInstanceSpec
from o4o_operator.models_inventory import ItemKind, ItemState
from o4o_operator.runner.worker import _invalid_spec_message
from o4o_operator.testing import ControlPlane

CRD = Path(__file__).resolve().parents[2] / "crds" / "deploymentinstances.deploy.o4o.io.yaml"
_KEY = ec.generate_private_key(ec.SECP256R1())


def _root() -> str:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Agreement Root CA")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(_KEY.public_key())
                   .serial_number(x509.random_serial_number()).not_valid_before(now)
                   .not_valid_after(now + datetime.timedelta(days=1))
                   .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                   .sign(_KEY, hashes.SHA256()))
    return certificate.public_bytes(serialization.Encoding.PEM).decode()


ROOT = _root()
PUBLIC_KEY = _KEY.public_key().public_bytes(serialization.Encoding.PEM,
                                            serialization.PublicFormat.SubjectPublicKeyInfo).decode()
BUILD = {
    "installFlags": ["--frozen-lockfile"],
    "site": {"package": "@o4o/main-site", "buildScript": "build", "outputDir": "apps/main-site/dist",
             "apiUrlVariable": "VITE_API_URL", "env": {"SITE_NAME": "Shop"}},
    "api": {"package": "@o4o/api-server", "directory": "apps/api-server", "buildScript": "build",
            "bundleScript": "build:api", "entryPoint": "dist/main.js", "migrateCommand": ["node", "dist/migrate.js"],
            "keepAcrossBundle": ["dist/database"], "uploadsDir": "public/uploads",
            "adminCommand": ["npx", "tsx", "create-admin.ts", "--email=${O4O_ADMIN_EMAIL}"],
            "dataSource": {"module": "dist/data-source.js", "export": "AppDataSource",
                           "buildCommand": ["node_modules/.bin/tsup", "src/data-source.ts"]},
            "seedCommand": ["node", "dist/seed.js"]},
    "health": {"path": "/api/health", "bodyField": "database.status", "expect": "healthy"},
}
LIGHTSAIL = {
    "domain": "shop.example.com", "description": "The shop", "apps": ["forum-core"],
    "provider": {"lightsail": {
        "region": "ap-northeast-2", "availabilityZone": "ap-northeast-2a", "bundleId": "small_3_0",
        "blueprintId": "ubuntu_22_04", "keyPairName": "shop-key", "sshAllowedCidrs": ["198.51.100.0/24"],
        "credentialsSecretRef": {"name": "aws", "accessKeyIdKey": "id", "secretAccessKeyKey": "secret"}}},
    "ssh": {"user": "ubuntu", "privateKeySecretRef": {"name": "shop-ssh", "key": "ssh-privatekey"},
            "hostKeyFingerprint": "SHA256:" + "A" * 43, "trustOnFirstUse": False},
    "source": {"repository": "https://example.com/o4o.git", "revision": "main",
               "credentialsSecretRef": {"name": "git", "key": "token"}},
    "tls": {"email": "ops@example.com", "server": "https://acme.example.com/dir", "acmeCABundle": ROOT,
            "certificateCABundle": f"# two roots\n{ROOT}{ROOT}"},
    "build": BUILD,
    "dns": {"provider": "route53", "zone": "example.com", "hostedZoneId": "Z0123456789", "ttl": 300},
    "database": {"external": {"secretRef": {"name": "shop-db"}, "caSecretRef": {"name": "shop-db-ca", "key": "ca.crt"}},
                 "extensions": ["uuid-ossp"],
                 "bootstrap": {"mode": "command", "command": ["node", "dist/bootstrap.js"],
                               "restore": {"template": {"key": "templates/base.dump", "sha256": "a" * 64}}},
                 "restore": {"backup": "20261205T120000Z-0123456789ab"},
                 "backup": {"target": {"s3": {"endpoint": "https://s3.example.com:9000", "bucket": "shop-backups",
                                              "region": "ap-northeast-2", "prefix": "o4o/backups",
                                              "credentialsSecretRef": {"name": "shop-s3", "accessKeyIdKey": "id",
                                                                       "secretAccessKeyKey": "secret"}}},
                            "retention": {"count": 7, "maxAge": "30d"}, "schedule": "30 3 * * 1-5"}},
    "env": [{"name": "shop-env"}],
    "postInstall": [{"name": "seed", "command": ["node", "seed.js", "--admin=${O4O_ADMIN_EMAIL}"]},
                    {"name": "title", "request": {"method": "PUT", "path": "/api/v1/admin/settings?x=1",
                                                  "body": {"siteName": "Shop"}}}],
    "apiPort": 3001, "deletionPolicy": "Delete", "paused": False,
}
EXISTING = {**copy.deepcopy(LIGHTSAIL), "provider": {"existing": {"host": "shop-host.example.com", "port": 22}},
            "ssh": {"user": "deploy", "privateKeySecretRef": {"name": "shop-ssh", "key": "id"},
                    "trustOnFirstUse": True},
            "dns": {"provider": "lightsail", "zone": "example.com"}}
EXISTING["database"]["bootstrap"] = {"mode": "restore", "restore": {"instance": {"name": "shop", "namespace": "team-a"},
                                                                    "backup": "20261205T120000Z-0123456789ab"}}
EXISTING["database"]["backup"] = {"target": {"lightsailBucket": {"name": "shop-backups", "region": "ap-northeast-2",
                                                                 "prefix": "o4o/backups"}}, "schedule": "@daily"}
BASES = {"lightsail": LIGHTSAIL, "existing": EXISTING}

FREE_JSON = {"spec.postInstall.request.body"}
"""Sent as the user wrote it (``x-kubernetes-preserve-unknown-fields``); only its encoded size is checked."""
NOT_IN_THE_CRD = {"spec.provider.existing.user": "unused by the operator; the CRD has no such field, so it is "
                                                  "pruned and the model's default (None) is what it reads"}
BEYOND_THE_SCHEMA = {
    "a certificate block whose base64 is no X.509 certificate": "CEL in 1.34 has no base64 decoding, let alone "
                                                               "X.509 parsing (the CRD checks the PEM shape)",
    "a request body over 8192 bytes of JSON": "CEL cannot encode an object as JSON to measure it",
}
"""What the models refuse and no OpenAPI pattern or CEL rule can say (not asserted against the apiserver)."""


def _spec(base: str, **changes: Any) -> dict[str, Any]:
    spec = copy.deepcopy(BASES[base])
    for path, value in changes.items():
        *parents, leaf = path.split(".")
        node = spec
        for key in parents:
            node = node[int(key)] if isinstance(node, list) else node[key]
        if isinstance(node, list):
            node[int(leaf)] = value
        else:
            node[leaf] = value
    return spec


def _env(mapping: dict[str, str]) -> dict[str, Any]:
    return {"build.site.env": mapping}


MANGLED = ROOT.replace(ROOT.splitlines()[2], "A" * len(ROOT.splitlines()[2]))
MODEL_STRICTER: list[tuple[str, str, dict[str, Any], str]] = [
    ("site env value ending in a newline (a YAML | scalar)", "lightsail", _env({"SITE_NAME": "Shop\n"}),
     "spec.build.site.env"),
    ("site env value with a tab", "lightsail", _env({"SITE_NAME": "a\tb"}), "spec.build.site.env"),
    ("site env value with DEL", "lightsail", _env({"SITE_NAME": "a\x7f"}), "spec.build.site.env"),
    ("site env name of 101 characters", "lightsail", _env({"A" * 101: "x"}), "spec.build.site.env"),
    ("tls email ending in a no-break space", "lightsail", {"tls.email": "ops@example.com\u00a0"}, "spec.tls.email"),
    ("tls email with a vertical tab", "lightsail", {"tls.email": "o\x0bps@example.com"}, "spec.tls.email"),
    ("tls email with a line separator", "lightsail", {"tls.email": "ops@exa\u2028mple.com"}, "spec.tls.email"),
    ("acme CA bundle whose block never ends", "lightsail", {"tls.acmeCABundle": ROOT.split("-----END")[0]},
     "spec.tls.acmeCABundle"),
    ("acme CA bundle with a public key beside the certificate", "lightsail",
     {"tls.acmeCABundle": ROOT + PUBLIC_KEY}, "spec.tls.acmeCABundle"),
    ("acme CA bundle whose block is not base64", "lightsail",
     {"tls.acmeCABundle": "-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----\n"},
     "spec.tls.acmeCABundle"),
    ("certificate CA bundle whose block holds no DER", "lightsail",
     {"tls.certificateCABundle": "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"},
     "spec.tls.certificateCABundle"),
    ("certificate CA bundle with a request inside a text line", "lightsail",
     {"tls.certificateCABundle": ROOT + "x -----BEGIN CERTIFICATE REQUEST-----\nMIIB\n"
                                        "x -----END CERTIFICATE REQUEST-----\n"}, "spec.tls.certificateCABundle"),
    ("certificate CA bundle with an empty block", "lightsail",
     {"tls.certificateCABundle": "-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n"},
     "spec.tls.certificateCABundle"),
    ("post-install request path with an empty segment", "lightsail",
     {"postInstall.1.request.path": "/api//admin"}, "spec.postInstall[1].request.path"),
    ("post-install request path with a .. segment", "lightsail",
     {"postInstall.1.request.path": "/api/../admin"}, "spec.postInstall[1].request.path"),
    ("post-install request path ending in ..", "lightsail",
     {"postInstall.1.request.path": "/api/.."}, "spec.postInstall[1].request.path"),
]


class Apiserver:
    """Server-side dry runs of a DeploymentInstance, as admin; answers the fields the apiserver names."""

    def __init__(self, plane: ControlPlane, namespace: str) -> None:
        self._url = f"{plane.server}/apis/deploy.o4o.io/v1alpha1/namespaces/{namespace}/deploymentinstances" \
                    "?dryRun=All"
        self._context: ssl.SSLContext = plane.ssl_context()

    def refused_fields(self, spec: dict[str, Any]) -> list[str] | None:
        """None when the apiserver accepts ``spec``; else the fields its causes name (and its message)."""
        body = {"apiVersion": "deploy.o4o.io/v1alpha1", "kind": "DeploymentInstance",
                "metadata": {"name": "agreement"}, "spec": spec}
        request = urllib.request.Request(self._url, data=json.dumps(body).encode(), method="POST",  # noqa: S310
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, context=self._context, timeout=30):  # noqa: S310
                return None
        except urllib.error.HTTPError as error:
            status = json.loads(error.read())
        assert status.get("reason") == "Invalid", status
        causes = status.get("details", {}).get("causes", [])
        return [cause.get("field", "") for cause in causes] + [status.get("message", "")]


@pytest.fixture
def apiserver(control_plane: ControlPlane, namespace: str) -> Apiserver:
    return Apiserver(control_plane, namespace)


def _model_refusal(spec: dict[str, Any]) -> str | None:
    """The models' refusal of ``spec`` as the worker states it (field first), or None."""
    try:
        DeploymentInstanceSpec.model_validate(spec)
    except pydantic.ValidationError as error:
        return _invalid_spec_message(error)
    return None


def _beyond_the_schema(refusal: str) -> bool:
    return "not a valid X.509 certificate" in refusal or "bytes of JSON" in refusal


def test_the_full_specs_are_valid_to_both(apiserver: Apiserver) -> None:
    for base in BASES:
        assert _model_refusal(_spec(base)) is None
        assert apiserver.refused_fields(_spec(base)) is None


@pytest.mark.parametrize(("case", "base", "changes", "field"), MODEL_STRICTER, ids=[c[0] for c in MODEL_STRICTER])
def test_the_crd_refuses_what_only_the_models_refused_naming_the_field(
        apiserver: Apiserver, case: str, base: str, changes: dict[str, Any], field: str) -> None:
    refused = apiserver.refused_fields(_spec(base, **changes))
    assert refused is not None, f"{case} was accepted"
    assert any(named.startswith(field) for named in refused), f"{case}: not named {field}: {refused}"


@pytest.mark.parametrize(("case", "base", "changes", "field"), MODEL_STRICTER, ids=[c[0] for c in MODEL_STRICTER])
def test_the_models_refuse_the_same_values_naming_the_field(case: str, base: str, changes: dict[str, Any],
                                                            field: str) -> None:
    refusal = _model_refusal(_spec(base, **changes))
    assert refusal is not None, f"{case} was accepted by the models"
    assert refusal.startswith(_model_field(field)), refusal


def _model_field(field: str) -> str:
    """How the worker's InvalidSpec message names a field: list indexes as dotted parts."""
    return field.replace("[", ".").replace("]", "")


def test_what_only_the_models_can_check_is_still_refused_by_them() -> None:
    """The two rows of BEYOND_THE_SCHEMA: the models refuse them (the apiserver cannot)."""
    assert "not a valid X.509 certificate" in (_model_refusal(_spec("lightsail", **{"tls.acmeCABundle": MANGLED}))
                                               or "")
    big = {"siteName": "x" * 8200}
    assert "8192 bytes" in (_model_refusal(_spec("lightsail", **{"postInstall.1.request.body": big})) or "")
    assert len(BEYOND_THE_SCHEMA) == 2


# ---- the walk over every string field -------------------------------------------------------------------------

@functools.cache
def _schema() -> dict[str, Any]:
    return yaml.safe_load(CRD.read_text())["spec"]["versions"][0]["schema"]["openAPIV3Schema"]  # type: ignore[no-any-return]


def _schema_node(path: str) -> dict[str, Any] | None:
    """The CRD's schema of a dotted model path (``spec.a.b``), through arrays' items."""
    node: dict[str, Any] = _schema()
    for part in path.split("."):
        while node.get("type") == "array":
            node = node["items"]
        properties = node.get("properties") or {}
        if part not in properties:
            return None
        node = properties[part]
    return node


def _models_in(annotation: Any) -> Iterator[type[pydantic.BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, pydantic.BaseModel):
        yield annotation
    for argument in typing.get_args(annotation):
        yield from _models_in(argument)


def _holds_strings(annotation: Any) -> bool:
    if annotation is str:
        return True
    if isinstance(annotation, type) and issubclass(annotation, str):  # a str enum
        return True
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is not None:
        return any(_holds_strings(argument) for argument in typing.get_args(annotation)
                   if not (isinstance(argument, type) and issubclass(argument, pydantic.BaseModel)))
    return False


def _model_fields(model: type[pydantic.BaseModel], prefix: str) -> Iterator[tuple[str, Any]]:
    for name, field in model.model_fields.items():
        path = f"{prefix}.{field.alias or name}"
        yield path, field.annotation
        for inner in _models_in(field.annotation):
            yield from _model_fields(inner, path)


MODEL_FIELDS = dict(_model_fields(DeploymentInstanceSpec, "spec"))


def _leaves(node: Any, path: str) -> Iterator[tuple[str, str]]:
    """(dotted path with list indexes, value) of every string in a spec; a map's keys are leaves too."""
    if path == "spec.postInstall.1.request.body":
        return  # free JSON (FREE_JSON)
    if isinstance(node, dict):
        for key, value in node.items():
            if path == "spec.build.site.env":
                yield f"{path}.<key>.{key}", key
            yield from _leaves(value, f"{path}.{key}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _leaves(value, f"{path}.{index}")
    elif isinstance(node, str):
        yield path, node


def _field_of(leaf: str) -> str:
    """The model's path of a leaf: no list indexes, a map's keys and values under the map's own path."""
    parts = [part for part in leaf.split(".") if not part.isdigit()]
    if parts[:4] == ["spec", "build", "site", "env"]:
        return "spec.build.site.env"
    return ".".join(parts)


def test_every_model_field_is_in_the_crd_and_every_string_field_is_walked() -> None:
    missing = sorted(path for path in MODEL_FIELDS if _schema_node(path) is None and path not in NOT_IN_THE_CRD)
    assert not missing, f"model fields the CRD does not have (it prunes them): {missing}"
    walked = {_field_of(leaf) for base in BASES for leaf, _ in _leaves(BASES[base], "spec")}
    unwalked = sorted(path for path, annotation in MODEL_FIELDS.items()
                      if _holds_strings(annotation) and path not in walked | FREE_JSON | NOT_IN_THE_CRD.keys())
    assert not unwalked, f"string fields the full specs leave out, so the walk cannot mutate them: {unwalked}"


CHARACTERS = ["\n", "\r", "\t", "\x00", "\x0b", "\x1f", "\x7f", "\x85", "\u00a0", "\u2028", "\u3000", " ", "-",
              "/", ".", "@", "$", "'", ";", "*", "%", "?", "#", "{", "~", "..", "//", "/..", "/../", "${O4O_X}"]
LENGTHS = (64, 101, 215, 254, 256, 513, 1025, 2049, 65537)


def _mutations() -> Iterator[tuple[str, Callable[[str], str]]]:
    for character in CHARACTERS:
        yield f"ends with {character!r}", lambda value, c=character: value + c
        yield f"starts with {character!r}", lambda value, c=character: c + value
        yield f"holds {character!r}", lambda value, c=character: value[:len(value) // 2] + c + value[len(value) // 2:]
    yield "empty", lambda value: ""
    yield "one character", lambda value: value[:1]


def _set_leaf(spec: dict[str, Any], leaf: str, value: str) -> dict[str, Any]:
    """``spec`` with the string at ``leaf`` (a path from _leaves) set to ``value``; a map's key is renamed."""
    parts = leaf.split(".")[1:]
    node: Any = spec
    if "<key>" in parts:
        at = parts.index("<key>")
        for part in parts[:at]:
            node = node[part]
        node[value] = node.pop(parts[at + 1])
        return spec
    for part in parts[:-1]:
        node = node[int(part)] if isinstance(node, list) else node[part]
    if isinstance(node, list):
        node[int(parts[-1])] = value
    else:
        node[parts[-1]] = value
    return spec


def _with_leaf(base: str, leaf: str, value: str) -> dict[str, Any]:
    return _set_leaf(_spec(base), leaf, value)


def _over_the_limit(base: str, leaf: str, value: str) -> str | None:
    """The shortest padding of ``value`` among LENGTHS that the models refuse while they took the one before."""
    accepted = True
    for length in LENGTHS:
        longer = value + "a" * max(0, length - len(value))
        refused = _model_refusal(_with_leaf(base, leaf, longer)) is not None
        if refused and accepted:
            return longer
        accepted = not refused
    return None


def _apply_all(base: str, values: dict[str, str]) -> dict[str, Any]:
    spec = _spec(base)
    for leaf, value in values.items():
        _set_leaf(spec, leaf, value)
    return spec


def _names(named: list[str] | None, field: str) -> bool:
    return any(entry.startswith(field) for entry in named or [])


@pytest.mark.parametrize("base", sorted(BASES))
def test_every_value_the_models_refuse_the_crd_refuses_naming_the_field(apiserver: Apiserver, base: str) -> None:
    """Each mutation is applied to every string of a full spec, one leaf at a time for the models; the leaves
    the models refuse are then sent to the apiserver together, which must name every one of them."""
    leaves = [(leaf, value) for leaf, value in _leaves(BASES[base], "spec") if "<key>" not in leaf]
    keys = [(leaf, value) for leaf, value in _leaves(BASES[base], "spec") if "<key>" in leaf]
    problems: list[str] = []
    checked = 0
    batches = [(name, {leaf: mutate(value) for leaf, value in leaves}) for name, mutate in _mutations()]
    limits = {leaf: longer for leaf, value in leaves if (longer := _over_the_limit(base, leaf, value)) is not None}
    batches.append(("just over the models' length limit", limits))
    for name, candidates in batches:
        refusals = {leaf: (value, _model_refusal(_with_leaf(base, leaf, value))) for leaf, value in candidates.items()}
        refused = {leaf: value for leaf, (value, refusal) in refusals.items()
                   if refusal is not None and not _beyond_the_schema(refusal)}
        if not refused:
            continue
        # All at once first; a leaf not named there is sent alone (a refused enum, length or required field
        # keeps the apiserver from running the CEL rules of the others).
        named = apiserver.refused_fields(_apply_all(base, refused))
        for leaf, value in refused.items():
            checked += 1
            field = _api_field(leaf)
            if _names(named, field) or _names(apiserver.refused_fields(_with_leaf(base, leaf, value)), field):
                continue
            problems.append(f"{name}: {field} ({value[:40]!r}) is refused by the models, not by the CRD")
    for leaf, key in keys:
        for name, mutate in _mutations():
            renamed = mutate(key)
            if renamed == key or _model_refusal(_with_leaf(base, leaf, renamed)) is None:
                continue
            checked += 1
            if not _names(apiserver.refused_fields(_with_leaf(base, leaf, renamed)), "spec.build.site.env"):
                problems.append(f"{name}: the key {renamed!r} of spec.build.site.env is refused by the models only")
    assert checked > 200
    assert not problems, "\n".join(problems)


def _api_field(leaf: str) -> str:
    """How the apiserver names a leaf: list indexes in brackets (``spec.postInstall[1].request.path``)."""
    named = ""
    for part in leaf.split("."):
        named += f"[{part}]" if part.isdigit() else (f".{part}" if named else part)
    return named


def test_the_crd_admits_every_inventory_kind_and_state_the_models_have() -> None:
    """A kind the CRD's enum lacks makes every status write of an instance holding one fail (HTTP 422)."""
    kind, state = _schema_node("status.inventory.kind"), _schema_node("status.inventory.state")
    assert kind is not None and state is not None
    assert set(kind["enum"]) == {item.value for item in ItemKind}
    assert set(state["enum"]) == {item.value for item in ItemState}
