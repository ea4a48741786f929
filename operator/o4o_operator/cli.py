"""The ``o4o-operator`` command: ``run`` wraps ``kopf run`` with our handlers.

Owns: argument parsing (clear errors on bad flags), logging setup, the metrics
endpoint, and starting Kopf with a liveness endpoint and the chosen namespaces: at once with leader election
off (``O4O_LEADER_ELECTION=false``), else only while this replica holds the Lease
(:func:`o4o_operator.runner.leader.run_while_leading`; the liveness endpoint is then our own, so a standby
answers too). A replica that lost the Lease exits at once with status 75 (Kubernetes starts it again, as a
standby). Must not hold any reconciliation logic.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
import urllib.parse
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from o4o_operator.runner.settings import OperatorSettings

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
            settings = OperatorSettings.from_environment()
        except ValueError as error:
            parser.error(f"run: {error}")
        problem = _election_problem(settings)
        if problem:
            parser.error(f"run: {problem}")
        return _run(options, settings)
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


def _election_problem(settings: OperatorSettings) -> str | None:
    if not settings.leader_election:
        return None
    from o4o_operator.runner import leader
    if leader.lease_namespace(settings.lease_namespace, os.environ) is None:
        return ("leader election needs the Lease's namespace: set O4O_LEASE_NAMESPACE (or POD_NAMESPACE), "
                "or O4O_LEADER_ELECTION=false for a single replica")
    problem = _timings(settings).problem()
    return None if problem is None else (f"{problem} (O4O_LEASE_DURATION_SECONDS, O4O_RENEW_DEADLINE_SECONDS, "
                                         "O4O_RETRY_PERIOD_SECONDS)")


def _timings(settings: OperatorSettings) -> Any:
    from o4o_operator.pipeline.election import ElectionTimings
    return ElectionTimings(settings.lease_duration_seconds, settings.renew_deadline_seconds,
                           settings.retry_period_seconds)


def _run(options: argparse.Namespace, settings: OperatorSettings) -> int:
    # Kopf imports the kubernetes client whenever it is installed, only to offer a login fallback we
    # replace with our own; that import is most of an idle operator's memory (see bench P4). Block it.
    sys.modules.setdefault("kubernetes", None)  # type: ignore[arg-type]
    import kopf
    from prometheus_client import start_http_server

    from o4o_operator import handlers, handlers_fleet, kopf_namespaces, kopf_watch_trim, metrics

    kopf_namespaces.install()
    kopf_watch_trim.install()
    kopf.configure(verbose=options.verbose, quiet=options.quiet)
    _quiet_chatty_loggers(options.verbose)
    if options.metrics_port:
        start_http_server(options.metrics_port, addr=options.metrics_address, registry=metrics.REGISTRY)
    liveness = None if options.liveness == "none" else options.liveness
    assert handlers and handlers_fleet  # registered on import
    if not settings.leader_election:
        try:
            asyncio.run(kopf.operator(
                registry=kopf.get_default_registry(), standalone=True, clusterwide=options.all_namespaces,
                namespaces=options.namespace, liveness_endpoint=liveness))
        except KeyboardInterrupt:
            return 130
        return 0
    try:
        status = asyncio.run(_lead(options, settings, liveness))
    except KeyboardInterrupt:
        return 130
    from o4o_operator.runner.leader import LOST_EXIT_STATUS
    if status == LOST_EXIT_STATUS:  # no waiting for cloud calls still in their threads: they are idempotent
        logging.shutdown()
        os._exit(status)
    return status


async def _lead(options: argparse.Namespace, settings: OperatorSettings, liveness: str | None) -> int:
    """Serve liveness, wait for the Lease, run Kopf while it is held (its term in the memo's ``shared``)."""
    import kopf

    from o4o_operator import handlers
    from o4o_operator.kubeapi_lease import LeaseApi
    from o4o_operator.kubeapi_transport import KubeTransport
    from o4o_operator.runner import leader

    kopf_settings = kopf.OperatorSettings()
    info = kopf.login_with_service_account(settings=kopf_settings) or \
        kopf.login_with_kubeconfig(settings=kopf_settings)
    if info is None:
        raise SystemExit("o4o-operator: no cluster credentials (neither a service account nor a kubeconfig)")
    namespace = leader.lease_namespace(settings.lease_namespace, os.environ)
    assert namespace is not None  # checked in main()
    transport = KubeTransport(handlers.credentials_from(info), attempts=1)
    elector = leader.LeaderElector(LeaseApi(transport, namespace, settings.lease_name),
                                   leader.default_identity(os.environ), _timings(settings))
    probe = await _serve_liveness(liveness) if liveness else None

    async def operate(term: Any) -> None:
        await kopf.operator(
            registry=kopf.get_default_registry(), standalone=True, clusterwide=options.all_namespaces,
            namespaces=options.namespace, memo=kopf.Memo(shared={"term": term}))

    status = await leader.run_while_leading(elector, operate)
    if status == 0:
        await transport.close()
        if probe is not None:
            await probe.cleanup()
    return status


async def _serve_liveness(url: str) -> Any:
    """``url`` answering 200 for as long as the event loop runs, leader or standby (as Kopf's own would)."""
    from aiohttp import web

    parsed = urllib.parse.urlsplit(url)

    async def alive(_request: web.Request) -> web.Response:
        return web.json_response({})

    app = web.Application()
    app.router.add_get(parsed.path or "/", alive)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, parsed.hostname, parsed.port or 80).start()
    return runner


if __name__ == "__main__":
    sys.exit(main())
