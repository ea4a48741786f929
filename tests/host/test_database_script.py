"""setup-database.sh run by bash against the sandbox's shims (no sshd, no network): it installs PostgreSQL once,
keeps ssl on, creates the instance's role and database idempotently, sets the password from the environment
only, and for an external database only checks that it answers, as the instance's user, in exactly the sslmode
given (verify-ca and verify-full against the CA the operator uploaded: the psql shim refuses them without one,
as libpq does)."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from collections.abc import Iterator

import pytest

from o4o_operator.markers import parse_results
from o4o_operator.rendering import HostContext, render_script
from o4o_operator.rendering.env_values import database_identifier
from o4o_operator.testing import SandboxHost

CONTEXT = HostContext(domain="shop.example.com", instance_name="shop", namespace="team",
                      repository="https://example.com/o4o/platform.git", revision="main", tls_email="ops@example.com")
NAME = database_identifier(CONTEXT.app_user)
PASSWORD = "generated-Password_0123456789"


CA_PEM = "-----BEGIN CERTIFICATE-----\nMIIBdb-ca\n-----END CERTIFICATE-----\n"


@pytest.fixture
def sandbox() -> Iterator[SandboxHost]:
    host = SandboxHost()  # its shims and state only: this test never starts its sshd
    # The runtime stage made the instance's user, who checks the connection.
    (host.root / ".shim-state.json").write_text(json.dumps({"users": [CONTEXT.app_user]}))
    try:
        yield host
    finally:
        host.close()  # stops its shim server and deletes its files


def run(sandbox: SandboxHost, **env: str) -> subprocess.CompletedProcess[str]:
    variables = {"O4O_DB_MODE": "local", "O4O_DB_HOST": "127.0.0.1", "O4O_DB_PORT": "5432", "O4O_DB_NAME": NAME,
                 "O4O_DB_USER": NAME, "O4O_DB_PASSWORD": PASSWORD, "O4O_DB_SSLMODE": "require", **env}
    path = f"{sandbox.shim_dir}:/usr/local/bin:/usr/bin:/bin"
    return subprocess.run(["bash", "-s"], input=render_script("setup-database", CONTEXT), text=True,
                          capture_output=True, timeout=120, check=False,
                          env={"PATH": path, "HOME": str(sandbox.home), "O4O_ROOT": str(sandbox.root),
                               "LANG": os.environ.get("LANG", "C.UTF-8"), **variables})


def postgres(sandbox: SandboxHost) -> dict[str, object]:
    return dict(sandbox.shim_state()["postgres"])


def test_postgresql_is_installed_once_and_the_role_and_database_are_made_once(sandbox: SandboxHost) -> None:
    first = run(sandbox)
    assert first.returncode == 0, first.stdout + first.stderr
    assert parse_results(first.stdout.splitlines())["database"].startswith(f"PostgreSQL 14/main, database {NAME}")
    state = postgres(sandbox)
    assert state["roles"][NAME] == hashlib.sha256(PASSWORD.encode()).hexdigest()  # type: ignore[index]
    assert state["databases"][NAME] == NAME  # type: ignore[index]
    installs = [c for c in sandbox.commands("apt-get") if "install" in c.argv]
    assert len(installs) == 1 and "postgresql" in installs[0].argv
    assert {c.user for c in sandbox.commands("psql") if "-h" not in c.argv} == {"postgres"}  # peer auth as postgres
    assert {c.user for c in sandbox.commands("psql") if "-h" in c.argv} == {CONTEXT.app_user}  # as the API will
    assert all(PASSWORD not in " ".join(c.argv) for c in sandbox.commands())  # never on a command line
    assert PASSWORD not in first.stdout + first.stderr
    assert sandbox.read("/var/lib/o4o/instances/team.shop/database").decode() == \
        f"cluster=14/main\nrole={NAME}\ndatabase={NAME}\n"

    again = run(sandbox, O4O_DB_PASSWORD="a-new-Password_9876543210")
    assert again.returncode == 0, again.stdout + again.stderr
    assert "Already installed: postgresql" in again.stdout and f"Database {NAME} exists" in again.stdout
    assert len([c for c in sandbox.commands("apt-get") if "install" in c.argv]) == 1
    assert postgres(sandbox)["roles"][NAME] == hashlib.sha256(b"a-new-Password_9876543210").hexdigest()  # type: ignore[index]


def test_a_stopped_cluster_is_started_and_ssl_is_turned_on(sandbox: SandboxHost) -> None:
    assert run(sandbox).returncode == 0
    state = sandbox.shim_state()
    state["postgres"]["ssl"] = "off"
    state["postgres"]["clusters"][0]["online"] = False
    (sandbox.root / ".shim-state.json").write_text(json.dumps(state))

    result = run(sandbox)

    assert result.returncode == 0, result.stdout + result.stderr
    assert "Starting PostgreSQL 14/main" in result.stdout and "Turning ssl on" in result.stdout
    assert postgres(sandbox)["ssl"] == "on"


def test_a_role_that_cannot_log_in_is_a_transient_failure(sandbox: SandboxHost) -> None:
    sandbox.fail_command("psql", args_contain="-h 127.0.0.1", stderr="psql: error: password authentication failed",
                         exit_code=2)
    result = run(sandbox)
    assert result.returncode == 1
    assert "::o4o::transient reason=DatabaseUnavailable" in result.stdout


def test_without_a_password_nothing_is_installed(sandbox: SandboxHost) -> None:
    result = run(sandbox, O4O_DB_PASSWORD="")
    assert result.returncode == 65 and "::o4o::permanent reason=DatabasePasswordMissing" in result.stdout
    assert sandbox.commands("apt-get") == []


EXTERNAL = {"O4O_DB_MODE": "external", "O4O_DB_HOST": "db.example.net", "O4O_DB_PORT": "6543",
            "O4O_DB_NAME": "shop", "O4O_DB_USER": "shop_app"}


def upload_ca(sandbox: SandboxHost) -> str:
    """Where the operator's database pre-step puts the CA (mode 0600, for the instance's user)."""
    path = sandbox.path(CONTEXT.database_ca_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(CA_PEM)
    path.chmod(0o600)
    return str(path)


@pytest.mark.parametrize("mode", ["verify-ca", "verify-full"])
def test_an_external_database_is_only_checked_in_exactly_its_sslmode_against_its_ca(sandbox: SandboxHost,
                                                                                    mode: str) -> None:
    ca = upload_ca(sandbox)
    result = run(sandbox, **EXTERNAL, O4O_DB_SSLMODE=mode, O4O_DB_SSLROOTCERT=CONTEXT.database_ca_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert parse_results(result.stdout.splitlines())["database"] == \
        f"external shop at db.example.net:6543 (sslmode {mode})"
    assert "postgres" not in sandbox.shim_state()
    calls = sandbox.commands("psql")
    assert [c.argv[1:3] for c in calls] == [("-X", "-q")]
    # Not downgraded to require: the exact mode and the uploaded CA reach psql, run as the instance's user.
    assert [(c.env.get("PGSSLMODE"), c.env.get("PGSSLROOTCERT"), c.user) for c in calls] == \
        [(mode, ca, CONTEXT.app_user)]


def test_a_verifying_sslmode_without_its_ca_fails_as_libpq_would(sandbox: SandboxHost) -> None:
    not_uploaded = run(sandbox, **EXTERNAL, O4O_DB_SSLMODE="verify-full", O4O_DB_SSLROOTCERT=CONTEXT.database_ca_path)
    assert not_uploaded.returncode == 1 and "::o4o::transient reason=DatabaseCaMissing" in not_uploaded.stdout

    unnamed = run(sandbox, **EXTERNAL, O4O_DB_SSLMODE="verify-full")
    assert unnamed.returncode == 65
    assert "::o4o::permanent reason=DatabaseCaMissing spec.database.external.caSecretRef" in unnamed.stdout
    assert sandbox.commands("psql") == []

    # The shim's psql itself refuses verify-full without a root certificate, as libpq does.
    upload_ca(sandbox)
    sandbox.path(CONTEXT.database_ca_path).write_text("no certificate here\n")
    unreadable = run(sandbox, **EXTERNAL, O4O_DB_SSLMODE="verify-full", O4O_DB_SSLROOTCERT=CONTEXT.database_ca_path)
    assert "::o4o::transient reason=DatabaseUnavailable" in unreadable.stdout
    assert "no certificate or crl found" in unreadable.stdout


def test_an_external_database_in_require_gets_no_root_certificate(sandbox: SandboxHost) -> None:
    result = run(sandbox, **EXTERNAL, O4O_DB_SSLMODE="require")
    assert result.returncode == 0, result.stdout + result.stderr
    assert [(c.env.get("PGSSLMODE"), c.env.get("PGSSLROOTCERT")) for c in sandbox.commands("psql")] == \
        [("require", None)]


def test_the_extensions_are_created_in_the_database_before_the_check_and_an_unknown_one_stalls_naming_it(
        sandbox: SandboxHost) -> None:
    made = run(sandbox, O4O_DB_EXTENSIONS="uuid-ossp pg_trgm")
    assert made.returncode == 0, made.stdout + made.stderr
    assert postgres(sandbox)["extensions"] == ["uuid-ossp", "pg_trgm"]
    created = [c.argv for c in sandbox.commands("psql") if any("CREATE EXTENSION" in a for a in c.argv)]
    assert [argv[argv.index("-d") + 1] for argv in created] == [NAME, NAME]  # in the instance's database

    unknown = run(sandbox, O4O_DB_EXTENSIONS="uuid-ossp postgis_nope")
    assert unknown.returncode != 0
    assert 'spec.database.extensions[1]: postgis_nope could not be created' in unknown.stdout
    assert 'extension "postgis_nope" is not available' in unknown.stdout
