"""The host stages, run from their row of the stage table by one generic function.

Owns: :func:`run_host_stage` (open the SSH session, run the stage's small
pre-step if it has one, pass the Secrets its row names, render and run its
script with the timeout its row derives, map the script's results and spec
values into status changes, and format its message), and the pre-steps of the
stages that need one (source pins the recorded commit, database uploads an external database's CA,
configure asks the host about the database (``database-facts``) to decide its bootstrap, then uploads its
files and that CA, tls its CA bundles), the step a row names to run after its script through the
instance's own API (:data:`API_STEPS`; the apps stage's is ``runner/apps_step.py``, configure's health gate
``runner/health_gate.py``), and the apps message
and record (what the instance reports). Must not decide whether a stage should run, and must not write
status: it yields an :class:`Outcome`.
"""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping
from typing import Any

import asyncssh

from o4o_operator import metrics
from o4o_operator.errors import TransientError
from o4o_operator.pipeline.bootstrap import BootstrapAction, DatabaseFacts, plan_bootstrap
from o4o_operator.pipeline.stages import ApiStep, SecretRole, Stage, StageName
from o4o_operator.rendering import HostContext, env_values, render
from o4o_operator.runner import apps_step, backup_step, health_gate, restore_step
from o4o_operator.runner.generated_secret import (
    database_connection,
    database_script_env,
    generated_values,
    upload_database_ca,
)
from o4o_operator.runner.instance import InstanceContext
from o4o_operator.runner.stage_steps import Outcome, StageStep

PreStep = Callable[[InstanceContext, HostContext], Awaitable[HostContext]]
"""Runs before the script (uploads, checks) and returns the host context the script is rendered with."""
ApiStepAction = Callable[[InstanceContext, HostContext, Mapping[str, str]], Awaitable[Mapping[str, str]]]
"""Runs after the script, through the instance's API, given the script's results; returns more results."""
API_STEPS: Mapping[ApiStep, ApiStepAction] = {ApiStep.APPS: apps_step.run_apps_api,
                                              ApiStep.HEALTH_GATE: health_gate.run_health_gate}


async def _pinned_source(instance: InstanceContext, host: HostContext) -> HostContext:
    # Stay on the recorded commit only while repository and revision are the ones it was resolved from.
    return dataclasses.replace(host, commit=instance.status.source.pinned_commit(instance.spec.source))


async def _env_values(instance: InstanceContext,
                      ca_path: str | None) -> tuple[dict[str, str], dict[str, str]]:
    """The operator's defaults, then the user's Secrets (later ones win), and per key where it came from."""
    generated = await generated_values(instance)
    defaults = env_values.default_env(instance.spec.domain, instance.spec.api_port,
                                       await database_connection(instance, generated), generated, ca_path)
    user: list[tuple[str, Mapping[str, str]]] = []
    for index, ref in enumerate(instance.spec.env):
        field = f"spec.env[{index}]"
        user.append((field, (await instance.secret(ref.name, field)).data))
    return env_values.merge_env(defaults, user)


async def _upload_ca_bundles(instance: InstanceContext, host: HostContext) -> HostContext:
    """The public CA bundles spec.tls gives, as files for curl and certbot (absent: the system roots).
    tls uploads them too: a changed bundle re-runs that stage, not configure."""
    session = await instance.session()
    for path, bundle in ((host.acme_ca_path, host.acme_ca_bundle),
                         (host.certificate_ca_path, host.certificate_ca_bundle)):
        if path and bundle:
            await session.upload(path, bundle.encode(), mode=0o644)
    return host


async def _upload_database_ca(instance: InstanceContext, host: HostContext) -> HostContext:
    """An external database's CA, before the script checks the connection with it (configure uploads it too:
    the API verifies against it)."""
    await upload_database_ca(instance, await database_connection(instance, await generated_values(instance)))
    return host


FACTS_TIMEOUT_SECONDS = 120.0


async def _planned_bootstrap(instance: InstanceContext, host: HostContext) -> HostContext:
    """Ask the host what the database holds and what was bootstrapped (``database-facts``), decide
    (:func:`~o4o_operator.pipeline.bootstrap.plan_bootstrap`), and give the configure script the bootstrap to run."""
    session = await instance.session()
    env, public_env = await database_script_env(instance)
    try:
        result = await session.run(render.render_script("database-facts", host), timeout=FACTS_TIMEOUT_SECONDS,
                                   log=instance.log, env=env, public_env=public_env)
    except asyncssh.Error as error:
        raise TransientError("ConnectionLost", f"SSH session failed: {error}") from error
    facts = DatabaseFacts.from_results(result.results)
    plan = plan_bootstrap(instance.spec.database, facts)
    instance.log(f"Database bootstrap ({instance.spec.database.bootstrap.mode.value}): {plan.note}")
    host = dataclasses.replace(host, postgres_version=facts.postgres_version)
    if plan.action is BootstrapAction.NONE or plan.mode is None:
        return host
    return dataclasses.replace(host, bootstrap_mode=plan.mode.value, bootstrap_command=plan.command,
                               bootstrap_reset=plan.action is BootstrapAction.RESET_AND_RUN)


