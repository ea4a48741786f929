"""The database stage and the .env, driven over fakes: the operator-owned Secret ``<name>-database`` is made
once and kept, its values reach the script only as environment, an external database's Secret must be
complete, a foreign Secret of that name stalls, and the user's env Secrets override the defaults."""

from __future__ import annotations

import datetime
import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from stage_fakes import (
    FINGERPRINT,
    FakeKube,
    RecordingConnector,
    RecordingSession,
    make_context,
    make_runtime,
    spec_body,
    static_resolver,
)

from o4o_operator import errors
from o4o_operator.models import DeploymentInstanceStatus, HostKeySource, ServerStatus, SourceStatus
from o4o_operator.pipeline.stages import STAGES_BY_NAME, StageName
from o4o_operator.rendering import render_script
from o4o_operator.rendering.env_values import GENERATED_KEYS, database_identifier
from o4o_operator.runner.generated_secret import delete_generated_secret

SERVER = ServerStatus(name="shop-host.test", ip_address="198.51.100.5", host_key_fingerprint=FINGERPRINT,
                      host_key_fingerprints=(FINGERPRINT,), host_key_source=HostKeySource.TRUSTED_ON_FIRST_USE)
FETCHED = DeploymentInstanceStatus(server=SERVER, source=SourceStatus(
    repository="https://example.com/o4o/platform.git", revision="main", commit="c" * 40))
SECRET = "shop-database"
EXTERNAL = {"host": "db.example.net", "port": "6543", "name": "shop", "user": "shop_app",
            "password": "external-pass-123", "sslMode": "verify-full"}


def _ca_pem() -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "db-ca")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
                   .serial_number(x509.random_serial_number()).not_valid_before(now)
                   .not_valid_after(now + datetime.timedelta(days=1)).sign(key, hashes.SHA256()))
    return certificate.public_bytes(serialization.Encoding.PEM).decode()


CA_PEM = _ca_pem()
WITH_CA = {"external": {"secretRef": {"name": "ext-db"}, "caSecretRef": {"name": "db-ca"}}}
CA_PATH = "/srv/o4o/team.shop/shared/database-ca.crt"


def _driver(kube: FakeKube, session: RecordingSession, **spec: Any) -> Any:
    return make_context(make_runtime(kube, RecordingConnector(session), static_resolver({})), spec_body(**spec),
                        FETCHED)


def _env_file(session: RecordingSession) -> dict[str, str]:
    path = next(path for path in session.contents if path.endswith("/.env"))
    lines = session.contents[path].decode().splitlines()
    return {key: value.strip("'\"`") for key, _, value in (line.partition("=") for line in lines[1:] if line)}


async def test_the_local_database_gets_the_generated_names_and_password_as_environment_only() -> None:
    kube, session = FakeKube(), RecordingSession({"database": "PostgreSQL 14/main"})
    driver = _driver(kube, session)

    message = await driver.run(StageName.DATABASE)

    assert message == "Database ready: PostgreSQL 14/main"
    generated = kube.secrets[SECRET]
    assert set(generated) == set(GENERATED_KEYS) and kube.owners[SECRET] == "uid-1"
    name = database_identifier(driver.instance.host_context().app_user)
    assert generated["DB_NAME"] == generated["DB_USERNAME"] == name
    assert generated["ADMIN_EMAIL"] == "admin@shop.example.com"
    assert len({generated[key] for key in ("DB_PASSWORD", "JWT_SECRET", "JWT_REFRESH_SECRET", "SESSION_SECRET",
                                           "ADMIN_PASSWORD")}) == 5
    assert session.envs == [{"O4O_DB_PASSWORD": generated["DB_PASSWORD"]}]  # redacted from the output
    assert session.public_envs == [{"O4O_DB_MODE": "local", "O4O_DB_HOST": "127.0.0.1", "O4O_DB_PORT": "5432",
                                    "O4O_DB_NAME": name, "O4O_DB_USER": name, "O4O_DB_SSLMODE": "require",
                                    "O4O_DB_EXTENSIONS": "uuid-ossp"}]
    assert session.scripts == [render_script("setup-database", driver.instance.host_context())]
    for key in ("DB_PASSWORD", "JWT_SECRET"):
        assert generated[key] not in session.scripts[0]


async def test_the_generated_values_are_made_once_and_a_missing_key_is_added_beside_the_kept_ones() -> None:
    kube = FakeKube()
    await _driver(kube, RecordingSession({"database": "ok"})).run(StageName.DATABASE)
    first = dict(kube.secrets[SECRET])
    del kube.secrets[SECRET]["JWT_REFRESH_SECRET"]  # as if made by a release that had no such key

    await _driver(kube, RecordingSession({"database": "ok"})).run(StageName.DATABASE)

    again = kube.secrets[SECRET]
    assert {k: v for k, v in again.items() if k != "JWT_REFRESH_SECRET"} == \
        {k: v for k, v in first.items() if k != "JWT_REFRESH_SECRET"}
    assert again["JWT_REFRESH_SECRET"] and again["JWT_REFRESH_SECRET"] != first["JWT_REFRESH_SECRET"]


