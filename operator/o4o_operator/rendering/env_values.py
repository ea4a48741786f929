"""The API server's ``.env``: the operator's defaults, then the user's Secrets on top.

Owns: the names of the operator-generated values (:data:`GENERATED_KEYS`), the database connection an
instance's API uses (:class:`DatabaseConnection`, local or read from an external database's Secret, with the
CA its ``sslMode`` verifies against: :func:`with_ca`), the default variables (:func:`default_env`) and
their merge with the user's ``spec.env`` Secrets (:func:`merge_env`: the user's keys add to and override
the defaults, a user-supplied ``JWT_SECRET`` wins). Purely computational: no I/O. Must never put a value
into an error message.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping, Sequence

from o4o_operator.errors import InvalidSpecError
from o4o_operator.models import pem_certificates
from o4o_operator.models_database import (
    CA_KEY,
    CA_SECRET_FIELD,
    EXTERNAL_KEYS,
    EXTERNAL_SECRET_FIELD,
    GENERATED_SECRET_FIELD,
    SSL_MODES,
    VERIFYING_SSL_MODES,
)

LOCAL_DB_HOST = "127.0.0.1"
"""TCP to the server's own PostgreSQL: O4O's API forces TLS for a TCP host under NODE_ENV=production, which
Debian's default ``ssl = on`` (snakeoil certificate) serves. Only a ``/cloudsql/`` host avoids TLS."""
LOCAL_DB_PORT = 5432
DATABASE_KEYS = ("DB_NAME", "DB_USERNAME", "DB_PASSWORD")
"""Generated for the local database (never rendered into a script: the password reaches it by environment)."""
SEED_KEYS = ("SEED_BOOTSTRAP_PASSWORD", "ADMIN_VAULT_PASSWORD", "SUPER_ADMIN_BOOTSTRAP_PASSWORD")
"""Passwords O4O's seed migrations read for the accounts they create (``BootstrapCanonicalSeedAccounts``
falls back to a fixed password without ``SEED_BOOTSTRAP_PASSWORD``): generated, so no installation keeps a
default password."""
APP_KEYS = ("ENCRYPTION_KEY",)
"""Keys O4O's API reads that must never keep a default: ``ENCRYPTION_KEY`` (at least 32 bytes) encrypts stored
tokens (without it O4O refuses to, and one of its salts falls back to a value fixed in its source)."""
SECRET_KEYS = ("JWT_SECRET", "JWT_REFRESH_SECRET", "SESSION_SECRET", *SEED_KEYS, *APP_KEYS)
"""Generated (43 characters: 32 random bytes, URL-safe base64) and put in the ``.env``."""
ADMIN_KEYS = ("ADMIN_EMAIL", "ADMIN_PASSWORD")
GENERATED_KEYS = (*DATABASE_KEYS, *SECRET_KEYS, *ADMIN_KEYS)
"""Every key of the operator-owned Secret ``<name>-database``."""
DEFAULTS_ORIGIN = "operator"
"""The origin :func:`merge_env` gives a default (the user's keys say which ``spec.env[i]`` they came from)."""
_PORT = re.compile(r"^[0-9]{1,5}$")
_IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def database_identifier(app_user: str) -> str:
    """The PostgreSQL role and database name of an instance: its system user with ``-`` as ``_``.

    Lowercase letters, digits and ``_`` (at most 32 characters), so it needs no quoting in SQL.
    """
    name = app_user.replace("-", "_")
    if not _IDENTIFIER.fullmatch(name):
        raise ValueError(f"{app_user!r} makes no PostgreSQL identifier")
    return name


@dataclasses.dataclass(frozen=True)
class DatabaseConnection:
    host: str
    port: str
    name: str
    user: str
    password: str = dataclasses.field(repr=False)
    ssl_mode: str = "require"
    ca_certificate: str | None = dataclasses.field(default=None, repr=False)
    """PEM CA certificate(s) the server's certificate chains to: set exactly when ``ssl_mode`` verifies."""

    @property
    def verifies(self) -> bool:
        return self.ssl_mode in VERIFYING_SSL_MODES


@dataclasses.dataclass(frozen=True)
class DatabaseCa:
    """A CA read for an external database, and where it was read (for messages: never its text)."""

    pem: str = dataclasses.field(repr=False)
    field: str
    """:data:`~o4o_operator.models_database.CA_SECRET_FIELD`, or the connection Secret's field for its ca.crt."""
    where: str
    """``key 'ca.crt' of Secret 'db-ca'``."""


def local_database(generated: Mapping[str, str], identifier: str, secret_name: str) -> DatabaseConnection:
    """The instance's own database on its server, from its generated values, whose names must still be
    ``identifier`` (what :func:`database_identifier` made): the database stage creates, and teardown drops,
    whatever they name, so an edited name (``postgres``, ``template1``, another instance's role) stalls
    naming the key instead of ever reaching the server."""
    for key in ("DB_NAME", "DB_USERNAME"):
        if generated[key] != identifier:
            raise InvalidSpecError(GENERATED_SECRET_FIELD, f"key {key!r} of Secret {secret_name!r} was changed: it "
                                   f"must be {identifier!r}, the name the operator made for this instance's "
                                   "database and role. Put it back", reason="DatabaseNameChanged")
    return DatabaseConnection(LOCAL_DB_HOST, str(LOCAL_DB_PORT), generated["DB_NAME"], generated["DB_USERNAME"],
                              generated["DB_PASSWORD"])


