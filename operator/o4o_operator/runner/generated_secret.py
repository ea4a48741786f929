"""The operator-owned Secret ``<metadata.name>-database`` of each instance.

Owns: :func:`generated_values` (make sure the Secret exists, made by the operator for this instance,
holding every key of :data:`~o4o_operator.rendering.env_values.GENERATED_KEYS`, and return its data),
:func:`delete_generated_secret` for teardown, which database an instance uses
(:func:`database_connection`) and what the database stage's script is told of it
(:func:`database_script_env`). Values are made once with :func:`secrets.token_urlsafe` and never
regenerated: a key added in a later release is added beside the ones kept. The Secret carries the
``managed-by`` label, the instance label and the instance as its controller (so Kubernetes' garbage
collector removes it too, where one runs). ``deletionPolicy: Retain`` releases it (teardown removes the
ownerReference); an instance of the same name adopts a released one, values and all, so the database
and the admin account made with them keep working. A Secret of that name the operator did not make
for this instance, nor released for an instance of this name, stalls permanently (``SecretNameTaken``)
and is never touched.

Must never log, return into status, or put into an error message any value of the Secret.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Mapping

from o4o_operator.errors import InvalidSpecError, TransientError
from o4o_operator.kubeapi import FIELD_MANAGER, KubeApi, SecretData
from o4o_operator.models_database import (
    CA_KEY,
    CA_SECRET_FIELD,
    EXTERNAL_SECRET_FIELD,
    GENERATED_SECRET_FIELD,
    INSTANCE_LABEL,
    generated_secret_name,
    secret_values,
)
from o4o_operator.rendering.env_values import (
    GENERATED_KEYS,
    DatabaseCa,
    DatabaseConnection,
    database_identifier,
    external_database,
    local_database,
    with_ca,
)
from o4o_operator.runner.instance import InstanceContext

logger = logging.getLogger("o4o_operator.generated_secret")
TOKEN_BYTES = 32


def _new_value(instance: InstanceContext, key: str) -> str:
    if key in ("DB_NAME", "DB_USERNAME"):
        return database_identifier(instance.host_context().app_user)
    if key == "ADMIN_EMAIL":
        return f"admin@{instance.spec.domain}"
    return secrets.token_urlsafe(TOKEN_BYTES)


def _taken(name: str, namespace: str) -> InvalidSpecError:
    return InvalidSpecError(GENERATED_SECRET_FIELD, f"Secret {name!r} in namespace {namespace!r} exists and was "
                            "not made by o4o-operator for this instance; the operator keeps the instance's "
                            "database password and generated secrets there. Rename or remove that Secret",
                            reason="SecretNameTaken")


def _ours(secret: SecretData, uid: str) -> bool:
    return secret.managed_by == FIELD_MANAGER and secret.controller_uid == uid


async def _read(kube: KubeApi, namespace: str, name: str) -> SecretData | None:
    try:
        return await kube.read_secret(namespace, name, GENERATED_SECRET_FIELD)
    except InvalidSpecError as error:
        if error.reason == "SecretNotFound":
            return None
        raise


async def generated_values(instance: InstanceContext) -> dict[str, str]:
    """The instance's generated values (every key of ``GENERATED_KEYS``), creating or completing its Secret."""
    kube, namespace, uid = instance.runtime.kube, instance.ref.namespace, instance.ref.uid
    name = generated_secret_name(instance.ref.name)
    for _ in range(3):  # made or deleted by someone else between our calls: look again
        secret = await _read(kube, namespace, name)
        if secret is None:
            values = {key: _new_value(instance, key) for key in GENERATED_KEYS}
            instance.log.redactor.add(_secret_values(values))
            if await kube.create_secret(namespace, name, values, instance.body, {INSTANCE_LABEL: instance.ref.name}):
                logger.info("Created Secret %s/%s for %s", namespace, name, instance.ref.name)
                instance.log(f"Created the operator-owned Secret {name} (database password and generated secrets)")
                return values
            continue
        if not _ours(secret, uid):
            labels = {INSTANCE_LABEL: instance.ref.name}
            if await kube.adopt_released("secrets", namespace, name, instance.body, labels) is None:
                raise _taken(name, namespace)
            logger.info("Adopted Secret %s/%s for %s", namespace, name, instance.ref.name)
            instance.log(f"Adopted the operator-owned Secret {name}, kept from an earlier instance of this name")
            continue  # the next read finds it ours
        instance.log.redactor.add(_secret_values(secret.data))
        missing = {key: _new_value(instance, key) for key in GENERATED_KEYS if not secret.data.get(key)}
        if not missing:
            return dict(secret.data)
        instance.log.redactor.add(_secret_values(missing))
        if not await kube.add_secret_data(namespace, name, missing, uid):
            continue  # replaced since we read it: the next read decides
        logger.info("Added keys %s to Secret %s/%s", ", ".join(sorted(missing)), namespace, name)
        return {**secret.data, **missing}
    raise TransientError("SecretContended", f"Secret {name!r} kept changing while it was read")


