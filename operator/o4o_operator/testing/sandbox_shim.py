"""The stand-in for every command that would change the machine, inside a SandboxHost.

Owns: what apt-get, dpkg-query, systemctl, npm, node, pnpm, pm2, nginx,
certbot, curl, useradd, id, chown, sudo, runuser, getent and npx do in the sandbox
(and psql, pg_lsclusters and pg_ctlcluster, through ``sandbox_postgres``; npx (the admin command of the
instance's stand-in API) through ``sandbox_apps_api``; userdel and the undoing verbs of pm2, certbot and systemctl,
through ``sandbox_teardown``; node, npm and pnpm, through ``sandbox_toolchain``; useradd, id, chown,
sudo and runuser, through ``sandbox_accounts``),
and the Node.js mirror curl serves (``nodejs.org/dist``-shaped: a small
``node-v<version>-linux-<arch>.tar.xz`` whose ``bin/node`` and npm lead back
to these shims, and its ``SHASUMS256.txt``). Each call is appended as one JSON
line to ``$O4O_ROOT/.shim-log``; failures planned with
``SandboxHost.fail_command`` are served first; the rest acts out the command
against a small state file so that scripts' checks ("is nginx installed?")
see the effect of earlier calls. tar, sha256sum and coreutils run for real.

Everything runs as the sandbox's one real user. ``runuser -u U`` records U and
hands it down (``O4O_SHIM_USER``), so each logged call says whom it ran as
("" for root), and PM2 keeps one process list per user, as one daemon per user
does on a real host.

Must not: touch anything outside ``$O4O_ROOT``, start a daemon, or import
anything beyond the standard library (it runs as a standalone script:
``sandbox_shim.py <command> <args...>``).
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import sys
import time
from pathlib import Path
from types import ModuleType

TYPE_CHECKING = False
if TYPE_CHECKING:  # the shim runs once per command: what only the type checker needs is never imported
    from collections.abc import Callable
    from typing import Any


def sibling(name: str) -> ModuleType:
    """A sibling module, imported when a command first needs it (each import costs every call its time).

    Imported as part of the package (``o4o_operator.testing``) when this file is, else as a sibling script."""
    qualified = f"{__package__}.{name}" if __package__ else name
    if qualified not in sys.modules:
        if not __package__:
            directory = str(Path(__file__).resolve().parent)
            if directory not in sys.path:
                sys.path.insert(0, directory)
        __import__(qualified)
    return sys.modules[qualified]


ROOT = Path("/nonexistent-o4o-root")
LOG = STATE = PLAN = LOCK = ROOT
SHIM_DIR = Path("/nonexistent-o4o-shims")
AS_USER = ""
"""Whom a ``runuser`` shim above this call ran it as ("" for the sandbox's own user, root)."""
LATENCY_SECONDS = 0.0
"""A fixed delay before every shimmed command (``SandboxHost(command_latency_seconds=...)``)."""


def configure() -> None:
    """This call's settings, from its environment (at import, and in each child of the fork server)."""
    global ROOT, LOG, STATE, PLAN, LOCK, SHIM_DIR, AS_USER, LATENCY_SECONDS
    ROOT = Path(os.environ.get("O4O_ROOT", "/nonexistent-o4o-root"))
    LOG, STATE, PLAN, LOCK = (ROOT / name for name in (".shim-log", ".shim-state.json", ".shim-plan.json",
                                                        ".shim-lock"))
    SHIM_DIR = Path(os.environ.get("O4O_SHIM_DIR", "/nonexistent-o4o-shims"))
    AS_USER = os.environ.get("O4O_SHIM_USER", "")
    LATENCY_SECONDS = float(os.environ.get("O4O_SHIM_LATENCY_SECONDS") or 0)


configure()
LOGGED_ENVIRONMENT = ("REQUESTS_CA_BUNDLE", "http_proxy", "https_proxy", "no_proxy", "HTTP_PROXY", "HTTPS_PROXY",
                      "NO_PROXY", "PGSSLMODE", "PGSSLROOTCERT", "O4O_SHIM_PACKAGE", "O4O_EPOCH")
"""The environment variables each call records beside its argv (none of them secret; ``O4O_SHIM_PACKAGE`` is
the npm package whose executable ran the call, e.g. which pnpm; ``O4O_EPOCH`` the leader's term it ran under)."""


class locked:
    """The sandbox's one lock, held by one shim call at a time (a class: contextlib costs every call)."""

    def __enter__(self) -> None:
        self._handle = LOCK.open("a")
        fcntl.flock(self._handle, fcntl.LOCK_EX)

    def __exit__(self, *exc_info: object) -> None:
        self._handle.close()


def load(path: Path, default: Any) -> Any:
    return json.loads(path.read_text()) if path.exists() else default


def save(path: Path, value: Any) -> None:
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(value, indent=1, sort_keys=True))
    temporary.replace(path)


