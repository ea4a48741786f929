"""A real ACME CA for the test world: Pebble, with pebble-challtestsrv as the DNS both it and the hosts use.

Owns: starting and stopping the two processes (they die with the parent), Pebble's
configuration (ACME directory on a chosen address, HTTP-01 on port 80 and TLS-ALPN on
443 of whatever the DNS says), the throwaway certificate Pebble's own ACME endpoint
serves (:attr:`Pebble.ca_bundle` verifies it), fetching the root that signs issued
certificates (it changes at every start), and challtestsrv's management API (records in,
nothing else). challtestsrv answers only the records it was given: unknown names get an
empty answer, never a default address.

Must not: be imported by shipped code, decide which records exist (``dns_feed`` does),
or listen anywhere but the addresses it is given (management APIs stay on loopback).
"""

from __future__ import annotations

import dataclasses
import datetime
import ipaddress
import json
import ssl
import tempfile
import time
import urllib.request
from pathlib import Path
from types import TracebackType
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from o4o_operator.testing.dns_query import query
from o4o_operator.testing.pebblebin import ensure_pebble
from o4o_operator.testing.processes import free_port, log_tail, start_process, stop_process

READY_TIMEOUT = 30.0


class AcmeServiceError(RuntimeError):
    """A test-world ACME/DNS process did not start or refused a request (its log tail is in the message)."""


