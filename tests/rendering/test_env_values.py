"""The .env's pure parts: database names, the defaults, the merge with the user's Secrets, the external Secret."""

from __future__ import annotations

import datetime
import json

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from o4o_operator import models, models_database
from o4o_operator.errors import InvalidSpecError
from o4o_operator.models import DeploymentInstanceSpec
from o4o_operator.rendering import HostContext, render_ecosystem
from o4o_operator.rendering.env_values import (
    DEFAULTS_ORIGIN,
    DatabaseCa,
    DatabaseConnection,
    database_identifier,
    default_env,
    external_database,
    local_database,
    merge_env,
    node_pg_sslmode,
    with_ca,
)
from o4o_operator.rendering.host_context import instance_user

GENERATED = {"DB_NAME": "o4o_team_shop_1234abcd", "DB_USERNAME": "o4o_team_shop_1234abcd",
             "DB_PASSWORD": "pw-0123456789", "JWT_SECRET": "jwt-0123456789", "JWT_REFRESH_SECRET": "refresh-0123456789",
             "SESSION_SECRET": "session-0123456789", "ADMIN_EMAIL": "admin@shop.example.com",
             "ADMIN_PASSWORD": "admin-0123456789", "SEED_BOOTSTRAP_PASSWORD": "seed-0123456789",
             "ADMIN_VAULT_PASSWORD": "vault-0123456789", "SUPER_ADMIN_BOOTSTRAP_PASSWORD": "super-0123456789"}


def test_database_names_are_the_instance_user_as_a_plain_identifier() -> None:
    name = database_identifier(instance_user("team-a", "my-shop"))
    assert name.startswith("o4o_team_a_my_shop_") and "-" not in name and len(name) <= 32
    assert database_identifier(instance_user("a", "b-c")) != database_identifier(instance_user("a-b", "c"))
    with pytest.raises(ValueError, match="identifier"):
        database_identifier("Robert'); DROP TABLE")


def test_the_defaults_point_the_api_at_the_local_database_over_tcp() -> None:
    env = default_env("shop.example.com", 3001, local_database(GENERATED, GENERATED["DB_NAME"], "shop-database"),
                      GENERATED)
    assert env == {"NODE_ENV": "production", "PORT": "3001", "CORS_ORIGIN": "https://shop.example.com",
                   "FRONTEND_URL": "https://shop.example.com", "DB_TYPE": "postgres", "DB_HOST": "127.0.0.1",
                   "DB_PORT": "5432", "DB_NAME": GENERATED["DB_NAME"], "DB_USERNAME": GENERATED["DB_USERNAME"],
                   "DB_PASSWORD": GENERATED["DB_PASSWORD"], "PGSSLMODE": "no-verify", "REDIS_ENABLED": "false",
                   "JWT_SECRET": GENERATED["JWT_SECRET"], "JWT_REFRESH_SECRET": GENERATED["JWT_REFRESH_SECRET"],
                   "SESSION_SECRET": GENERATED["SESSION_SECRET"],
                   # O4O's seed migrations read these; without them they fall back to a fixed password
                   "SEED_BOOTSTRAP_PASSWORD": GENERATED["SEED_BOOTSTRAP_PASSWORD"],
                   "ADMIN_VAULT_PASSWORD": GENERATED["ADMIN_VAULT_PASSWORD"],
                   "SUPER_ADMIN_BOOTSTRAP_PASSWORD": GENERATED["SUPER_ADMIN_BOOTSTRAP_PASSWORD"]}
    assert "ADMIN_PASSWORD" not in env  # for the apps stage, not the API's environment


@pytest.mark.parametrize("name", ["postgres", "template0", "template1", "o4o_team_other_0123abcd"])
@pytest.mark.parametrize("key", ["DB_NAME", "DB_USERNAME"])
def test_a_local_database_name_other_than_the_one_made_for_the_instance_is_refused_naming_the_key(
        key: str, name: str) -> None:
    with pytest.raises(InvalidSpecError) as caught:
        local_database({**GENERATED, key: name}, GENERATED["DB_NAME"], "shop-database")
    assert caught.value.reason == "DatabaseNameChanged"
    assert caught.value.field == models_database.GENERATED_SECRET_FIELD and repr(key) in caught.value.message
    assert GENERATED["DB_PASSWORD"] not in caught.value.message