async def _upload_configuration(instance: InstanceContext, host: HostContext) -> HostContext:
    session = await instance.session()
    host = await _planned_bootstrap(instance, host)
    await _upload_ca_bundles(instance, host)
    connection = await database_connection(instance, await generated_values(instance))
    ca_path = await upload_database_ca(instance, connection)
    env_file = render.render_env(*await _env_values(instance, ca_path))
    await session.upload(host.env_path, env_file.encode(), mode=0o600, owner=host.app_user)
    await session.upload(host.ecosystem_path, render.render_ecosystem(host, ca_path).encode(), mode=0o644,
                         owner=host.app_user)
    for https in (False, True):
        await session.upload(host.nginx_site_path(https), render.render_nginx_site(host, https).encode(),
                             mode=0o644)
    return host


PRE_STEPS: Mapping[StageName, PreStep] = {
    StageName.SOURCE: _pinned_source,
    StageName.DATABASE: _upload_database_ca,
    StageName.CONFIGURE: _upload_configuration,
    StageName.TLS: _upload_ca_bundles,
}


def _listed(value: str | None) -> tuple[str, ...]:
    return tuple(sorted(part for part in (value or "").split(",") if part))


def _apps_changes(results: Mapping[str, str]) -> str:
    """From what the apps script reports it changed (``added``, ``removed``: comma lists)."""
    added, removed = _listed(results.get("added")), _listed(results.get("removed"))
    parts = [f"installed {', '.join(added)}" if added else "", f"removed {', '.join(removed)}" if removed else ""]
    return "; ".join(part for part in parts if part) or "no change"


async def _script_env(instance: InstanceContext, stage: Stage) -> tuple[dict[str, str], dict[str, str]]:
    """The stage script's environment: the secret values (redacted from its output) and the rest (not)."""
    env: dict[str, str] = {}
    public_env: dict[str, str] = {}
    ref = instance.spec.source.credentials_secret_ref
    if SecretRole.GIT_TOKEN in stage.secrets and ref is not None:
        env["O4O_GIT_TOKEN"] = await instance.secret_value(ref.name, ref.key, "spec.source.credentialsSecretRef")
    if SecretRole.DATABASE in stage.secrets:
        secret, public = await database_script_env(instance)
        env.update(secret)
        public_env.update(public)
    if SecretRole.ADMIN in stage.secrets:
        secret, public = await apps_step.admin_credentials(instance)
        env.update(secret)
        public_env.update(public)
    return env, public_env


def _spec_value(instance: InstanceContext, path: str) -> Any:
    node: Any = instance.spec
    for part in path.split("."):
        node = getattr(node, part)
    return node


async def run_host_stage(stage: Stage, instance: InstanceContext) -> AsyncGenerator[StageStep]:
    """Run one host stage as its row says; yield its outcome."""
    assert stage.script is not None, f"{stage.name.value} runs no host script"
    host = instance.host_context()
    pre_step = PRE_STEPS.get(stage.name)
    if pre_step is not None:
        host = await pre_step(instance, host)
    backup_env: dict[str, str] = {}
    if SecretRole.BACKUP in stage.secrets:  # configure: the backup before its migration run, and a restore
        host, backup_env = await backup_step.prepare(instance, host)
        host, restore_env = await restore_step.prepare(instance, host)
        backup_env.update(restore_env)
    script = render.render_script(stage.script, host)
    session = await instance.session()
    try:
        env, public_env = await _script_env(instance, stage)
        env.update(backup_env)
        result = await session.run(script, timeout=stage.script_timeout_seconds, log=instance.log,
                                   env=env, public_env=public_env)
        results = dict(result.results)
        if stage.api_step is not None:
            results.update(await API_STEPS[stage.api_step](instance, host, results))
    except asyncssh.Error as error:
        raise TransientError("ConnectionLost", f"SSH session failed: {error}") from error
    changes: dict[str, Any] = {}
    for field in stage.results:
        value = results.get(field.key)
        if not value and field.missing_reason:
            raise TransientError(field.missing_reason, f"{stage.script} did not report a {field.key}")
        if value and field.status_field:
            changes[field.status_field] = value
    if SecretRole.BACKUP in stage.secrets:
        changes.update(await backup_step.record(instance, host.commit or "", results))
        changes.update(restore_step.record(instance, results))
    for status_field, spec_path in stage.records:
        changes[status_field] = _spec_value(instance, spec_path)
    if stage.name is StageName.APPS:  # what the instance reports active after the stage
        if "installed" not in results:
            raise TransientError("NoAppsReport", f"{stage.script} did not report the instance's active apps")
        changes["installed_apps"] = _listed(results["installed"])
    _observe_certificate(instance, results.get("notAfter"))
    yield Outcome(stage.message.format_map(_message_values(instance, stage, host, results)), changes)


def _message_values(instance: InstanceContext, stage: Stage, host: HostContext,
                    results: Mapping[str, str]) -> dict[str, str]:
    commit = results.get("commit") or host.commit or ""
    values = {**results, "domain": instance.spec.domain, "revision": instance.spec.source.revision,
              "commit": commit[:12], "release": (results.get("release") or commit)[:12],
              "notAfter": results.get("notAfter") or "unknown", "server": results.get("server") or "unknown"}
    if stage.name is StageName.APPS:
        values["changes"] = _apps_changes(results)
    return values


def _observe_certificate(instance: InstanceContext, not_after: str | None) -> None:
    if not_after:
        moment = datetime.datetime.fromisoformat(not_after.replace("Z", "+00:00"))
        metrics.CERTIFICATE_EXPIRY.labels(namespace=instance.ref.namespace, name=instance.ref.name).set(
            moment.timestamp())