def update_state(change: Callable[[dict[str, Any]], None]) -> None:
    with locked():
        state = load(STATE, {})
        change(state)
        save(STATE, state)


def state() -> dict[str, Any]:
    with locked():
        return dict(load(STATE, {}))


def record_and_plan(argv: list[str]) -> dict[str, Any] | None:
    """Log the call; return the planned failure to act out, if one matches."""
    with locked():
        with LOG.open("a") as log:
            env = {name: os.environ[name] for name in LOGGED_ENVIRONMENT if name in os.environ}
            log.write(json.dumps({"argv": argv, "cwd": os.getcwd(), "user": AS_USER, "env": env}) + "\n")
        plan = load(PLAN, {"failures": [], "http": []})
        joined = " ".join(argv[1:])
        for failure in [*plan["failures"], *plan.get("holds", [])]:
            if failure["command"] == argv[0] and failure["times"] != 0 and failure["args_contain"] in joined:
                failure["times"] -= 1
                save(PLAN, plan)
                return dict(failure)
    return None


def real(command: str) -> str | None:
    """The real program of that name on PATH, skipping the shim directory."""
    path = os.pathsep.join(p for p in os.environ.get("PATH", "").split(os.pathsep) if Path(p) != SHIM_DIR)
    import shutil

    return shutil.which(command, path=path)


def passthrough(argv: list[str]) -> int:
    program = real(argv[0])
    if program is None:
        print(f"{argv[0]}: command not found", file=sys.stderr)
        return 127
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(program, [argv[0], *argv[1:]])  # noqa: S606 - replaced by the real program: its status is ours


def not_installed(name: str) -> int:
    print(f"bash: {name}: command not found", file=sys.stderr)
    return 127


def option(args: list[str], *names: str) -> str | None:
    for index, arg in enumerate(args):
        for name in names:
            if arg == name and index + 1 < len(args):
                return args[index + 1]
            if name.startswith("--") and arg.startswith(name + "="):
                return arg.split("=", 1)[1]
    return None


def packages() -> set[str]:
    return set(state().get("packages", []))


# ---- package management ------------------------------------------------------------------


def apt_get(args: list[str]) -> int:
    words = [a for index, a in enumerate(args)
             if not a.startswith("-") and (index == 0 or args[index - 1] not in ("-o", "-c"))]
    if words and words[0] == "install":
        names = sibling("sandbox_postgres").installed([w.split("=")[0] for w in words[1:]], update_state)
        update_state(lambda s: s.__setitem__("packages", sorted(set(s.get("packages", [])) | set(names))))
        for name in names:
            print(f"Setting up {name} ...")
    elif words and words[0] in ("remove", "purge"):
        update_state(lambda s: s.__setitem__("packages", sorted(set(s.get("packages", [])) - set(words[1:]))))
    return 0


