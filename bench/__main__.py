"""``python -m bench``: run the benchmarks, print each figure next to its target, write bench/results/.

Nothing is asserted: a missed target is printed as "missed". The exit status is
non-zero only if a benchmark could not run at all. Needs root (sandbox hosts bind
127.x.y.z:22) and ``KUBEBUILDER_ASSETS`` (``make bench`` sets it).

    python -m bench                      # P1..P5 with their defaults
    python -m bench --only P2,P4 --instances 200 --idle-seconds 20
    python -m bench --only P1 --n 200 --profile-operator /tmp/operator.speedscope.json
    python -m bench --only P6 --members 200
"""

from __future__ import annotations

import argparse
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench import b1_backups, p1_concurrency, p2_api_writes, p3_fanout, p4_idle, p5_dashboard, p6_fleet
from bench.common import say

ALL = ("P1", "P2", "P3", "P4", "P5", "P6")
OPTIONAL = ("B1",)
"""Run only when asked (``--only B1``): backup figures for the note, no targets."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--only", default=",".join(ALL), help="comma-separated benchmarks to run")
    p1 = parser.add_argument_group("P1: N instances at once")
    p1.add_argument("--n", type=int, default=p1_concurrency.Options.n, help="instances applied at once")
    p1.add_argument("--cloud-latency", type=float, default=p1_concurrency.Options.cloud_latency,
                    help="seconds per LocalLightsail API call")
    p1.add_argument("--command-latency", type=float, default=p1_concurrency.Options.command_latency,
                    help="seconds per shimmed command on a sandbox host")
    p1.add_argument("--max-pipelines", type=int, default=None,
                    help="O4O_MAX_PIPELINES for the operator (default: N, so that all N may run at once)")
    p1.add_argument("--max-ssh-sessions", type=int, default=None,
                    help="O4O_MAX_SSH_SESSIONS for the operator (default: N)")
    p1.add_argument("--operator-defaults", action="store_true",
                    help="keep the operator's own O4O_MAX_PIPELINES and O4O_MAX_SSH_SESSIONS defaults")
    p1.add_argument("--p1-hosts", choices=("waiting", "sandbox"), default=p1_concurrency.Options.hosts,
                    help="waiting: stand-ins that replay one recorded deployment and only wait; sandbox: an sshd "
                         "with shims per host")
    p1.add_argument("--profile-operator", type=Path, default=None, metavar="PATH",
                    help="write a py-spy profile (speedscope JSON) of the operator over the N run to PATH")
    p2 = parser.add_argument_group("P2: apiserver writes per lifecycle")
    p2.add_argument("--lifecycles", type=int, default=p2_api_writes.Options.instances,
                    help="instances taken through create -> Ready -> delete -> gone")
    p3 = parser.add_argument_group("P3: runtime script fan-out, ansible vs ours")
    p3.add_argument("--hosts", type=int, default=p3_fanout.Options.hosts, help="sandbox hosts")
    p3.add_argument("--forks", type=int, default=p3_fanout.Options.forks, help="ansible forks")
    p4 = parser.add_argument_group("P4 and P5: 1000 instances")
    p4.add_argument("--instances", type=int, default=p4_idle.Options.instances,
                    help="Ready instances for P4 and instances listed by the dashboard for P5")
    p4.add_argument("--idle-seconds", type=float, default=p4_idle.Options.idle_seconds,
                    help="P4's idle window")
    p4.add_argument("--log-lines", type=int, default=p4_idle.Options.log_lines,
                    help="P4: lines of logTail in each instance's status")
    p4.add_argument("--requests", type=int, default=p5_dashboard.Options.requests, help="P5: requests per page")
    p4.add_argument("--direct", action="store_true", help="P5: feed the dashboard's cache without the apiserver")
    b1 = parser.add_argument_group("B1: backup time and size in the sandbox world (only with --only B1)")
    b1.add_argument("--backup-requests", type=int, default=b1_backups.Options.requests,
                    help="on-request backups timed one after the other")
    p6 = parser.add_argument_group("P6: a fleet rolled in waves")
    p6.add_argument("--members", type=int, default=p6_fleet.Options.members, help="the fleet's members")
    p6.add_argument("--fleet-command-latency", type=float, default=p6_fleet.Options.command_latency,
                    help="P6: seconds per shimmed command on a sandbox host")
    return parser


def runners(args: argparse.Namespace) -> dict[str, Callable[[], dict[str, Any]]]:
    pipelines = None if args.operator_defaults else (args.max_pipelines or args.n)
    sessions = None if args.operator_defaults else (args.max_ssh_sessions or args.n)
    return {
        "P1": lambda: p1_concurrency.main(p1_concurrency.Options(
            n=args.n, cloud_latency=args.cloud_latency, command_latency=args.command_latency,
            max_pipelines=pipelines, max_ssh_sessions=sessions, profile=args.profile_operator,
            hosts=args.p1_hosts)),
        "P2": lambda: p2_api_writes.main(p2_api_writes.Options(instances=args.lifecycles)),
        "P3": lambda: p3_fanout.main(p3_fanout.Options(hosts=args.hosts, forks=args.forks)),
        "P4": lambda: p4_idle.main(p4_idle.Options(instances=args.instances, idle_seconds=args.idle_seconds,
                                                   log_lines=args.log_lines)),
        "B1": lambda: b1_backups.main(b1_backups.Options(requests=args.backup_requests)),
        "P5": lambda: p5_dashboard.main(p5_dashboard.Options(instances=args.instances, requests=args.requests,
                                                             direct=args.direct)),
        "P6": lambda: p6_fleet.main(p6_fleet.Options(members=args.members,
                                                     command_latency=args.fleet_command_latency)),
    }


def _verdict(value: str | dict[str, str]) -> str:
    """``met``/``missed``, or for several targets ``rss met, cpu missed``."""
    return value if isinstance(value, str) else ", ".join(f"{key} {word}" for key, word in value.items())


SUMMARIES: dict[str, Callable[[dict[str, Any]], str]] = {
    "P1": lambda r: f"ratio {r['ratio']} (N={r['n']}; T(N) {r['all_ready_seconds']}s / T(1) {r['single_seconds']}s)"
                    f"  target {r['target']}: {r['verdict']}; operator CPU "
                    f"{r['operator_cpu_seconds_per_deployment']['with_n']}s per deployment",
    "P2": lambda r: f"{r['value']} writes to DI+status per lifecycle (all writes {r['total_writes_per_instance']})"
                    f"  target <= {p2_api_writes.TARGET}: {r['verdict']}",
    "P3": lambda r: f"ratio {r['ratio']} (ansible {r['ansible']['seconds']}s / ours {r['ours']['seconds']}s, "
                    f"{r['hosts']} hosts)  target {r['target']}: {r['verdict']}",
    "P4": lambda r: f"RSS {r['rss_mb']} MB, CPU {r['cpu_percent_of_one_core']}% ({r['instances']} instances, "
                    f"{r['idle']['seconds']}s idle)  target {r['target']}: {_verdict(r['verdict'])}",
    "B1": lambda r: (f"request backup median {r['request_seconds']['median']}s (min {r['request_seconds']['min']}s, "
                     f"max {r['request_seconds']['max']}s), {r['first_backup_bytes']} bytes"),
    "P5": lambda r: r.get("skipped") or (
        f"p95 {r['list_page_p95_ms']} ms, {r['api_calls_per_page_view']} API calls/view  target {r['target']}: "
        f"{_verdict(r['verdict'])}"),
    "P6": lambda r: f"ratio {r['ratio']} (wall {r['wall_seconds']}s / ideal {r['ideal_seconds']}s, {r['members']} "
                    f"members), {r['writes_per_member']} API writes per member",
}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    chosen = [name.strip().upper() for name in args.only.split(",") if name.strip()]
    unknown = sorted(set(chosen) - set(ALL) - set(OPTIONAL))
    if unknown:
        build_parser().error(f"--only: unknown benchmark(s) {', '.join(unknown)}; "
                             f"choose from {', '.join(ALL + OPTIONAL)}")
    table = runners(args)
    summaries: dict[str, str] = {}
    failed = []
    for name in chosen:
        started = time.monotonic()
        say(f"==== {name} ====")
        try:
            result = table[name]()
        except Exception:  # one benchmark that cannot run must not hide the others' figures
            traceback.print_exc()
            failed.append(name)
            summaries[name] = "could not run (see above)"
            continue
        summaries[name] = f"{SUMMARIES[name](result)}  [{time.monotonic() - started:.0f}s]"
    say("==== summary ====")
    for name, line in summaries.items():
        say(f"{name}  {line}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