def test_the_users_secrets_add_and_override_in_order_and_say_where_each_key_came_from() -> None:
    defaults = {"NODE_ENV": "production", "JWT_SECRET": "generated"}
    values, origins = merge_env(defaults, [("spec.env[0]", {"JWT_SECRET": "mine", "A": "1"}),
                                           ("spec.env[1]", {"A": "2"})])
    assert values == {"NODE_ENV": "production", "JWT_SECRET": "mine", "A": "2"}
    assert origins == {"NODE_ENV": DEFAULTS_ORIGIN, "JWT_SECRET": "spec.env[0]", "A": "spec.env[1]"}
    assert merge_env(defaults, []) == (defaults, dict.fromkeys(defaults, DEFAULTS_ORIGIN))


def test_an_external_database_secret_is_read_whole_and_checked() -> None:
    data = {"host": "db.example.net", "port": "5433", "name": "shop", "user": "app", "password": "p-0123456789",
            "sslMode": "verify-full"}
    assert external_database(data, "db") == DatabaseConnection("db.example.net", "5433", "shop", "app",
                                                               "p-0123456789", "verify-full")
    for key, bad in (("port", "http"), ("port", "70000"), ("sslMode", "maybe"), ("user", "")):
        with pytest.raises(InvalidSpecError) as caught:
            external_database({**data, key: bad}, "db")
        assert caught.value.field == "spec.database.external.secretRef" and repr(key) in caught.value.message
        assert "p-0123456789" not in caught.value.message
    assert "p-0123456789" not in repr(external_database(data, "db"))


def test_spec_database_defaults_to_local_and_takes_an_external_secret() -> None:
    base = {"domain": "shop.example.com", "provider": {"existing": {"host": "h"}},
            "ssh": {"privateKeySecretRef": {"name": "k", "key": "k"}}, "tls": {"email": "a@example.com"}}
    assert DeploymentInstanceSpec.model_validate(base).database.local
    spec = DeploymentInstanceSpec.model_validate({**base, "database": {"external": {"secretRef": {"name": "db"}}}})
    assert spec.database.external is not None and spec.database.external.secret_ref.name == "db"
    with pytest.raises(ValueError, match="pattern"):
        DeploymentInstanceSpec.model_validate({**base, "database": {"external": {"secretRef": {"name": "../x"}}}})
    assert models_database.SECRET_NAME_PATTERN == models.SECRET_NAME_PATTERN
    assert models_database.generated_secret_name("shop") == "shop-database"


def test_the_env_says_the_tls_mode_as_node_postgres_reads_it() -> None:
    """node-postgres verifies the certificate for PGSSLMODE=require (libpq does not): the snakeoil one of the
    local database failed every migration with "self-signed certificate" on a booted host."""
    assert [node_pg_sslmode(mode) for mode in models_database.SSL_MODES] == [
        "disable", "disable", "no-verify", "no-verify", "verify-ca", "verify-full"]
    external = external_database({"host": "db.example.net", "port": "5432", "name": "shop", "user": "app",
                                  "password": "p-0123456789", "sslMode": "verify-full"}, "db")
    assert default_env("shop.example.com", 3001, external, GENERATED)["PGSSLMODE"] == "verify-full"


def _ca_pem() -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "db-ca")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
                   .serial_number(x509.random_serial_number()).not_valid_before(now)
                   .not_valid_after(now + datetime.timedelta(days=1)).sign(key, hashes.SHA256()))
    return certificate.public_bytes(serialization.Encoding.PEM).decode()


CA_PEM = _ca_pem()
EXTERNAL = {"host": "db.example.net", "port": "5432", "name": "shop", "user": "app", "password": "p-0123456789"}