async def test_a_secret_of_that_name_the_operator_did_not_make_stalls_and_is_left_alone() -> None:
    kube, session = FakeKube(), RecordingSession({"database": "ok"})
    kube.secrets[SECRET] = {"DB_PASSWORD": "theirs-0123456789"}

    with pytest.raises(errors.InvalidSpecError) as caught:
        await _driver(kube, session).run(StageName.DATABASE)

    assert caught.value.reason == "SecretNameTaken" and SECRET in caught.value.message
    assert "theirs-0123456789" not in caught.value.message
    assert kube.secrets[SECRET] == {"DB_PASSWORD": "theirs-0123456789"} and session.scripts == []
    assert not await delete_generated_secret(kube, "team", "shop", "uid-1")  # type: ignore[arg-type]
    assert SECRET in kube.secrets


@pytest.mark.parametrize("stage", [StageName.DATABASE, StageName.CONFIGURE])
@pytest.mark.parametrize(("key", "value"), [
    ("DB_NAME", "postgres"), ("DB_USERNAME", "postgres"), ("DB_NAME", "template0"), ("DB_NAME", "template1"),
    ("DB_USERNAME", "o4o_team_other_0123abcd"),  # another instance's on a shared host: never altered or dropped
    ("DB_NAME", "x; DROP DATABASE y"),
], ids=["postgres-db", "postgres-role", "template0", "template1", "another-instances-role", "sql"])
async def test_database_names_edited_in_the_generated_secret_stall_naming_the_key(
        stage: StageName, key: str, value: str) -> None:
    kube, session = FakeKube(), RecordingSession({"database": "ok", "release": "d" * 40})
    await _driver(kube, RecordingSession({"database": "ok"})).run(StageName.DATABASE)
    kube.secrets[SECRET] = {**kube.secrets[SECRET], key: value}

    with pytest.raises(errors.InvalidSpecError) as caught:
        await _driver(kube, session).run(stage)

    assert caught.value.reason == "DatabaseNameChanged" and repr(key) in caught.value.message
    assert SECRET in caught.value.message and session.scripts == [] and session.uploads == []
    assert kube.secrets[SECRET][key] == value  # left for the user to put back


@pytest.mark.parametrize("missing", ["host", "port", "name", "user", "password", "sslMode"])
async def test_an_external_database_secret_without_a_key_stalls_naming_the_field_and_the_key(missing: str) -> None:
    kube, session = FakeKube(), RecordingSession({"database": "ok"})
    kube.secrets["ext-db"] = {k: v for k, v in EXTERNAL.items() if k != missing}

    with pytest.raises(errors.InvalidSpecError) as caught:
        await _driver(kube, session, database={"external": {"secretRef": {"name": "ext-db"}}}).run(StageName.DATABASE)

    assert caught.value.reason == "DatabaseSecretIncomplete"
    assert caught.value.field == "spec.database.external.secretRef" and repr(missing) in caught.value.message
    assert EXTERNAL["password"] not in caught.value.message and session.scripts == []


async def test_an_external_database_is_checked_with_its_own_connection_and_its_ca() -> None:
    kube, session = FakeKube(), RecordingSession({"database": "external shop"})
    kube.secrets["ext-db"] = dict(EXTERNAL)
    kube.secrets["db-ca"] = {"ca.crt": CA_PEM, "ca.key": "ca-private-key-0123456789"}  # as CloudNativePG's <cluster>-ca

    driver = _driver(kube, session, database=WITH_CA)
    await driver.run(StageName.DATABASE)

    assert session.envs == [{"O4O_DB_PASSWORD": "external-pass-123"}]
    assert session.public_envs == [{"O4O_DB_MODE": "external", "O4O_DB_HOST": "db.example.net",
                                    "O4O_DB_PORT": "6543", "O4O_DB_NAME": "shop", "O4O_DB_USER": "shop_app",
                                    "O4O_DB_SSLMODE": "verify-full", "O4O_DB_EXTENSIONS": "uuid-ossp",
                                    "O4O_DB_SSLROOTCERT": CA_PATH}]
    # Uploaded before the script checks the connection with it, for the instance's user alone.
    assert session.uploads == [CA_PATH] and session.contents[CA_PATH] == CA_PEM.encode()
    assert session.modes[CA_PATH] == (0o600, driver.instance.host_context().app_user)
    assert "ca-private-key-0123456789" not in driver.instance.log.redactor("key ca-private-key-0123456789")


