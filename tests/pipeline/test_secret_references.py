"""Secret references in the spec models: names are DNS-1123 subdomains, keys are Secret keys.

The CRD refuses the same values (tests/crd/test_crd.py); the models check again, so an object stored
before the CRD had its patterns, or one that reaches the operator some other way, stalls naming the field
instead of sending a path to the apiserver.
"""

from __future__ import annotations

from typing import Any

import pydantic
import pytest

from o4o_operator.models import DeploymentInstanceSpec
from o4o_operator.runner.worker import _invalid_spec_message

TRAVERSAL = "../../kube-system/secrets/x"


def _spec(**changes: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "domain": "shop.example.com",
        "provider": {"lightsail": {"region": "us-east-1", "credentialsSecretRef": {"name": "aws"}}},
        "ssh": {"privateKeySecretRef": {"name": "ssh-key", "key": "ssh-privatekey"}},
        "source": {"repository": "https://example.com/o4o.git",
                   "credentialsSecretRef": {"name": "git", "key": "token"}},
        "tls": {"email": "ops@example.com"},
        "env": [{"name": "app-env"}],
    }
    for path, value in changes.items():
        *parents, leaf = path.split("__")
        node = spec
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node[part]
        node[leaf] = value
    return spec


BAD = [
    ("ssh__privateKeySecretRef__name", TRAVERSAL, "spec.ssh.privateKeySecretRef.name"),
    ("ssh__privateKeySecretRef__name", "..", "spec.ssh.privateKeySecretRef.name"),
    ("ssh__privateKeySecretRef__name", "Key", "spec.ssh.privateKeySecretRef.name"),
    ("ssh__privateKeySecretRef__key", "../k", "spec.ssh.privateKeySecretRef.key"),
    ("ssh__privateKeySecretRef__key", "..", "spec.ssh.privateKeySecretRef.key"),
    ("provider__lightsail__credentialsSecretRef__name", TRAVERSAL,
     "spec.provider.lightsail.credentialsSecretRef.name"),
    ("provider__lightsail__credentialsSecretRef__accessKeyIdKey", ".",
     "spec.provider.lightsail.credentialsSecretRef.accessKeyIdKey"),
    ("provider__lightsail__credentialsSecretRef__secretAccessKeyKey", "a/b",
     "spec.provider.lightsail.credentialsSecretRef.secretAccessKeyKey"),
    ("source__credentialsSecretRef__name", "a" * 254, "spec.source.credentialsSecretRef.name"),
    ("source__credentialsSecretRef__key", "to ken", "spec.source.credentialsSecretRef.key"),
    ("env__0__name", TRAVERSAL, "spec.env.0.name"),
    ("env__0__name", "", "spec.env.0.name"),
]


@pytest.mark.parametrize(("path", "value", "field"), BAD, ids=[f"{b[0]}={b[1][:12]}" for b in BAD])
def test_a_bad_secret_reference_is_refused_naming_the_field(path: str, value: str, field: str) -> None:
    with pytest.raises(pydantic.ValidationError) as caught:
        DeploymentInstanceSpec.model_validate(_spec(**{path: value}))
    message = _invalid_spec_message(caught.value)
    assert message.startswith(field + ":"), message
    assert "Secret" in message


@pytest.mark.parametrize(("path", "value"), [
    ("ssh__privateKeySecretRef__name", "shop.ssh-key"),
    ("ssh__privateKeySecretRef__key", ".ssh_private-key.pem"),
    ("provider__lightsail__credentialsSecretRef__accessKeyIdKey", "AWS_ACCESS_KEY_ID"),
    ("env__0__name", "a" * 253),
])
def test_ordinary_names_and_keys_pass(path: str, value: str) -> None:
    DeploymentInstanceSpec.model_validate(_spec(**{path: value}))