@pytest.mark.parametrize("mode", ["verify-ca", "verify-full"])
def test_a_verifying_sslmode_without_a_ca_stalls_naming_the_ca_field(mode: str) -> None:
    connection = external_database({**EXTERNAL, "sslMode": mode}, "db")
    with pytest.raises(InvalidSpecError) as caught:
        with_ca(connection, None, "db")
    assert (caught.value.field, caught.value.reason) == ("spec.database.external.caSecretRef", "DatabaseCaMissing")
    assert f"sslMode {mode}" in caught.value.message and "key ca.crt" in caught.value.message


def test_a_ca_that_holds_no_certificate_stalls_naming_where_it_was_read() -> None:
    connection = external_database({**EXTERNAL, "sslMode": "verify-full"}, "db")
    not_pem = DatabaseCa("hello", "spec.database.external.caSecretRef", "key 'ca.crt' of Secret 'db-ca'")
    with pytest.raises(InvalidSpecError) as caught:
        with_ca(connection, not_pem, "db")
    assert (caught.value.field, caught.value.reason) == ("spec.database.external.caSecretRef", "DatabaseCaInvalid")
    assert "key 'ca.crt' of Secret 'db-ca' must hold one or more PEM certificates" in caught.value.message


@pytest.mark.parametrize("mode", ["disable", "allow", "prefer", "require"])
def test_the_modes_that_verify_nothing_take_no_ca(mode: str) -> None:
    connection = external_database({**EXTERNAL, "sslMode": mode}, "db")
    given = DatabaseCa(CA_PEM, "spec.database.external.caSecretRef", "key 'ca.crt' of Secret 'db-ca'")
    assert with_ca(connection, None, "db") == with_ca(connection, given, "db") == connection
    assert connection.ca_certificate is None
    env = default_env("shop.example.com", 3001, connection, GENERATED, "/srv/o4o/team.shop/shared/database-ca.crt")
    assert "PGSSLROOTCERT" not in env and "NODE_EXTRA_CA_CERTS" not in env


def test_the_env_and_the_ecosystem_name_the_ca_a_verifying_mode_uses() -> None:
    """node-postgres verifies against Node's roots plus NODE_EXTRA_CA_CERTS, which Node reads only from its real
    environment (measured on Node 22.18.0: from --env-file it is ignored), so PM2 sets it too."""
    host = HostContext(domain="shop.example.com", instance_name="shop", namespace="team",
                       repository="https://example.com/o4o/platform.git", revision="main", tls_email="ops@example.com")
    connection = with_ca(external_database({**EXTERNAL, "sslMode": "verify-full"}, "db"),
                         DatabaseCa(CA_PEM, "spec.database.external.caSecretRef", "key 'ca.crt' of Secret 'db-ca'"),
                         "db")
    assert connection.ca_certificate == CA_PEM and CA_PEM not in repr(connection)
    env = default_env("shop.example.com", 3001, connection, GENERATED, host.database_ca_path)
    assert (env["PGSSLMODE"], env["PGSSLROOTCERT"], env["NODE_EXTRA_CA_CERTS"]) == \
        ("verify-full", "/srv/o4o/team.shop/shared/database-ca.crt", "/srv/o4o/team.shop/shared/database-ca.crt")
    ecosystem = render_ecosystem(host, host.database_ca_path)
    app = json.loads(ecosystem[ecosystem.index("{"):ecosystem.rindex("}") + 1])["apps"][0]
    assert app["env"]["NODE_EXTRA_CA_CERTS"] == host.database_ca_path
    assert "NODE_EXTRA_CA_CERTS" not in render_ecosystem(host)


def test_the_ca_reference_defaults_to_the_key_ca_crt_and_the_secret_key_pattern_matches_the_models() -> None:
    spec = models_database.DatabaseSpec.model_validate({"external": {"secretRef": {"name": "db"},
                                                                     "caSecretRef": {"name": "db-ca"}}})
    assert spec.external is not None and spec.external.ca_secret_ref is not None
    assert spec.external.ca_secret_ref.key == "ca.crt"
    assert spec.external.secret_refs() == [("db", "spec.database.external.secretRef"),
                                           ("db-ca", "spec.database.external.caSecretRef")]
    assert models_database.SECRET_KEY_PATTERN == models.SECRET_KEY_PATTERN