@pytest.mark.parametrize("mode", ["verify-ca", "verify-full"])
async def test_a_verifying_sslmode_without_a_ca_stalls_naming_the_field_before_anything_reaches_the_host(
        mode: str) -> None:
    kube, session = FakeKube(), RecordingSession({"database": "external shop"})
    kube.secrets["ext-db"] = {**EXTERNAL, "sslMode": mode}

    with pytest.raises(errors.InvalidSpecError) as caught:
        await _driver(kube, session, database={"external": {"secretRef": {"name": "ext-db"}}}).run(StageName.DATABASE)

    assert (caught.value.field, caught.value.reason) == ("spec.database.external.caSecretRef", "DatabaseCaMissing")
    assert session.scripts == [] and session.uploads == []


async def test_a_ca_secret_without_its_key_stalls_naming_the_field_and_the_key() -> None:
    kube, session = FakeKube(), RecordingSession({"database": "external shop"})
    kube.secrets["ext-db"] = dict(EXTERNAL)
    kube.secrets["db-ca"] = {"tls.crt": CA_PEM}

    with pytest.raises(errors.InvalidSpecError) as caught:
        await _driver(kube, session, database=WITH_CA).run(StageName.DATABASE)

    assert (caught.value.field, caught.value.reason) == ("spec.database.external.caSecretRef", "DatabaseCaMissing")
    assert "'db-ca' has no key 'ca.crt'" in caught.value.message and session.scripts == []


async def test_a_ca_crt_key_beside_the_connection_serves_without_a_ca_reference_and_require_takes_none() -> None:
    kube, session = FakeKube(), RecordingSession({"database": "external shop"})
    kube.secrets["ext-db"] = {**EXTERNAL, "ca.crt": CA_PEM}
    external = {"external": {"secretRef": {"name": "ext-db"}}}

    await _driver(kube, session, database=external).run(StageName.DATABASE)
    assert session.public_envs[-1]["O4O_DB_SSLROOTCERT"] == CA_PATH and session.uploads == [CA_PATH]

    kube.secrets["ext-db"] = {**EXTERNAL, "sslMode": "require"}
    required = RecordingSession({"database": "external shop"})
    await _driver(kube, required, database=external).run(StageName.DATABASE)
    assert "O4O_DB_SSLROOTCERT" not in required.public_envs[-1] and required.uploads == []


async def test_a_script_that_reports_no_database_fails_transiently() -> None:
    with pytest.raises(errors.TransientError) as caught:
        await _driver(FakeKube(), RecordingSession({})).run(StageName.DATABASE)
    assert caught.value.reason == "DatabaseUnavailable"


async def test_the_env_file_has_the_defaults_the_generated_secrets_and_the_users_overrides() -> None:
    kube, session = FakeKube(), RecordingSession({"release": "d" * 40})
    kube.secrets["app-env"] = {"JWT_SECRET": "users-own-jwt-secret", "SMTP_HOST": "smtp.example.com"}

    await _driver(kube, session, env=[{"name": "app-env"}], apiPort=4000).run(StageName.CONFIGURE)

    env, generated = _env_file(session), kube.secrets[SECRET]
    assert env["NODE_ENV"] == "production" and env["PORT"] == "4000" and env["DB_TYPE"] == "postgres"
    assert env["CORS_ORIGIN"] == env["FRONTEND_URL"] == "https://shop.example.com"
    assert (env["DB_HOST"], env["DB_PORT"], env["REDIS_ENABLED"]) == ("127.0.0.1", "5432", "false")
    assert (env["DB_NAME"], env["DB_USERNAME"], env["DB_PASSWORD"]) == \
        (generated["DB_NAME"], generated["DB_USERNAME"], generated["DB_PASSWORD"])
    assert env["JWT_SECRET"] == "users-own-jwt-secret"  # the user's wins
    assert env["JWT_REFRESH_SECRET"] == generated["JWT_REFRESH_SECRET"]
    assert env["SESSION_SECRET"] == generated["SESSION_SECRET"] and env["SMTP_HOST"] == "smtp.example.com"
    assert "ADMIN_PASSWORD" not in env


