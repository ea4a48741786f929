"""Rendered configuration checked by the real tools: ``nginx -t``, ``bash -n`` and ``shellcheck``."""

from __future__ import annotations

import dataclasses
import datetime
import shutil
import subprocess
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from o4o_operator.rendering import (
    SCRIPT_NAMES,
    HostContext,
    render_nginx_site,
    render_script,
)
from o4o_operator.rendering.apps_script import AppsLedger, step_marker
from o4o_operator.spec_install import PostInstallStep

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
SHELLCHECK = shutil.which("shellcheck")
COMMIT = "0123456789abcdef0123456789abcdef01234567"
CONTEXT = HostContext(domain="shop.example.com", instance_name="shop", namespace="team-a",
                      repository="https://github.com/o4o/platform.git", revision="main",
                      tls_email="ops@example.com", commit=COMMIT, apps=("forum-core", "signage"))


def self_signed(directory: Path, domain: str) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, domain)])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
                   .serial_number(x509.random_serial_number()).not_valid_before(now)
                   .not_valid_after(now + datetime.timedelta(days=90))
                   .add_extension(x509.SubjectAlternativeName([x509.DNSName(domain)]), critical=False)
                   .sign(key, hashes.SHA256()))
    directory.mkdir(parents=True)
    (directory / "fullchain.pem").write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    (directory / "privkey.pem").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))


@pytest.mark.skipif(not Path(NGINX).exists(), reason="nginx is not installed (make debian-packages)")
@pytest.mark.parametrize("certificate_present", [False, True], ids=["http", "https"])
def test_nginx_accepts_the_site(tmp_path: Path, certificate_present: bool) -> None:
    context = dataclasses.replace(CONTEXT, letsencrypt_dir=str(tmp_path / "letsencrypt"),
                                  nginx_log_dir=str(tmp_path / "logs"))
    (tmp_path / "logs").mkdir()
    self_signed(Path(context.certificate_dir), context.domain)
    site = tmp_path / "site.conf"
    site.write_text(render_nginx_site(context, certificate_present))
    config = tmp_path / "nginx.conf"
    config.write_text("\n".join([
        f"pid {tmp_path}/nginx.pid;",
        f"error_log {tmp_path}/logs/error.log;",
        "events {}",
        "http {",
        f"    access_log {tmp_path}/logs/access.log;",
        f"    client_body_temp_path {tmp_path}/body;",
        f"    proxy_temp_path {tmp_path}/proxy;",
        f"    include {site};",
        "}",
        "",
    ]))
    checked = subprocess.run([NGINX, "-t", "-p", str(tmp_path), "-c", str(config)],
                             capture_output=True, text=True, check=False)
    assert checked.returncode == 0, checked.stderr
    assert "[warn]" not in checked.stderr, checked.stderr
    assert ("listen 443 ssl" in site.read_text()) is certificate_present


STEPS = (PostInstallStep.model_validate({"name": "seed",
                                         "command": ["pnpm", "run", "seed", "--as=${O4O_ADMIN_EMAIL}"]}),
         PostInstallStep.model_validate({"name": "settings", "request": {"method": "PUT", "path": "/api/v1/settings",
                                                                         "body": {"title": "it's \"mine\""}}}),
         PostInstallStep.model_validate({"name": "ping", "request": {"method": "GET", "path": "/api/v1/ping"}}))


def all_scripts() -> dict[str, str]:
    scripts = {name: render_script(name, CONTEXT) for name in SCRIPT_NAMES}
    with_steps = dataclasses.replace(CONTEXT, post_install=STEPS)
    scripts["apps-with-post-install"] = render_script("apps", with_steps)
    scripts["apps-ledger-everything"] = render_script("apps-ledger", with_steps, ledger=AppsLedger(
        record=("forum-core", "signage"), forget=("lms-core",), steps=(step_marker(STEPS[0]),), command=0))
    scripts["configure-synchronize"] = render_script("configure", dataclasses.replace(
        CONTEXT, bootstrap_mode="synchronize", api_seed_command=("node", "dist/seed.js", "--mode=all")))
    scripts["configure-restore"] = render_script("configure", dataclasses.replace(CONTEXT, **RESTORE_IN_PLACE))
    scripts["configure-clone"] = render_script("configure", dataclasses.replace(CONTEXT, **CLONE))
    return scripts


RESTORE_IN_PLACE = {"backup_id": "20261206T120000Z-0123456789ab", "restore_kind": "in-place",
                    "restore_id": "20261205T120000Z-0123456789ab", "restore_sha256": "a" * 64,
                    "restore_uploads_sha256": "c" * 64,
                    "restore_source": "team-a/shop backup 20261205T120000Z-0123456789ab"}
CLONE = {"bootstrap_mode": "restore", "restore_kind": "clone", "restore_id": "template", "restore_sha256": "b" * 64,
         "restore_source": "template templates/base.dump"}


@pytest.mark.parametrize(("name", "script"), sorted(all_scripts().items()))
def test_script_parses_and_passes_shellcheck(tmp_path: Path, name: str, script: str) -> None:
    path = tmp_path / f"{name}.sh"
    path.write_text(script)
    parsed = subprocess.run(["bash", "-n", str(path)], capture_output=True, text=True, check=False)
    assert parsed.returncode == 0, parsed.stderr
    if SHELLCHECK is None:
        pytest.skip("shellcheck is not installed (make debian-packages)")
    checked = subprocess.run([SHELLCHECK, "--shell=bash", "--severity=style", str(path)],
                             capture_output=True, text=True, check=False)
    assert checked.returncode == 0, checked.stdout
