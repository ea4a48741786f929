"""spec.tls.acmeCABundle and spec.tls.certificateCABundle: inline PEM certificates, checked in the models.

The CRD refuses bundles without a certificate or with a private key (tests/crd/test_crd.py); the models
parse every block, so a bundle that only looks like PEM stalls naming the field instead of reaching a host.
"""

from __future__ import annotations

import datetime
from typing import Any

import pydantic
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from o4o_operator.models import DeploymentInstanceSpec
from o4o_operator.runner.worker import _invalid_spec_message

KEY = ec.generate_private_key(ec.SECP256R1())
KEY_CANARY_PEM = KEY.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                   serialization.NoEncryption()).decode()


def _root(common_name: str) -> str:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(KEY.public_key())
                   .serial_number(x509.random_serial_number()).not_valid_before(now)
                   .not_valid_after(now + datetime.timedelta(days=1))
                   .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                   .sign(KEY, hashes.SHA256()))
    return certificate.public_bytes(serialization.Encoding.PEM).decode()


PEBBLE_ROOT = _root("Pebble Root CA")
MINICA_ROOT = _root("minica root ca")


def _spec(**tls: Any) -> dict[str, Any]:
    return {
        "domain": "shop.example.com",
        "provider": {"existing": {"host": "198.51.100.7"}},
        "ssh": {"privateKeySecretRef": {"name": "ssh-key", "key": "ssh-privatekey"}},
        "source": {"repository": "https://example.com/o4o.git"},
        "tls": {"email": "ops@example.com", "server": "https://198.51.100.1:14000/dir", **tls},
    }


def test_both_bundles_are_optional_and_absent_means_the_system_roots() -> None:
    spec = DeploymentInstanceSpec.model_validate(_spec())
    assert spec.tls.acme_ca_bundle is None
    assert spec.tls.certificate_ca_bundle is None
    assert "acmeCABundle" not in spec.to_body()["tls"]


def test_bundles_keep_their_exact_field_names_and_text() -> None:
    bundle = f"# Pebble's roots\n{PEBBLE_ROOT}{MINICA_ROOT}"
    spec = DeploymentInstanceSpec.model_validate(_spec(acmeCABundle=MINICA_ROOT, certificateCABundle=bundle))
    assert spec.tls.acme_ca_bundle == MINICA_ROOT
    assert spec.tls.certificate_ca_bundle == bundle
    body = spec.to_body()["tls"]
    assert body["acmeCABundle"] == MINICA_ROOT
    assert body["certificateCABundle"] == bundle


BAD_BUNDLES = [
    ("no PEM at all", "not a certificate", "one or more PEM certificates"),
    ("a mangled certificate", PEBBLE_ROOT.replace(PEBBLE_ROOT.splitlines()[3], "AAAA" * 16),
     "not a valid X.509 certificate"),
    ("a private key beside a certificate", PEBBLE_ROOT + KEY_CANARY_PEM, "private key"),
    ("a private key alone", KEY_CANARY_PEM, "private key"),
    ("a certificate request", "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n",
     "CERTIFICATE REQUEST, not a CERTIFICATE"),
]


@pytest.mark.parametrize("field", ["acmeCABundle", "certificateCABundle"])
@pytest.mark.parametrize(("case", "value", "words"), BAD_BUNDLES, ids=[c[0] for c in BAD_BUNDLES])
def test_a_bundle_that_is_not_pem_certificates_names_its_field(field: str, case: str, value: str,
                                                                 words: str) -> None:
    with pytest.raises(pydantic.ValidationError) as caught:
        DeploymentInstanceSpec.model_validate(_spec(**{field: value}))
    message = _invalid_spec_message(caught.value)
    assert message.startswith(f"spec.tls.{field}: "), message
    assert words in message, message
    assert "BEGIN PRIVATE" not in message and KEY_CANARY_PEM.splitlines()[1] not in message