async def test_the_seed_passwords_are_generated_into_the_env_and_redacted() -> None:
    """O4O's seed migrations fall back to a fixed password without them, and its API refuses to encrypt (or uses
    a salt fixed in its source) without ENCRYPTION_KEY: every instance gets its own."""
    kube, session = FakeKube(), RecordingSession({"release": "d" * 40})
    driver = _driver(kube, session)
    await driver.run(StageName.CONFIGURE)

    env, generated = _env_file(session), kube.secrets[SECRET]
    seeds = ("SEED_BOOTSTRAP_PASSWORD", "ADMIN_VAULT_PASSWORD", "SUPER_ADMIN_BOOTSTRAP_PASSWORD", "ENCRYPTION_KEY")
    assert len({generated[key] for key in (*seeds, "ADMIN_PASSWORD", "JWT_SECRET")}) == 6
    assert len(generated["ENCRYPTION_KEY"].encode()) >= 32  # O4O refuses a key under 32 bytes
    for key in seeds:
        assert env[key] == generated[key] and len(generated[key]) >= 40
        line = driver.instance.log.redactor(f"seed account created with {generated[key]}")
        assert generated[key] not in line  # redacted like every generated value
    # A Secret made before these keys existed gets them added, its other values kept.
    for key in seeds:
        del kube.secrets[SECRET][key]
    kept = dict(kube.secrets[SECRET])
    await _driver(kube, RecordingSession({"release": "d" * 40})).run(StageName.CONFIGURE)
    assert all(kube.secrets[SECRET][key] for key in seeds)
    assert {k: v for k, v in kube.secrets[SECRET].items() if k not in seeds} == kept


async def test_the_env_file_points_at_an_external_database_and_its_ca() -> None:
    kube, session = FakeKube(), RecordingSession({"release": "d" * 40})
    kube.secrets["ext-db"] = dict(EXTERNAL)
    kube.secrets["db-ca"] = {"ca.crt": CA_PEM}

    await _driver(kube, session, database=WITH_CA).run(StageName.CONFIGURE)

    env = _env_file(session)
    assert (env["DB_HOST"], env["DB_PORT"], env["DB_NAME"], env["DB_USERNAME"], env["DB_PASSWORD"],
            env["PGSSLMODE"]) == ("db.example.net", "6543", "shop", "shop_app", "external-pass-123", "verify-full")
    assert env["PGSSLROOTCERT"] == env["NODE_EXTRA_CA_CERTS"] == CA_PATH
    assert session.contents[CA_PATH] == CA_PEM.encode()
    ecosystem = next(content.decode() for path, content in session.contents.items()
                     if path.endswith("ecosystem.config.js"))
    app = json.loads(ecosystem[ecosystem.index("{"):ecosystem.rindex("}") + 1])["apps"][0]
    assert app["env"]["NODE_EXTRA_CA_CERTS"] == CA_PATH  # Node reads it from its real environment only


async def test_a_changed_ca_secret_changes_the_env_and_database_versions() -> None:
    kube = FakeKube()
    kube.secrets["ext-db"] = dict(EXTERNAL)
    kube.secrets["db-ca"] = {"ca.crt": CA_PEM}
    before = await _driver(kube, RecordingSession({}), database=WITH_CA).instance.observe_facts(FETCHED)
    kube.secrets["db-ca"] = {"ca.crt": _ca_pem()}
    kube.versions["db-ca"] = 2

    after = await _driver(kube, RecordingSession({}), database=WITH_CA).instance.observe_facts(FETCHED)

    assert after.database_version != before.database_version and after.env_version != before.env_version


async def test_a_changed_generated_secret_changes_the_env_and_database_versions_only() -> None:
    kube = FakeKube()
    driver = _driver(kube, RecordingSession({"database": "ok"}))
    before = await driver.instance.observe_facts(FETCHED)
    await driver.run(StageName.DATABASE)

    after = await _driver(kube, RecordingSession({})).instance.observe_facts(FETCHED)

    assert after.env_version != before.env_version and after.database_version != before.database_version
    assert (after.server_address, after.commit) == (before.server_address, before.commit)
    assert "facts.envVersion" in STAGES_BY_NAME[StageName.CONFIGURE].inputs
    assert "facts.databaseVersion" in STAGES_BY_NAME[StageName.DATABASE].inputs
    others = [s for s in STAGES_BY_NAME.values() if s.name not in (StageName.CONFIGURE, StageName.DATABASE)]
    assert not [s.name for s in others if {"facts.envVersion", "facts.databaseVersion"} & set(s.inputs)]


def test_the_database_stage_sits_between_runtime_and_source() -> None:
    names = list(STAGES_BY_NAME)
    assert names.index(StageName.RUNTIME) + 1 == names.index(StageName.DATABASE) == names.index(StageName.SOURCE) - 1
    stage = STAGES_BY_NAME[StageName.DATABASE]
    assert (stage.condition, stage.phase.value, stage.title) == ("DatabaseReady", "Installing", "Create the database")


def test_the_crd_accepts_every_stage_name_in_status() -> None:
    crd = yaml.safe_load((Path(__file__).resolve().parents[2] / "crds" / "deploymentinstances.deploy.o4o.io.yaml")
                         .read_text())
    status = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["status"]
    stages = status["properties"]["stages"]
    assert stages["items"]["properties"]["name"]["enum"] == [name.value for name in STAGES_BY_NAME]
    assert stages["maxItems"] == len(STAGES_BY_NAME)
