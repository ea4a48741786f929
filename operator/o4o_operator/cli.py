"""The ``o4o-operator`` command: ``run`` wraps ``kopf run`` with our handlers.

Owns: argument parsing (clear errors on bad flags), logging setup, the metrics
endpoint, and starting Kopf with a liveness endpoint and the chosen namespaces.
Must not hold any reconciliation logic.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Sequence

from o4o_operator import __version__


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="o4o-operator", description="Reconcile DeploymentInstance resources into running O4O installations.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    run = commands.add_parser("run", help="run the operator until interrupted")
    scope = run.add_mutually_exclusive_group()
    scope.add_argument("-n", "--namespace", action="append", default=[], metavar="NS",
                       help="watch this namespace (repeatable; globs allowed)")
    scope.add_argument("-A", "--all-namespaces", action="store_true", help="watch every namespace")
    run.add_argument("--liveness", metavar="URL", default="http://0.0.0.0:8080/healthz",
                     help="liveness endpoint for probes (default: %(default)s); 'none' disables it")
    run.add_argument("--metrics-port", type=_port, default=9090, metavar="PORT",
                     help="serve Prometheus metrics on this port (0 disables; default: %(default)s)")
    run.add_argument("--metrics-address", default="0.0.0.0", metavar="ADDR")  # noqa: S104
    run.add_argument("-v", "--verbose", action="store_true", help="log debug output")
    run.add_argument("-q", "--quiet", action="store_true", help="log warnings and errors only")
    return parser


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"port must be between 0 and 65535, got {value}")
    return value


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    options = parser.parse_args(argv)
    if options.command == "run":
        if not options.namespace and not options.all_namespaces:
            parser.error("run: choose --namespace NS (repeatable) or --all-namespaces")
        if options.liveness != "none" and not options.liveness.startswith("http://"):
            parser.error(f"run: --liveness must be an http:// URL or 'none', got {options.liveness!r}")
        try:
            from o4o_operator.runner.settings import OperatorSettings
            OperatorSettings.from_environment()
        except ValueError as error:
            parser.error(f"run: {error}")
        return _run(options)
    return 2  # pragma: no cover - argparse requires a command


class _DropWakeups(logging.Filter):
    """Kopf logs every event handler's success; the wake-up handler runs on every watch event."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "Handler 'wake' succeeded" not in record.getMessage()


def _quiet_chatty_loggers(verbose: bool) -> None:
    if verbose:
        return
    for name in ("asyncssh", "asyncssh.sftp", "botocore", "botocore.credentials", "aiohttp.access"):
        logging.getLogger(name).setLevel(logging.WARNING)
    logging.getLogger("kopf.objects").addFilter(_DropWakeups())


def _run(options: argparse.Namespace) -> int:
    # Kopf imports the kubernetes client whenever it is installed, only to offer a login fallback we
    # replace with our own; that import is most of an idle operator's memory (see bench P4). Block it.
    sys.modules.setdefault("kubernetes", None)  # type: ignore[arg-type]
    import kopf
    from prometheus_client import start_http_server

    from o4o_operator import handlers, handlers_fleet, kopf_namespaces, metrics

    kopf_namespaces.install()
    kopf.configure(verbose=options.verbose, quiet=options.quiet)
    _quiet_chatty_loggers(options.verbose)
    if options.metrics_port:
        start_http_server(options.metrics_port, addr=options.metrics_address, registry=metrics.REGISTRY)
    liveness = None if options.liveness == "none" else options.liveness
    try:
        asyncio.run(kopf.operator(
            registry=kopf.get_default_registry(), standalone=True, clusterwide=options.all_namespaces,
            namespaces=options.namespace, liveness_endpoint=liveness))
    except KeyboardInterrupt:
        return 130
    assert handlers and handlers_fleet  # registered on import
    return 0


if __name__ == "__main__":
    sys.exit(main())