def _wait_until(ready: Any, what: str, process: Any, log: Path, timeout: float = READY_TIMEOUT) -> None:
    """Poll ``ready()`` (a readiness probe, not a sleep-as-synchronisation) until true or the process died."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AcmeServiceError(f"{what} exited with {process.returncode}:\n{log_tail(log)}")
        try:
            if ready():
                return
        except OSError:
            pass
        time.sleep(0.05)
    raise AcmeServiceError(f"{what} was not ready within {timeout:.0f}s:\n{log_tail(log)}")


class ChallTestServer:
    """pebble-challtestsrv as a DNS server on ``dns_host:dns_port`` (UDP and TCP), fed through its API."""

    def __init__(self, workdir: Path, *, dns_host: str = "127.0.0.1", dns_port: int = 0) -> None:
        self.workdir = workdir
        self.dns_host = dns_host
        self.dns_port = dns_port or free_port(dns_host)
        self.management_port = 0
        self.log_path = workdir / "challtestsrv.log"
        self._process: Any = None

    @property
    def dns_address(self) -> str:
        """``host:port``, as Pebble's ``-dnsserver`` takes it."""
        return f"{self.dns_host}:{self.dns_port}"

    @property
    def management_url(self) -> str:
        return f"http://127.0.0.1:{self.management_port}"

    def start(self) -> ChallTestServer:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.management_port = free_port()
        binary = ensure_pebble() / "pebble-challtestsrv"
        self._process = start_process(
            [str(binary), "-dnsserver", self.dns_address, "-management", f"127.0.0.1:{self.management_port}",
             "-defaultIPv4", "", "-defaultIPv6", "", "-http01", "", "-https01", "", "-tlsalpn01", "", "-doh", ""],
            self.log_path)
        try:
            _wait_until(self._answers_dns, "pebble-challtestsrv", self._process, self.log_path)
        except BaseException:
            self.stop()
            raise
        return self

    def _answers_dns(self) -> bool:
        self._post("/clear-a", {"host": "ready.challtestsrv.invalid"})  # the management API is up ...
        return query(self.dns_host, self.dns_port, "ready.challtestsrv.invalid", "A", timeout=0.5) is not None

    def stop(self) -> None:
        if self._process is not None:
            stop_process(self._process)
            self._process = None

    def __enter__(self) -> ChallTestServer:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.stop()

    # ---- the management API ---------------------------------------------------------

    def _post(self, path: str, body: dict[str, Any]) -> None:
        request = urllib.request.Request(self.management_url + path, data=json.dumps(body).encode(),  # noqa: S310
                                         method="POST", headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 (loopback, our own URL)
            if response.status != 200:
                raise AcmeServiceError(f"challtestsrv {path} answered {response.status}")

    def set_a(self, host: str, addresses: list[str]) -> None:
        """Answer A queries for ``host`` with exactly ``addresses`` (none: forget it)."""
        self._post("/clear-a", {"host": host})
        if addresses:
            self._post("/add-a", {"host": host, "addresses": addresses})

    def set_aaaa(self, host: str, addresses: list[str]) -> None:
        self._post("/clear-aaaa", {"host": host})
        if addresses:
            self._post("/add-aaaa", {"host": host, "addresses": addresses})

    def set_txt(self, host: str, values: list[str]) -> None:
        self._post("/clear-txt", {"host": host})
        for value in values:
            self._post("/set-txt", {"host": host, "value": value})

    def set_cname(self, host: str, target: str | None) -> None:
        self._post("/clear-cname", {"host": host})
        if target:
            self._post("/set-cname", {"host": host, "target": target})


@dataclasses.dataclass(frozen=True)
class EndpointCertificate:
    ca_bundle: Path
    certificate: Path
    private_key: Path


def make_endpoint_certificate(directory: Path, hosts: list[str]) -> EndpointCertificate:
    """A throwaway CA and the serving certificate for Pebble's ACME and management endpoints."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "o4o test ACME endpoint CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
          .not_valid_after(now + datetime.timedelta(days=7))
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                       content_commitment=False, key_encipherment=False, data_encipherment=False,
                                       key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    names: list[x509.GeneralName] = [x509.DNSName("localhost"), x509.DNSName("pebble")]
    for host in dict.fromkeys(["127.0.0.1", *hosts]):
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    serving = (x509.CertificateBuilder()
               .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "pebble")]))
               .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=7))
               .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
               .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
               .add_extension(x509.SubjectAlternativeName(names), critical=False)
               .sign(ca_key, hashes.SHA256()))
    files = EndpointCertificate(directory / "acme-endpoint-ca.pem", directory / "acme-endpoint.pem",
                                directory / "acme-endpoint.key")
    files.ca_bundle.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    files.certificate.write_bytes(serving.public_bytes(serialization.Encoding.PEM))
    files.private_key.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                    serialization.NoEncryption()))
    files.private_key.chmod(0o600)
    return files


class Pebble:
    """Pebble with its ACME directory on ``https://<listen_host>:<port>/dir`` and validation via ``dns_server``."""

    def __init__(self, workdir: Path, *, dns_server: str, listen_host: str = "127.0.0.1", port: int = 0,
                 http_port: int = 80, tls_port: int = 443, authz_reuse_percent: int = 0) -> None:
        self.workdir = workdir
        self.dns_server = dns_server
        self.listen_host = listen_host
        self.port = port or free_port(listen_host)
        self.management_port = 0
        self.http_port = http_port
        self.tls_port = tls_port
        self.authz_reuse_percent = authz_reuse_percent
        self.log_path = workdir / "pebble.log"
        self.endpoint: EndpointCertificate | None = None
        self._process: Any = None

    @property
    def directory_url(self) -> str:
        return f"https://{self.listen_host}:{self.port}/dir"

    @property
    def ca_bundle(self) -> Path:
        """PEM that verifies Pebble's own ACME endpoint (``REQUESTS_CA_BUNDLE`` for certbot)."""
        if self.endpoint is None:
            raise RuntimeError("Pebble is not started")
        return self.endpoint.ca_bundle

    def start(self) -> Pebble:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.endpoint = make_endpoint_certificate(self.workdir, [self.listen_host])
        self.management_port = free_port()
        config = {"pebble": {
            "listenAddress": f"{self.listen_host}:{self.port}",
            "managementListenAddress": f"127.0.0.1:{self.management_port}",
            "certificate": str(self.endpoint.certificate), "privateKey": str(self.endpoint.private_key),
            "httpPort": self.http_port, "tlsPort": self.tls_port, "ocspResponderURL": "",
            "externalAccountBindingRequired": False, "retryAfter": {"authz": 1, "order": 1},
            "keyAlgorithm": "ecdsa",
            "profiles": {"default": {"description": "90 days, as Let's Encrypt", "validityPeriod": 7776000}},
        }}
        config_path = self.workdir / "pebble-config.json"
        config_path.write_text(json.dumps(config, indent=2))
        env = {"PATH": "/usr/bin:/bin", "PEBBLE_VA_NOSLEEP": "1", "PEBBLE_WFE_NONCEREJECT": "0",
               "PEBBLE_AUTHZREUSE": str(self.authz_reuse_percent)}
        self._process = start_process([str(ensure_pebble() / "pebble"), "-config", str(config_path),
                                       "-dnsserver", self.dns_server], self.log_path, env=env)
        try:
            _wait_until(lambda: self._get(self.directory_url) is not None, "pebble", self._process, self.log_path)
        except BaseException:
            self.stop()
            raise
        return self

    def _get(self, url: str) -> bytes:
        context = ssl.create_default_context(cafile=str(self.ca_bundle))
        with urllib.request.urlopen(url, timeout=10, context=context) as response:  # noqa: S310 (our own URL)
            body: bytes = response.read()
            return body

    def root_pem(self) -> str:
        """The root that signs this run's certificates (fetched from the management port)."""
        return self._get(f"https://127.0.0.1:{self.management_port}/roots/0").decode()

    def write_root(self, path: Path) -> Path:
        path.write_text(self.root_pem())
        return path

    def stop(self) -> None:
        if self._process is not None:
            stop_process(self._process)
            self._process = None

    def __enter__(self) -> Pebble:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.stop()


class AcmeWorld:
    """challtestsrv (the world's DNS on ``dns_host:dns_port``) plus Pebble resolving through it.

    ``AcmeWorld(listen_host="198.51.100.1", dns_port=53)`` is what booted hosts use;
    the defaults (loopback, free ports) are for tests without the bridge.
    """

    def __init__(self, *, listen_host: str = "127.0.0.1", dns_port: int = 0, acme_port: int = 0,
                 workdir: Path | None = None, http_port: int = 80, tls_port: int = 443,
                 authz_reuse_percent: int = 0) -> None:
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        if workdir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="o4o-acme-")
            workdir = Path(self._tmp.name)
        self.workdir = workdir
        self.dns = ChallTestServer(workdir, dns_host=listen_host, dns_port=dns_port)
        self.pebble = Pebble(workdir, dns_server="", listen_host=listen_host, port=acme_port, http_port=http_port,
                             tls_port=tls_port, authz_reuse_percent=authz_reuse_percent)

    def start(self) -> AcmeWorld:
        try:
            self.dns.start()
            self.pebble.dns_server = self.dns.dns_address
            self.pebble.start()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        self.pebble.stop()
        self.dns.stop()
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def __enter__(self) -> AcmeWorld:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.stop()
