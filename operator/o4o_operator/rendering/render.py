"""Rendering of scripts and configuration files from the top-level ``templates/``.

Owns: the Jinja environment (StrictUndefined, no autoescape, the ``shquote``
filter), the names of the host scripts, and the quoting of ``.env`` and
PM2 values. Reads template files and nothing else; returns strings.
"""

from __future__ import annotations

import functools
import json
import os
import re
import shlex
from collections.abc import Mapping
from pathlib import Path

import jinja2

from o4o_operator.errors import InvalidSpecError
from o4o_operator.markers import FENCED_EXIT_STATUS
from o4o_operator.rendering.apps_script import AppsLedger, apps_variables, ledger_variables
from o4o_operator.rendering.host_context import STATE_ROOT, HostContext

TEMPLATES_ENV_VAR = "O4O_TEMPLATES"

SCRIPT_NAMES = ("setup-runtime", "setup-database", "database-facts", "fetch-source", "build-site", "build-api",
                "configure", "issue-cert", "apps", "apps-ledger", "activate-release", "settle-release",
                "check-health", "teardown-host", "backup")
"""The host scripts in ``templates/scripts/`` (the stage table names which stage runs which; ``configure``
ends by switching to the release, whose health the operator then checks with ``check-health`` before
``settle-release`` keeps it or rolls back; it runs after ``database-facts``, whose report decides the
database's bootstrap; the apps stage records what it did through the instance's API with ``apps-ledger``;
the drift check runs ``check-health``, deleting an instance on an existing host runs ``teardown-host``, and an
on-request backup runs ``backup``)."""
_NEEDS_COMMIT = frozenset({"build-site", "build-api", "configure", "activate-release", "settle-release"})
_ENV_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

def templates_dir() -> Path:
    """``$O4O_TEMPLATES`` if set, else ``templates/`` at the top of the repository."""
    override = os.environ.get(TEMPLATES_ENV_VAR)
    if override:
        return Path(override)
    return Path(__file__).resolve().parents[3] / "templates"


def shquote(value: object) -> str:
    """Quote one value for bash; refuses None and containers so nothing renders by accident."""
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise TypeError(f"shquote takes a str or int, not {type(value).__name__}")
    return shlex.quote(str(value))


@functools.lru_cache(maxsize=4)
def _environment(directory: str) -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(directory),
        undefined=jinja2.StrictUndefined,
        autoescape=False,  # noqa: S701 - shell scripts and config files, not HTML
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        # bash uses ${#array[@]}; keep Jinja comments out of its way.
        comment_start_string="{##",
        comment_end_string="##}",
    )
    env.filters["shquote"] = shquote
    return env


def environment() -> jinja2.Environment:
    """The shared Jinja environment for the current templates directory."""
    return _environment(str(templates_dir()))


def render_script(name: str, context: HostContext, *, ledger: AppsLedger | None = None) -> str:
    """The bash script of that name (one of :data:`SCRIPT_NAMES`); ``apps-ledger`` records ``ledger``."""
    if name not in SCRIPT_NAMES:
        raise ValueError(f"No script named {name!r}; host scripts are {', '.join(SCRIPT_NAMES)}")
    if name in _NEEDS_COMMIT and context.commit is None:
        raise ValueError(f"The {name} script needs a resolved commit; fetch the source first")
    variables: dict[str, object] = {"ctx": context}
    if name == "apps":
        variables.update(apps_variables(context))
    if name == "apps-ledger":
        variables.update(ledger_variables(context, ledger or AppsLedger()))
    return environment().get_template(f"scripts/{name}.sh").render(variables)


def render_fence() -> str:
    """The host fence (``scripts/_fence.sh``) that runs before every host script, under ``$O4O_EPOCH``."""
    return environment().get_template("scripts/_fence.sh").render(state_root=STATE_ROOT,
                                                                   fenced_exit_status=FENCED_EXIT_STATUS)


def render_nginx_site(context: HostContext, certificate_present: bool) -> str:
    """The nginx site: HTTP with the ACME location only until a certificate exists, then HTTPS."""
    return environment().get_template("nginx-site.conf.j2").render(ctx=context, https=certificate_present)


def render_ecosystem(context: HostContext, extra_ca_path: str | None = None) -> str:
    """The PM2 ecosystem file; every value is JSON-encoded, so it is valid JavaScript.

    ``extra_ca_path`` (an external database's CA) becomes ``NODE_EXTRA_CA_CERTS`` in the API's real
    environment: Node reads it only there, never from ``--env-file``.
    """
    env = {"NODE_ENV": "production", "PORT": str(context.api_port), "HOST": "127.0.0.1"}
    if extra_ca_path:
        env["NODE_EXTRA_CA_CERTS"] = extra_ca_path
    app = {
        "name": context.pm2_app_name,
        "cwd": context.api_cwd,
        "script": context.api_entry,
        "node_args": f"--env-file={context.env_path}",
        "exec_mode": "fork",
        "instances": 1,
        "autorestart": True,
        "max_memory_restart": "512M",
        "kill_timeout": 10000,
        "time": True,
        "env": env,
    }
    config = json.dumps({"apps": [app]}, indent=2, sort_keys=True)
    return environment().get_template("ecosystem.config.js.j2").render(ctx=context, config_json=config)


def dotenv_quote(value: str) -> str:
    """Quote a value so that Node's ``--env-file`` and the dotenv package read it back unchanged."""
    if "\x00" in value or "\r" in value:
        raise ValueError("a .env value cannot contain NUL or carriage-return characters")
    if "'" not in value:
        return f"'{value}'"
    if '"' not in value and "\\" not in value:
        return f'"{value}"'
    if "`" not in value:
        return f"`{value}`"
    raise ValueError("a .env value cannot contain all three quote characters and a backslash or quote mix")


def render_env(values: Mapping[str, str], origins: Mapping[str, str] | None = None) -> str:
    """The ``.env`` file for the API server, keys sorted, every value quoted.

    ``origins`` names the spec field each key came from (``spec.env[0]``); a key or value the file
    cannot hold raises InvalidSpecError naming that field and the key, never the value.
    """
    origins = origins or {}
    pairs = []
    for key in sorted(values):
        field = origins.get(key, "spec.env")
        if not _ENV_KEY.fullmatch(key):
            raise InvalidSpecError(field, f"{key[:64]!r} is not a valid environment variable name")
        try:
            pairs.append((key, dotenv_quote(values[key])))
        except ValueError as error:
            raise InvalidSpecError(field, f"the value of key {key!r} cannot be written to .env: {error}",
                                   reason="EnvValueUnquotable") from None
    return environment().get_template("env.j2").render(pairs=pairs)