def _secret_values(values: Mapping[str, str]) -> list[str]:
    """The values to redact from the log: all but the names and the admin's address, which are not secret."""
    return secret_values(GENERATED_SECRET_FIELD, dict(values))


async def delete_generated_secret(kube: KubeApi, namespace: str, instance_name: str, uid: str) -> bool:
    """Delete the instance's Secret if the operator made it for ``uid`` (False: a foreign one, left alone)."""
    return await kube.delete_secret(namespace, generated_secret_name(instance_name), uid)


async def release_generated_secret(kube: KubeApi, namespace: str, instance_name: str, uid: str) -> bool:
    """Release the instance's Secret for ``deletionPolicy: Retain`` (False: nothing of ours to release)."""
    return await kube.release_owned("secrets", namespace, generated_secret_name(instance_name), uid)


async def database_connection(instance: InstanceContext, generated: Mapping[str, str]) -> DatabaseConnection:
    """The database the instance's API uses: the local one (from the generated values, whose names must be the
    ones the operator made: an edited one stalls ``DatabaseNameChanged`` naming the key), or the external one
    its Secret describes (a missing key stalls naming ``spec.database.external.secretRef`` and the key)."""
    external = instance.spec.database.external
    if external is None:
        identifier = database_identifier(instance.host_context().app_user)
        return local_database(generated, identifier, generated_secret_name(instance.ref.name))
    name = external.secret_ref.name
    data = (await instance.secret(name, EXTERNAL_SECRET_FIELD)).data
    connection = external_database(data, name)
    if not connection.verifies:  # the CA is read only for a mode that verifies against it
        return connection
    ca: DatabaseCa | None = None
    ref = external.ca_secret_ref
    if ref is not None:
        secret = await instance.secret(ref.name, CA_SECRET_FIELD)
        if not secret.data.get(ref.key):
            raise InvalidSpecError(CA_SECRET_FIELD, f"Secret {ref.name!r} has no key {ref.key!r} (the CA for "
                                   f"sslMode {connection.ssl_mode})", reason="DatabaseCaMissing")
        ca = DatabaseCa(secret.data[ref.key], CA_SECRET_FIELD, f"key {ref.key!r} of Secret {ref.name!r}")
    elif data.get(CA_KEY):
        ca = DatabaseCa(data[CA_KEY], EXTERNAL_SECRET_FIELD, f"key {CA_KEY!r} of Secret {name!r}")
    return with_ca(connection, ca, name)


async def database_script_env(instance: InstanceContext) -> tuple[dict[str, str], dict[str, str]]:
    """What the database stage's script (and configure's, for the bootstrap) gets in its environment (never
    rendered into it): the password, which is redacted from its output, and the names, host, port, modes and
    the CA's path on the host, which are not (so DatabaseReady says which database it made and where)."""
    connection = await database_connection(instance, await generated_values(instance))
    mode = "local" if instance.spec.database.external is None else "external"
    public = {"O4O_DB_MODE": mode, "O4O_DB_HOST": connection.host, "O4O_DB_PORT": connection.port,
              "O4O_DB_NAME": connection.name, "O4O_DB_USER": connection.user,
              "O4O_DB_SSLMODE": connection.ssl_mode,
              "O4O_DB_EXTENSIONS": " ".join(instance.spec.database.extensions)}
    if connection.ca_certificate:
        public["O4O_DB_SSLROOTCERT"] = instance.host_context().database_ca_path
    return {"O4O_DB_PASSWORD": connection.password}, public


async def upload_database_ca(instance: InstanceContext, connection: DatabaseConnection) -> str | None:
    """Put the connection's CA on the host for the app user alone (0600); its path there, None without one."""
    if not connection.ca_certificate:
        return None
    host = instance.host_context()
    await (await instance.session()).upload(host.database_ca_path, connection.ca_certificate.encode(), mode=0o600,
                                            owner=host.app_user)
    return host.database_ca_path