def dpkg_query(args: list[str]) -> int:
    names = [a for a in args if not a.startswith("-")]
    fmt = option(args, "-f", "--showformat") or "${Status}\n"
    installed = packages()
    status = 0
    for name in names:
        if name in installed:
            print(fmt.replace("${Status}", "install ok installed").replace("${Version}", "1.0"), end="")
        else:
            print(f"dpkg-query: no packages found matching {name}", file=sys.stderr)
            status = 1
    return status


def npm_version(name: str) -> str | None:
    versions: dict[str, str] = state().get("npm_versions", {})
    return versions.get(name)


# ---- services ------------------------------------------------------------------------------


def systemctl(args: list[str]) -> int:
    words = [a for a in args if not a.startswith("-")]
    verb, units = (words[0], words[1:]) if words else ("", [])
    current = state()
    if verb in ("is-active", "is-enabled"):
        key = "active" if verb == "is-active" else "enabled"
        return 0 if all(u in current.get(key, []) for u in units) else 3

    def change(s: dict[str, Any]) -> None:
        if verb == "enable":
            s["enabled"] = sorted(set(s.get("enabled", [])) | set(units))
        if verb in ("start", "restart", "reload") or (verb == "enable" and "--now" in args):
            s["active"] = sorted(set(s.get("active", [])) | set(units))
        if verb == "reload":
            s.setdefault("reloads", {}).update({u: s.get("reloads", {}).get(u, 0) + 1 for u in units})
        sibling("sandbox_teardown").systemctl_stop(verb, args, units, s)

    update_state(change)
    return 0


def nginx(args: list[str]) -> int:
    if "nginx" not in packages():
        return not_installed("nginx")
    if "-t" in args:
        print("nginx: configuration file /etc/nginx/nginx.conf test is successful", file=sys.stderr)
    return 0


def pm2(args: list[str]) -> int:
    if "pm2" not in state().get("npm_global", []):
        return not_installed("pm2")
    verb = args[0] if args else ""
    if verb in ("--version", "-v"):
        print(npm_version("pm2") or "5.4.2")
    elif verb in ("start", "startOrReload", "startOrRestart", "reload", "restart") and len(args) > 1:
        ecosystem = Path(args[1]).read_text()
        cwd = re.search(r'"cwd":\s*"([^"]+)"', ecosystem)
        name = re.search(r'"name":\s*"([^"]+)"', ecosystem)
        live = Path(str(ROOT) + cwd.group(1)).resolve() if cwd else None
        release = re.search(r"/releases/([^/]+)", str(live)) if live else None
        running = release.group(1) if release else None

        def started(s: dict[str, Any]) -> None:
            s["live_release"] = running
            s.setdefault("pm2", {}).setdefault(AS_USER, {})[name.group(1) if name else "?"] = running

        update_state(started)
        print(f"[PM2] Applying action {verb} on app")
    elif verb == "stop" and len(args) > 1:
        update_state(lambda s: s.__setitem__("live_release", None))
        print("[PM2] Applying action stopProcessId on app")
    elif verb == "startup":
        user = option(args, "-u") or "root"
        unit = ROOT / f"etc/systemd/system/pm2-{user}.service"
        unit.parent.mkdir(parents=True, exist_ok=True)
        unit.write_text("[Unit]\nDescription=PM2 process manager (sandbox)\n")
    elif verb == "logs":
        print("(sandbox) no application logs")
    elif verb == "delete" and len(args) > 1:
        return int(sibling("sandbox_teardown").pm2_delete(args[1], AS_USER, state(), update_state))
    return 0


# ---- network -------------------------------------------------------------------------------

HEALTHY_BODY = '{"status":"alive","database":{"status":"healthy"}}\n'
"""What every URL answers unless a test says otherwise: O4O's health body with a connected database
(``SandboxHost.set_http_response`` makes it say ``not_initialized``, or anything else)."""


