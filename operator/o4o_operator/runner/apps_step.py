"""The apps stage's API step: the instance's own API, spoken from the operator through an SSH tunnel.

Owns: after the ``apps`` host script (which creates the admin account once and reports root's record), the
admin's login, the instance's lists, carrying out :func:`o4o_operator.pipeline.apps.plan_apps`, the
post-install steps in their order (a request through the API; a command through the ``apps-ledger`` host
script), keeping root's record on the host after every change (``apps-ledger``), and the reasons and
messages users see for what the instance answers (``AdminLoginFailed``, ``AppsApiUnavailable``,
``AppRefused``, ``PostInstallFailed``). Also the admin credentials the apps scripts get in their environment.

Must not: put a credential or the token into a message or a log line (the client scrubs the instance's
words of them; nothing here formats them), decide what to change (the pipeline does), or write status.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import TypeVar

from o4o_operator.errors import PermanentError, StageError, TransientError
from o4o_operator.pipeline.apps import AppsPlan, plan_apps
from o4o_operator.pipeline.stages import STAGES_BY_NAME, StageName
from o4o_operator.providers.instance_api import (
    AdminCredentials,
    ApiFailure,
    AppAction,
    InstanceApi,
    InstanceApiError,
    instance_api,
)
from o4o_operator.providers.protocols import HostSession, LogSink
from o4o_operator.rendering import HostContext, render
from o4o_operator.rendering.apps_script import AppsLedger, step_marker
from o4o_operator.runner.generated_secret import generated_values
from o4o_operator.runner.instance import InstanceContext

API_TIMEOUT_SECONDS = 120.0
"""One call to the instance's API (as the host script's curl allowed)."""
LEDGER_TIMEOUT_SECONDS = STAGES_BY_NAME[StageName.APPS].script_timeout_seconds
"""One ``apps-ledger`` run: a post-install command gets what the apps script itself gets."""
T = TypeVar("T")


async def admin_credentials(instance: InstanceContext) -> tuple[dict[str, str], dict[str, str]]:
    """ADMIN_PASSWORD (secret) and ADMIN_EMAIL (not) of the operator-owned Secret ``<name>-database``."""
    values = await generated_values(instance)
    return {"O4O_ADMIN_PASSWORD": values["ADMIN_PASSWORD"]}, {"O4O_ADMIN_EMAIL": values["ADMIN_EMAIL"]}


def _listed(value: str | None) -> tuple[str, ...]:
    return tuple(sorted(part for part in (value or "").split(",") if part))


def _call_failed(error: InstanceApiError, what: str, port: int) -> StageError:
    """A lost session or an unavailable API is worth retrying; other refusals are the caller's to word."""
    if error.failure is ApiFailure.UNAUTHORISED:
        return TransientError("AdminLoginFailed", f"{what}: the instance refused the operator's admin "
                              f"(HTTP {error.status_text}): {error.words}")
    if error.status is None:
        return TransientError("AppsApiUnavailable", f"The instance's API on 127.0.0.1:{port} did not answer "
                              f"{error.call}: {error.words}")
    return TransientError("AppsApiUnavailable", f"{what}: the instance's API is unavailable (HTTP {error.status_text})")


