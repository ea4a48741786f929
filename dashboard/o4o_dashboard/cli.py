"""``o4o-dashboard``: command-line flags, validation, and running until a signal.

Owns: the flags (``--kubeconfig``, ``--context``, ``--namespace`` or
``--all-namespaces``, ``--host``, ``--port``, ``--token-file``,
``--insecure-bind``, ``--log-level``), turning bad ones into clear argparse
errors (exit status 2), logging setup, and stopping cleanly on SIGINT/SIGTERM.

Must not: print a token or any credential.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.metadata
import logging
import re
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from o4o_dashboard.credentials import ApiCredentials, CredentialsError, load_credentials
from o4o_dashboard.security import TOKEN_ENV, TokenError, bind_refusal, load_token
from o4o_dashboard.service import Dashboard, DashboardConfig

logger = logging.getLogger("o4o_dashboard")
DEFAULT_PORT = 8080
_NAMESPACE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


def _port(value: str) -> int:
    try:
        port = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a port number") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{port} is not between 0 and 65535")
    return port


def _namespace(value: str) -> str:
    if len(value) > 63 or not _NAMESPACE.fullmatch(value):
        raise argparse.ArgumentTypeError(f"{value!r} is not a namespace name (lowercase DNS label)")
    return value


def _existing_file(value: str) -> Path:
    path = Path(value).expanduser()
    if not path.is_file():
        raise argparse.ArgumentTypeError(f"{value}: no such file")
    return path


def _version() -> str:
    try:
        return importlib.metadata.version("o4o-operator")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="o4o-dashboard",
        description="Read-only web dashboard for DeploymentInstances (deploy.o4o.io/v1alpha1).",
        epilog=("Without a token the dashboard listens only on loopback. "
                f"The token may also come from ${TOKEN_ENV}."),
    )
    parser.add_argument("--kubeconfig", type=_existing_file, metavar="PATH",
                        help="kubeconfig file (default: $KUBECONFIG, else the in-cluster "
                             "ServiceAccount, else ~/.kube/config)")
    parser.add_argument("--context", metavar="NAME", help="kubeconfig context (default: the current one)")
    scope = parser.add_mutually_exclusive_group()
    scope.add_argument("-n", "--namespace", type=_namespace, metavar="NS",
                       help="watch one namespace (default: the context's or the pod's namespace)")
    scope.add_argument("-A", "--all-namespaces", action="store_true", help="watch every namespace")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    parser.add_argument("--port", type=_port, default=DEFAULT_PORT, help=f"port (default: {DEFAULT_PORT})")
    parser.add_argument("--token-file", type=_existing_file, metavar="PATH",
                        help="file holding the bearer token clients must present (e.g. a mounted Secret)")
    parser.add_argument("--insecure-bind", action="store_true",
                        help="allow a non-loopback --host without a token")
    parser.add_argument("--log-level", default="info", choices=("debug", "info", "warning", "error"))
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    return parser


def parse(argv: Sequence[str] | None = None) -> tuple[argparse.Namespace, ApiCredentials, DashboardConfig]:
    """Parse and validate flags; exits with status 2 and a clear message on any bad one."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        token = load_token(args.token_file)
    except TokenError as error:
        parser.error(str(error))
    refusal = bind_refusal(args.host, token_configured=token is not None, insecure_bind=args.insecure_bind)
    if refusal:
        parser.error(refusal)
    try:
        credentials = load_credentials(args.kubeconfig, args.context)
    except CredentialsError as error:
        parser.error(str(error))
    namespace = None if args.all_namespaces else (args.namespace or credentials.namespace)
    config = DashboardConfig(namespace=namespace, host=args.host, port=args.port, token=token)
    return args, credentials, config


async def serve(credentials: ApiCredentials, config: DashboardConfig) -> None:
    """Run the dashboard until SIGINT or SIGTERM."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    async with Dashboard(credentials, config) as dashboard:
        logger.info("Serving the dashboard for %s on %s/ (API server %s, auth %s)", config.scope_label,
                    dashboard.url, credentials.server, "token" if config.token else "none")
        await stop.wait()
        logger.info("Stopping the dashboard")


def main(argv: Sequence[str] | None = None) -> int:
    args, credentials, config = parse(argv)
    logging.basicConfig(level=args.log_level.upper(), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        asyncio.run(serve(credentials, config))
    except OSError as error:  # e.g. the port is taken
        logger.error("Could not serve on %s:%s: %s", config.host, config.port, error.strerror or error)
        return 1
    return 0