def curl(args: list[str]) -> int:
    if option(args, "-T", "--upload-file") is not None or option(args, "-K", "--config") == "-":
        # An upload (a backup to its presigned URL) or a download whose URL is on stdin (a restore's dump from its
        # presigned URL) is real: the S3 server is.
        return passthrough(["curl", *args])
    url = next((a for a in reversed(args) if re.match(r"^https?://", a)), "")
    plan = load(PLAN, {"http": []})
    live = state().get("live_release")
    status, body = 200, HEALTHY_BODY.encode()
    for rule in reversed(plan.get("http", [])):
        if rule["url_contains"] in url and rule.get("live_release") in (None, live):
            status, body = rule["status"], rule["body"].encode()
            break
    else:
        body = sibling("sandbox_node_mirror").serve(url, SHIM_DIR) or body
    failing = status >= 400 and any(a in ("-f", "--fail") or re.match(r"^-[a-zA-Z]*f", a) for a in args)
    output = option(args, "-o", "--output")
    if failing:
        pass  # with --fail, curl writes no body
    elif output and output != "-":
        Path(output).write_bytes(body)
    else:
        sys.stdout.buffer.write(body)
        sys.stdout.flush()
    written = option(args, "-w", "--write-out")
    if written is not None:
        sys.stdout.write(written.replace("%{http_code}", str(status)).replace("\\n", "\n"))
    if failing:
        print(f"curl: (22) The requested URL returned error: {status}", file=sys.stderr)
        return 22
    return 0


def getent(args: list[str]) -> int:
    if args[:1] in (["hosts"], ["ahosts"]) and len(args) > 1:
        print(f"127.0.0.1       STREAM {args[1]}")
        return 0
    return passthrough(["getent", *args])


def certbot(args: list[str]) -> int:
    if "certbot" not in packages():
        return not_installed("certbot")
    if "delete" in args:
        return int(sibling("sandbox_teardown").certbot_delete(option(args, "--cert-name") or "",
                                               Path(option(args, "--config-dir") or str(ROOT / "etc/letsencrypt"))))
    if "certonly" not in args:
        return 0
    domain = option(args, "-d", "--domain") or "example.invalid"
    name = option(args, "--cert-name") or domain
    config_dir = Path(option(args, "--config-dir") or str(ROOT / "etc/letsencrypt"))
    webroot = Path(option(args, "-w", "--webroot-path") or "/nonexistent")
    if not webroot.is_dir():
        print(f"Couldn't create root for {domain} http-01 challenge responses", file=sys.stderr)
        return 1
    live = config_dir / "live" / name
    renewal = config_dir / "renewal" / f"{name}.conf"
    server = option(args, "--server") or "https://acme-v02.api.letsencrypt.org/directory"
    import subprocess

    not_due = subprocess.run(["openssl", "x509", "-checkend", str(30 * 86400), "-noout", "-in",
                              str(live / "fullchain.pem")], capture_output=True).returncode == 0
    if renewal.exists() and not_due and not {"--force-renewal", "--renew-by-default"} & set(args):
        # As certbot does: a lineage not yet due is kept, whichever --server asked (the default answer
        # of its "keep or renew" question, which --keep-until-expiring and --non-interactive both give).
        print("Certificate not yet due for renewal; no action taken.")
        return 0
    live.mkdir(parents=True, exist_ok=True)
    ca = server.split("//", 1)[-1].split("/", 1)[0]  # the issuer names the ACME server's host
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                    "-nodes", "-days", "90", "-subj", f"/O={ca}/CN={domain}", "-keyout", str(live / "privkey.pem"),
                    "-out", str(live / "fullchain.pem")], check=True, capture_output=True)
    renewal.parent.mkdir(parents=True, exist_ok=True)
    renewal.write_text(f"# renew_before_expiry = 30 days\nversion = 2.1.0\narchive_dir = {config_dir}/archive/{name}\n"
                       f"cert = {live}/cert.pem\nfullchain = {live}/fullchain.pem\n\n"
                       f"# Options used in the renewal process\n[renewalparams]\nauthenticator = webroot\n"
                       f"server = {server}\n")
    print(f"Successfully received certificate.\nCertificate is saved at: {live / 'fullchain.pem'}")
    return 0


