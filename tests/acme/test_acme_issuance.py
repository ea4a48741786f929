"""A real ACME issuance on loopback: Debian's certbot, Pebble, HTTP-01 through challtestsrv's DNS."""

from __future__ import annotations

import functools
import http.server
import os
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509

from o4o_operator.testing.acme import AcmeWorld
from o4o_operator.testing.processes import free_port

DOMAIN = "test.example.com"
pytestmark = pytest.mark.skipif(not Path("/usr/bin/certbot").exists(), reason="needs Debian certbot (make test)")


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        """Quiet."""


@pytest.fixture
def webroot(tmp_path: Path) -> Iterator[tuple[Path, int]]:
    """A web server on 127.0.0.1 serving ``/.well-known/acme-challenge/`` from a directory, on a free port."""
    root = tmp_path / "webroot"
    root.mkdir()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0),
                                             functools.partial(QuietHandler, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield root, int(server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def certbot(world: AcmeWorld, webroot: Path, state: Path, *flags: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "REQUESTS_CA_BUNDLE": str(world.pebble.ca_bundle), "NO_PROXY": "127.0.0.1"}
    return subprocess.run(
        ["certbot", "certonly", "--non-interactive", "--agree-tos", "--register-unsafely-without-email",
         "--server", world.pebble.directory_url, "--webroot", "--webroot-path", str(webroot), "-d", DOMAIN,
         "--cert-name", DOMAIN,
         "--config-dir", str(state / "config"), "--work-dir", str(state / "work"), "--logs-dir", str(state / "logs"),
         "--key-type", "ecdsa", *flags],
        env=env, capture_output=True, text=True, timeout=180)


def _issuer_and_server(state: Path) -> tuple[str, str]:
    """The live certificate's issuer, and the ACME server certbot recorded for the lineage (what
    templates/scripts/issue-cert.sh reads to decide whether a certificate may be reused)."""
    leaf = x509.load_pem_x509_certificate((state / "config" / "live" / DOMAIN / "cert.pem").read_bytes())
    renewal = (state / "config" / "renewal" / f"{DOMAIN}.conf").read_text()
    (server,) = [line.split("=", 1)[1].strip() for line in renewal.splitlines() if line.startswith("server ")]
    return leaf.issuer.rfc4514_string(), server


def test_certbot_gets_a_certificate_that_chains_to_pebbles_root(webroot: tuple[Path, int], tmp_path: Path) -> None:
    root_dir, http_port = webroot
    with AcmeWorld(http_port=http_port, tls_port=free_port()) as world:
        world.dns.set_a(DOMAIN, ["127.0.0.1"])
        started = time.monotonic()
        result = certbot(world, root_dir, tmp_path / "certbot")
        print(f"certbot certonly took {time.monotonic() - started:.1f}s")
        root = world.pebble.write_root(tmp_path / "pebble-root.pem")
        live = tmp_path / "certbot" / "config" / "live" / DOMAIN
        assert result.returncode == 0, result.stdout + result.stderr
        verified = subprocess.run(["openssl", "verify", "-CAfile", str(root), "-untrusted", str(live / "chain.pem"),
                                   str(live / "cert.pem")], capture_output=True, text=True)
        other_root = subprocess.run(["openssl", "verify", "-CAfile", str(world.pebble.ca_bundle),
                                     "-untrusted", str(live / "chain.pem"), str(live / "cert.pem")],
                                    capture_output=True, text=True)

    leaf = x509.load_pem_x509_certificate((live / "cert.pem").read_bytes())
    names = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(
        x509.DNSName)
    assert names == [DOMAIN]
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert other_root.returncode != 0, "the chain must verify against /roots/0 only, not any CA at hand"


def test_validation_fails_when_the_name_does_not_resolve(webroot: tuple[Path, int], tmp_path: Path) -> None:
    root_dir, http_port = webroot
    with AcmeWorld(http_port=http_port, tls_port=free_port()) as world:
        result = certbot(world, root_dir, tmp_path / "certbot")

    assert result.returncode != 0
    assert not (tmp_path / "certbot" / "config" / "live" / DOMAIN).exists()


def test_certbot_keeps_a_lineage_from_another_server_unless_forced(webroot: tuple[Path, int], tmp_path: Path) -> None:
    """What the tls script relies on, against the real certbot: --keep-until-expiring keeps a certificate
    that is not due even when --server names another ACME server; --force-renewal issues one from the new
    server, and the renewal configuration then names that server."""
    root_dir, http_port = webroot
    state = tmp_path / "certbot"
    with AcmeWorld(http_port=http_port, tls_port=free_port()) as staging, \
            AcmeWorld(http_port=http_port, tls_port=free_port()) as production:
        for world in (staging, production):
            world.dns.set_a(DOMAIN, ["127.0.0.1"])
        issued = certbot(staging, root_dir, state, "--keep-until-expiring")
        assert issued.returncode == 0, issued.stdout + issued.stderr
        from_staging = _issuer_and_server(state)

        kept = certbot(production, root_dir, state, "--keep-until-expiring")
        assert kept.returncode == 0, kept.stdout + kept.stderr
        after_keep = _issuer_and_server(state)

        forced = certbot(production, root_dir, state, "--force-renewal")
        assert forced.returncode == 0, forced.stdout + forced.stderr
        after_force = _issuer_and_server(state)

    assert from_staging[1] == staging.pebble.directory_url
    assert after_keep == from_staging, "certbot was expected to keep the lineage that is not due"
    assert after_force[1] == production.pebble.directory_url
    assert after_force[0] != from_staging[0]