def external_database(data: Mapping[str, str], secret_name: str) -> DatabaseConnection:
    """The connection an external database's Secret describes; a missing or malformed key stalls naming it."""
    for key in EXTERNAL_KEYS:
        if not data.get(key):
            raise InvalidSpecError(EXTERNAL_SECRET_FIELD, f"Secret {secret_name!r} has no key {key!r} (it needs "
                                   f"{', '.join(EXTERNAL_KEYS)})", reason="DatabaseSecretIncomplete")
    if not _PORT.fullmatch(data["port"]) or not 1 <= int(data["port"]) <= 65535:
        raise InvalidSpecError(EXTERNAL_SECRET_FIELD, f"key 'port' of Secret {secret_name!r} is not a TCP port",
                               reason="DatabaseSecretIncomplete")
    if data["sslMode"] not in SSL_MODES:
        raise InvalidSpecError(EXTERNAL_SECRET_FIELD, f"key 'sslMode' of Secret {secret_name!r} must be one of "
                               f"{', '.join(SSL_MODES)}", reason="DatabaseSecretIncomplete")
    return DatabaseConnection(data["host"], data["port"], data["name"], data["user"], data["password"],
                              data["sslMode"])


def with_ca(connection: DatabaseConnection, ca: DatabaseCa | None, secret_name: str) -> DatabaseConnection:
    """The connection with the CA its ``sslMode`` verifies against (None for the modes that verify nothing).

    verify-ca and verify-full without a CA, or with one that holds no PEM certificate, stall naming the field
    (``spec.database.external.caSecretRef``): libpq would refuse to connect, or verify against nothing.
    """
    if not connection.verifies:
        return connection
    if ca is None:
        raise InvalidSpecError(CA_SECRET_FIELD, f"sslMode {connection.ssl_mode} (Secret {secret_name!r}) verifies "
                               "the server's certificate, and no CA was given: set spec.database.external."
                               f"caSecretRef to the Secret holding it (key {CA_KEY}), or add key {CA_KEY} to "
                               f"Secret {secret_name!r}", reason="DatabaseCaMissing")
    try:
        pem = pem_certificates(ca.pem)
    except ValueError as error:
        raise InvalidSpecError(ca.field, f"{ca.where} {error}", reason="DatabaseCaInvalid") from None
    return dataclasses.replace(connection, ca_certificate=pem)


NODE_PG_SSLMODES = {"disable": "disable", "allow": "disable", "prefer": "no-verify", "require": "no-verify"}
"""libpq's ``sslmode`` as node-postgres reads ``PGSSLMODE`` (what the API's ``pg`` and TypeORM do when given no
TLS settings, as O4O's ``migrate.js`` is): to it ``require`` means *verify the certificate*, which Debian's
snakeoil one fails ("self-signed certificate", seen on a booted host); its ``no-verify`` is libpq's
``require``. ``verify-ca`` and ``verify-full`` keep their meaning (node-postgres checks the host name for both),
against Node's roots plus ``NODE_EXTRA_CA_CERTS``."""


def node_pg_sslmode(ssl_mode: str) -> str:
    return NODE_PG_SSLMODES.get(ssl_mode, ssl_mode)


def ca_env(ca_path: str) -> dict[str, str]:
    """Where the database's CA lies on the host, for libpq (``PGSSLROOTCERT``) and Node (``NODE_EXTRA_CA_CERTS``,
    which node-postgres' verify-ca and verify-full verify against). Node reads ``NODE_EXTRA_CA_CERTS`` only from
    its real environment at start (not from ``--env-file``, nodejs/node#51426): the PM2 ecosystem sets it too,
    and the commands run through the ``.env`` (migrations, admin command) start with it in their environment."""
    return {"PGSSLROOTCERT": ca_path, "NODE_EXTRA_CA_CERTS": ca_path}


def default_env(domain: str, api_port: int, database: DatabaseConnection,
                generated: Mapping[str, str], ca_path: str | None = None) -> dict[str, str]:
    """What the operator sets in the ``.env`` before the user's Secrets (``ca_path``: where the database's CA
    was uploaded, given exactly when the connection verifies)."""
    origin = f"https://{domain}"
    return {
        "NODE_ENV": "production", "PORT": str(api_port), "CORS_ORIGIN": origin, "FRONTEND_URL": origin,
        "DB_TYPE": "postgres", "DB_HOST": database.host, "DB_PORT": database.port, "DB_NAME": database.name,
        "DB_USERNAME": database.user, "DB_PASSWORD": database.password, "PGSSLMODE": node_pg_sslmode(database.ssl_mode),
        "REDIS_ENABLED": "false",
        **(ca_env(ca_path) if ca_path and database.verifies else {}),
        **{key: generated[key] for key in SECRET_KEYS if key in generated},
    }


def merge_env(defaults: Mapping[str, str],
              user: Sequence[tuple[str, Mapping[str, str]]]) -> tuple[dict[str, str], dict[str, str]]:
    """The defaults, then each ``(field, data)`` of the user's Secrets in order (later ones win); and per key
    where its value came from (:data:`DEFAULTS_ORIGIN` or the ``spec.env[i]`` field)."""
    values = dict(defaults)
    origins = dict.fromkeys(defaults, DEFAULTS_ORIGIN)
    for field, data in user:
        values.update(data)
        origins.update(dict.fromkeys(data, field))
    return values, origins