def psql(args: list[str]) -> int:
    if "postgresql-client" not in packages():
        return not_installed("psql")
    return int(sibling("sandbox_postgres").psql(args, AS_USER, update_state, state(), sys.stdin.read))


def pg_dump(args: list[str]) -> int:
    if "postgresql-client" not in packages():
        return not_installed("pg_dump")
    return int(sibling("sandbox_postgres").pg_dump(args, AS_USER, state(), sys.stdout.buffer))


def pg_restore(args: list[str]) -> int:
    if "postgresql-client" not in packages():
        return not_installed("pg_restore")
    return int(sibling("sandbox_pg_restore").pg_restore(args, sys.stdin.buffer, sys.stdout))


def toolchain() -> Any:
    """Node.js, npm and pnpm as the sandbox acts them out (``sandbox_toolchain``), bound to this call."""
    return sibling("sandbox_toolchain").Shim(global_prefix=ROOT / "usr/local", shim_dir=SHIM_DIR, state=state,
                                             update_state=update_state, option=option, passthrough=passthrough,
                                             not_installed=not_installed, npm_version=npm_version)


COMMANDS: dict[str, Callable[[list[str]], int]] = {
    "apt-get": apt_get, "apt": apt_get, "dpkg-query": dpkg_query,
    "node": lambda args: sibling("sandbox_toolchain").node(args, toolchain()),
    "npm": lambda args: sibling("sandbox_toolchain").npm(args, toolchain()),
    "systemctl": systemctl, "nginx": nginx, "pm2": pm2,
    "pnpm": lambda args: sibling("sandbox_toolchain").pnpm(args, toolchain()),
    "useradd": lambda args: sibling("sandbox_accounts").useradd(args, state(), update_state),
    "id": lambda args: sibling("sandbox_accounts").id_(args, state(), passthrough),
    "chown": lambda args: sibling("sandbox_accounts").chown(args, state(), real),
    "runuser": lambda args: sibling("sandbox_accounts").runuser(args, state(), real, option),
    "curl": curl, "getent": getent, "certbot": certbot, "psql": psql, "pg_dump": pg_dump,
    "pg_restore": pg_restore,
    "sudo": lambda args: sibling("sandbox_accounts").sudo(args),
    "userdel": lambda args: sibling("sandbox_teardown").userdel(args, state(), update_state),
    "pg_lsclusters": lambda args: sibling("sandbox_postgres").pg_lsclusters(args, state()),
    "pg_ctlcluster": lambda args: sibling("sandbox_postgres").pg_ctlcluster(args, update_state),
}

COMMANDS.update({"npx": lambda args: sibling("sandbox_apps_api").npx(args)})


def main(argv: list[str]) -> int:
    name, args = argv[0], argv[1:]
    if LATENCY_SECONDS > 0:
        time.sleep(LATENCY_SECONDS)  # the latency a benchmark asked for, as on a slow remote host
    planned = record_and_plan(argv)
    if planned is not None and "gate" in planned:  # a held call: wait (bounded) for the test's gate, then run
        deadline = time.monotonic() + 600
        while not Path(planned["gate"]).exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        planned = None
    if planned is not None:
        sys.stdout.write(planned["stdout"])
        sys.stderr.write(planned["stderr"])
        return int(planned["exit_code"])
    return COMMANDS[name](args)


def preload() -> None:
    """Import everything any command needs (the fork server does, once, so that its children need not)."""
    for name in ("sandbox_accounts", "sandbox_apps_api", "sandbox_node_mirror", "sandbox_postgres",
                 "sandbox_pg_restore", "sandbox_pg_tables",
                 "sandbox_teardown", "sandbox_toolchain"):
        sibling(name)
    import shutil
    import subprocess
    import traceback

    del shutil, subprocess, traceback


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
