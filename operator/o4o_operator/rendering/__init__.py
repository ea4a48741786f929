"""Rendering: turns a :class:`HostContext` into bash scripts and configuration files.

Owns: the templates in the repository's top-level ``templates/`` directory
(``$O4O_TEMPLATES`` overrides the location) and the output
marker protocol. Purely computational apart from reading template files: it
opens no connection, runs nothing and imports no client or framework.

Every value placed in a script goes through the ``shquote`` filter; values in
nginx and PM2 files are validated by ``HostContext`` or JSON-encoded.

Root prefix
-----------
Paths are logical (``/srv/o4o/<namespace>.<name>/...``, ``/etc/nginx/...``). Every script
sets ``R="${O4O_ROOT:-}"`` and prefixes each path it touches with ``$R``. The
shipped operator clears ``O4O_ROOT`` for every script, so ``$R`` is empty on
every host; only a connector made by :mod:`o4o_operator.testing`
(``honour_sandbox_root``) passes on the sandbox's (``sshd_config`` ``SetEnv``, a
temporary directory). Configuration files keep
logical paths: only the programs on the host (or the sandbox's shims) read them.

Marker protocol
---------------
Scripts talk back through whole lines on stdout:

``::o4o::result <key>=<value>``
    A fact for the operator, e.g. ``commit=<sha>`` (fetch-source),
    ``notAfter=2026-01-31T12:00:00Z`` and ``issuer=...`` (issue-cert),
    ``release=<sha>`` (activation). Parse with :func:`o4o_operator.markers.parse_results`; the value
    is the rest of the line.
``::o4o::permanent reason=<CamelCase> <message>``
    The script failed and retrying cannot help (``RolledBack``,
    ``AcmeRateLimited``, ``AcmeChallengeFailed``, ``RevisionNotFound``,
    ``BuildFailed``, ...). Printed just before a non-zero exit.
``::o4o::transient reason=<CamelCase> <message>``
    The script failed for a reason worth retrying (``AcmeDnsNotResolving``,
    ``HealthCheckFailed``, ``SourceUnavailable``, ...).

Without a marker, a non-zero exit status in 64-78 (sysexits) is permanent and
any other is transient. The SSH session applies these rules.
"""

from o4o_operator.rendering.host_context import LETSENCRYPT_PRODUCTION, HostContext
from o4o_operator.rendering.render import (
    SCRIPT_NAMES,
    dotenv_quote,
    environment,
    render_ecosystem,
    render_env,
    render_nginx_site,
    render_script,
    shquote,
    templates_dir,
)

__all__ = [
    "LETSENCRYPT_PRODUCTION",
    "SCRIPT_NAMES",
    "HostContext",
    "dotenv_quote",
    "environment",
    "render_ecosystem",
    "render_env",
    "render_nginx_site",
    "render_script",
    "shquote",
    "templates_dir",
]