class _Apps:
    """One run of the API step on one instance."""

    def __init__(self, session: HostSession, host: HostContext, log: LogSink,
                 env: tuple[Mapping[str, str], Mapping[str, str]]) -> None:
        self.session = session
        self.host = host
        self.log = log
        self.env, self.public_env = env

    def step(self, text: str) -> None:
        """A step in the log, as a host script's ``o4o_step`` shows one."""
        self.log(f"==> {text}")

    async def ledger(self, change: AppsLedger) -> None:
        await self.session.run(render.render_script("apps-ledger", self.host, ledger=change),
                               timeout=LEDGER_TIMEOUT_SECONDS, log=self.log, env=self.env,
                               public_env=self.public_env)

    async def login(self, api: InstanceApi) -> None:
        self.step("Logging in to the instance's API as the operator's admin account")
        try:
            await api.login(AdminCredentials(self.public_env["O4O_ADMIN_EMAIL"], self.env["O4O_ADMIN_PASSWORD"]))
        except InstanceApiError as error:
            if error.failure is ApiFailure.BAD_ANSWER:
                raise TransientError("AdminLoginFailed",
                                     "The instance's login answer carried no data.tokens.accessToken") from None
            if error.failure is ApiFailure.UNAVAILABLE:
                raise _call_failed(error, "Logging in", self.host.api_port) from None
            raise TransientError("AdminLoginFailed", "The instance refused the operator's admin login "
                                 f"(HTTP {error.status_text}): {error.words}") from None

    async def listing(self, call: Callable[[], Awaitable[T]], what: str) -> T:
        try:
            return await call()
        except InstanceApiError as error:
            if error.failure is ApiFailure.BAD_ANSWER:
                raise TransientError("AppsApiUnavailable", f"{error.call} answered no apps list") from None
            if error.failure is ApiFailure.REFUSED:
                raise TransientError("AppsApiUnavailable",
                                     f"{error.call} answered HTTP {error.status_text}: {error.words}") from None
            raise _call_failed(error, what, self.host.api_port) from None

    async def act(self, api: InstanceApi, action: str, app: str, field: str) -> None:
        verb = {"install": "Installing", "activate": "Activating", "deactivate": "Deactivating",
                "uninstall": "Uninstalling"}[action]
        self.step(f"{verb} app {app} ({field})")
        try:
            await api.app_action(AppAction(action), app)
        except InstanceApiError as error:
            if error.failure is ApiFailure.REFUSED:
                raise PermanentError("AppRefused", f"{field}: the instance refused to {action} app {app} "
                                     f"(HTTP {error.status_text}): {error.words}") from None
            raise _call_failed(error, field, self.host.api_port) from None

    async def apply(self, api: InstanceApi, plan: AppsPlan, recorded: tuple[str, ...]) -> tuple[list[str], list[str]]:
        removed: list[str] = []
        for change in plan.removals:
            for action in change.actions:
                await self.act(api, action, change.app_id, change.field)
            await self.ledger(AppsLedger(forget=(change.app_id,)))
            removed.append(change.app_id)
        added: list[str] = []
        unrecorded: list[str] = []
        for change in plan.wanted:
            if not change.actions:
                self.step(f"App {change.app_id} is active")
                if change.app_id not in recorded:
                    unrecorded.append(change.app_id)
                continue
            for action in change.actions:
                await self.act(api, action, change.app_id, change.field)
            await self.ledger(AppsLedger(record=(change.app_id,)))
            added.append(change.app_id)
        if unrecorded:  # wanted, active, and from now on this operator's to remove
            await self.ledger(AppsLedger(record=tuple(unrecorded)))
        return added, removed

    async def post_install(self, api: InstanceApi, steps_run: tuple[str, ...]) -> None:
        for index, step in enumerate(self.host.post_install):
            field, marker = f"spec.postInstall[{index}]", step_marker(step)
            if marker in steps_run:
                self.step(f"Post-install step {step.name} ran before")
                continue
            if step.command is not None:
                await self.ledger(AppsLedger(steps=(marker,), command=index))
                continue
            assert step.request is not None
            request = step.request
            self.step(f"Post-install step {step.name} ({field})")
            try:
                answer = await api.request(request.method.value, request.path, request.body)
            except InstanceApiError as error:
                raise _call_failed(error, f"{field} ({step.name})", self.host.api_port) from None
            if not answer.ok:
                raise PermanentError("PostInstallFailed", f"{field} ({step.name}): {request.method.value} "
                                     f"{request.path} answered HTTP {answer.status}: {answer.words}")
            await self.ledger(AppsLedger(steps=(marker,)))


async def run_apps_api(instance: InstanceContext, host: HostContext, results: Mapping[str, str]) -> dict[str, str]:
    """The apps stage's API step (a row's ``api_step``): :func:`apply_apps` on the instance's session."""
    return await apply_apps(await instance.session(), host, instance.log, await admin_credentials(instance),
                            results)


async def apply_apps(session: HostSession, host: HostContext, log: LogSink,
                     env: tuple[Mapping[str, str], Mapping[str, str]], results: Mapping[str, str]) -> dict[str, str]:
    """The apps stage through the instance's API, after the ``apps`` script reported ``results``; ``env``: the
    admin's password (secret) and email (public), as the apps scripts get them. Returns ``installed`` (what the
    instance reports active), ``added`` and ``removed`` (comma lists), as the stage's results."""
    apps = _Apps(session, host, log, env)
    recorded = _listed(results.get("recordedApps"))
    async with session.tunnel(host.api_port) as base_url, \
            instance_api(base_url, timeout=API_TIMEOUT_SECONDS) as api:
        await apps.login(api)
        market = await apps.listing(api.market, "Listing the instance's apps")
        installed = await apps.listing(api.installed, "Listing the installed apps")
        plan = plan_apps(host.apps, market, {app.app_id: app.status for app in installed}, recorded)
        added, removed = await apps.apply(api, plan, recorded)
        await apps.post_install(api, _listed(results.get("stepsRun")))
        active = sorted(app.app_id for app in await apps.listing(api.installed, "Listing the installed apps")
                        if app.status == "active")
    return {"installed": ",".join(active), "added": ",".join(added), "removed": ",".join(removed)}
