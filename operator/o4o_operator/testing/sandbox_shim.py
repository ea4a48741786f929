"""The stand-in for every command that would change the machine, inside a SandboxHost.

Owns: what apt-get, dpkg-query, systemctl, npm, node, pnpm, pm2, nginx,
certbot, curl, useradd, id, chown, sudo, runuser, getent and npx do in the sandbox
(and psql, pg_lsclusters and pg_ctlcluster, through ``sandbox_postgres``; the instance's own API
and npx, through ``sandbox_apps_api``; userdel and the undoing verbs of pm2, certbot and systemctl,
through ``sandbox_teardown``),
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

import contextlib
import fcntl
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

if __package__:
    from o4o_operator.testing import sandbox_apps_api, sandbox_node_mirror, sandbox_postgres, sandbox_teardown
else:  # run as a standalone script (``python -I -S sandbox_shim.py``): its sibling files, not the package
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import sandbox_apps_api  # type: ignore[no-redef,import-not-found]
    import sandbox_node_mirror  # type: ignore[no-redef,import-not-found]
    import sandbox_postgres  # type: ignore[no-redef,import-not-found]
    import sandbox_teardown  # type: ignore[no-redef,import-not-found]

ROOT = Path(os.environ.get("O4O_ROOT", "/nonexistent-o4o-root"))
LOG = ROOT / ".shim-log"
STATE = ROOT / ".shim-state.json"
PLAN = ROOT / ".shim-plan.json"
LOCK = ROOT / ".shim-lock"
SHIM_DIR = Path(os.environ.get("O4O_SHIM_DIR", "/nonexistent-o4o-shims"))
AS_USER = os.environ.get("O4O_SHIM_USER", "")
"""Whom a ``runuser`` shim above this call ran it as ("" for the sandbox's own user, root)."""
LATENCY_SECONDS = float(os.environ.get("O4O_SHIM_LATENCY_SECONDS") or 0)
"""A fixed delay before every shimmed command (``SandboxHost(command_latency_seconds=...)``)."""
LOGGED_ENVIRONMENT = ("REQUESTS_CA_BUNDLE", "http_proxy", "https_proxy", "no_proxy", "HTTP_PROXY", "HTTPS_PROXY",
                      "NO_PROXY")
"""The environment variables each call records beside its argv (none of them secret)."""


@contextlib.contextmanager
def locked() -> Iterator[None]:
    with LOCK.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


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
        for failure in plan["failures"]:
            if failure["command"] == argv[0] and failure["times"] != 0 and failure["args_contain"] in joined:
                failure["times"] -= 1
                save(PLAN, plan)
                return dict(failure)
    return None


def real(command: str) -> str | None:
    """The real program of that name on PATH, skipping the shim directory."""
    path = os.pathsep.join(p for p in os.environ.get("PATH", "").split(os.pathsep) if Path(p) != SHIM_DIR)
    return shutil.which(command, path=path)


def passthrough(argv: list[str]) -> int:
    program = real(argv[0])
    if program is None:
        print(f"{argv[0]}: command not found", file=sys.stderr)
        return 127
    return subprocess.call([program, *argv[1:]])


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
        names = sandbox_postgres.installed([w.split("=")[0] for w in words[1:]], update_state)
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


GLOBAL_PREFIX = ROOT / "usr/local"


def linked_node() -> Path | None:
    """The node the runtime script linked onto PATH (``/usr/local/bin/node``), if any."""
    link = GLOBAL_PREFIX / "bin/node"
    return link if link.exists() else None


def node(args: list[str]) -> int:
    installed = linked_node()
    if installed is None:
        return not_installed("node")
    if args[:1] in (["--version"], ["-v"]):
        return subprocess.call([str(installed), "--version"])
    return passthrough(["node", *args])


def npm_prefix() -> Path:
    """npm's global prefix: ``prefix=`` in its builtin npmrc, else the Node.js directory it came with."""
    npm_dir = (GLOBAL_PREFIX / "bin/npm").resolve().parents[1]
    builtin = npm_dir / "npmrc"
    for line in builtin.read_text().splitlines() if builtin.exists() else []:
        if line.startswith("prefix="):
            return Path(line.split("=", 1)[1].strip())
    return npm_dir.parents[1]


def npm(args: list[str]) -> int:
    if not (GLOBAL_PREFIX / "bin/npm").exists():
        return not_installed("npm")
    if args[:1] in (["ls"], ["list"]) and ("-g" in args or "--global" in args):
        names = [a for a in args[1:] if not a.startswith("-")]
        installed: dict[str, str] = state().get("npm_versions", {})
        found = {name: version for name, version in installed.items() if not names or name in names}
        for name, version in sorted(found.items()):
            print(f"{npm_prefix()}/lib/node_modules/{name}:{name}@{version}")
        return 0 if found or not names else 1
    if "install" in args and ("-g" in args or "--global" in args):
        specs = [a for a in args if not a.startswith("-") and a != "install"]
        prefix = Path(option(args, "--prefix") or npm_prefix())
        versions: dict[str, str] = {}
        for spec in specs:
            name, _, version = spec.rpartition("@") if "@" in spec.lstrip("@") else (spec, "", "latest")
            versions[name] = version
            package = prefix / "lib/node_modules" / name
            package.mkdir(parents=True, exist_ok=True)
            (package / "package.json").write_text(json.dumps({"name": name, "version": version}))
            binary = prefix / "bin" / name
            binary.parent.mkdir(parents=True, exist_ok=True)
            binary.write_text(f"#!/bin/sh\nexec {SHIM_DIR / name} \"$@\"\n")
            binary.chmod(0o755)
            print(f"added 1 package in 0.1s ({name}@{version} in {prefix})")

        def change(s: dict[str, Any]) -> None:
            s["npm_global"] = sorted(set(s.get("npm_global", [])) | set(versions))
            s["npm_versions"] = {**s.get("npm_versions", {}), **versions}

        update_state(change)
    return 0


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
        sandbox_teardown.systemctl_stop(verb, args, units, s)

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
    elif verb == "startup":
        user = option(args, "-u") or "root"
        unit = ROOT / f"etc/systemd/system/pm2-{user}.service"
        unit.parent.mkdir(parents=True, exist_ok=True)
        unit.write_text("[Unit]\nDescription=PM2 process manager (sandbox)\n")
    elif verb == "logs":
        print("(sandbox) no application logs")
    elif verb == "delete" and len(args) > 1:
        return sandbox_teardown.pm2_delete(args[1], AS_USER, state(), update_state)
    return 0


# ---- builds --------------------------------------------------------------------------------

PNPM_DEFAULT_VERSION = "9.12.0"
"""What ``pnpm --version`` says until ``npm install --global pnpm@<version>`` installs another."""


def pnpm_packages(workspace: Path) -> dict[str, Path]:
    found = {}
    for manifest in sorted(workspace.glob("*/*/package.json")):
        name = json.loads(manifest.read_text()).get("name")
        if name:
            found[name] = manifest.parent
    return found


def workspace_dependencies(directory: Path, known: dict[str, Path]) -> list[str]:
    manifest = json.loads((directory / "package.json").read_text())
    wanted = {**manifest.get("devDependencies", {}), **manifest.get("dependencies", {})}
    return sorted(name for name, spec in wanted.items() if name in known and str(spec).startswith("workspace:"))


def select(filters: list[str], known: dict[str, Path]) -> list[str]:
    """The packages the filters pick, dependencies first (``name...`` adds its workspace dependencies)."""
    chosen: list[str] = []

    def visit(name: str, with_dependencies: bool) -> None:
        if with_dependencies:
            for dependency in workspace_dependencies(known[name], known):
                visit(dependency, True)
        if name not in chosen:
            chosen.append(name)

    for selector in filters:
        with_dependencies = selector.endswith("...")
        name = selector.removesuffix("...")
        if name in known:
            visit(name, with_dependencies)
    return chosen


def pnpm_script(directory: Path, script: str, extra: list[str], environment: dict[str, str]) -> int:
    scripts = json.loads((directory / "package.json").read_text()).get("scripts", {})
    print(f"> {script}")
    command = " ".join([scripts[script], *map(shlex.quote, extra)])
    return subprocess.call(["/bin/sh", "-c", command], cwd=directory, env=environment)


def pnpm_recursive(command: str, rest: list[str], filters: list[str], fail_if_no_match: bool) -> int:
    """``pnpm --filter ... run|exec``, as pnpm 10 does it (including its exit statuses)."""
    workspace = Path(os.getcwd())
    known = pnpm_packages(workspace)
    chosen = select(filters, known)
    if not chosen:  # pnpm 10.25.0 says the same either way; only its exit status differs
        print(f'No projects matched the filters in "{workspace}"')
        return 1 if fail_if_no_match else 0
    environment = {**os.environ, "PATH": f"{workspace / 'node_modules/.bin'}{os.pathsep}{os.environ['PATH']}"}
    if command == "exec":
        for name in chosen:
            if subprocess.call(rest, cwd=known[name], env=environment) != 0:
                print(f"ERR_PNPM_RECURSIVE_EXEC_FIRST_FAIL  Command failed in {name}", file=sys.stderr)
                return 1
        return 0
    script, extra = (rest[0], rest[1:]) if command == "run" else (command, rest)
    having = [name for name in chosen
              if script in json.loads((known[name] / "package.json").read_text()).get("scripts", {})]
    if not having:
        print(f'None of the selected packages has a "{script}" script')
        return 0
    for name in having:
        if pnpm_script(known[name], script, extra, environment) != 0:
            print(f"ERR_PNPM_RECURSIVE_RUN_FIRST_FAIL  {name} {script}: exited with a failure", file=sys.stderr)
            return 1
    return 0


def pnpm(args: list[str]) -> int:
    if "pnpm" not in state().get("npm_global", []):
        return not_installed("pnpm")
    index, filters, fail_if_no_match = 0, [], False
    while index < len(args) and args[index].startswith("-"):
        if args[index] in ("--filter", "-F") and index + 1 < len(args):
            filters.append(args[index + 1])
            index += 2
            continue
        if args[index].startswith("--filter="):
            filters.append(args[index].split("=", 1)[1])
        elif args[index] == "--fail-if-no-match":
            fail_if_no_match = True
        elif args[index] in ("--version", "-v"):
            print(npm_version("pnpm") or PNPM_DEFAULT_VERSION)
            return 0
        index += 1
    command, rest = (args[index], args[index + 1:]) if index < len(args) else ("", [])
    workspace = Path(os.getcwd())
    if command in ("install", "i"):
        if not (workspace / "pnpm-lock.yaml").exists():
            print("ERR_PNPM_NO_LOCKFILE Cannot install with frozen-lockfile because pnpm-lock.yaml is absent",
                  file=sys.stderr)
            return 1
        (workspace / "node_modules").mkdir(exist_ok=True)
        (workspace / "node_modules/.modules.yaml").write_text("layoutVersion: 5\n")
        print("Done in 0.1s")
        return 0
    if filters:
        return pnpm_recursive(command, rest, filters, fail_if_no_match)
    if command == "exec":
        return subprocess.call(rest)
    script, extra = (rest[0], rest[1:]) if command == "run" and rest else (command, rest)
    scripts = json.loads((workspace / "package.json").read_text()).get("scripts", {})
    if script not in scripts:
        print(f'ERR_PNPM_NO_SCRIPT Missing script: "{script}"', file=sys.stderr)
        return 1
    return pnpm_script(workspace, script, extra, dict(os.environ))


# ---- accounts --------------------------------------------------------------------------------


def useradd(args: list[str]) -> int:
    user = args[-1]
    if user in state().get("users", []):
        print(f"useradd: user '{user}' already exists", file=sys.stderr)
        return 9
    update_state(lambda s: s.__setitem__("users", sorted(set(s.get("users", [])) | {user})))
    return 0


def id_(args: list[str]) -> int:
    names = [a for a in args if not a.startswith("-")]
    users = state().get("users", [])
    if names and names[0] in users:
        uid = 2000 + users.index(names[0])
        print(uid if "-u" in args else f"uid={uid}({names[0]}) gid={uid}({names[0]})")
        return 0
    return passthrough(["id", *args])


def chown(args: list[str]) -> int:
    program = real("chown") or "/bin/chown"
    result = subprocess.run([program, *args], capture_output=True, text=True, check=False)
    owner = next((a for a in args if not a.startswith("-")), "")
    if result.returncode != 0 and owner.split(":")[0] in state().get("users", []):
        return 0  # a sandbox-only user: pretend the files now belong to it
    sys.stderr.write(result.stderr)
    return result.returncode


SUDO_KEEPS = ("PATH", "HOME", "LOGNAME", "USER", "SHELL", "TERM", "LANG", "O4O_ROOT")
"""What sudo's ``env_reset`` leaves of the caller's environment (PATH stands in for ``secure_path``;
``O4O_ROOT`` stays because the shims keep their log and state under it)."""


def sudo(args: list[str]) -> int:
    """The sandbox already runs as its only user: drop sudo's options, reset the environment as
    sudo's default ``env_reset`` does, and become the command."""
    index = 0
    while index < len(args) and args[index].startswith("-"):
        index += 1
        if args[index - 1] == "--":
            break
    kept = {name: os.environ[name] for name in SUDO_KEEPS if name in os.environ}
    os.execvpe(args[index], args[index:], kept)  # noqa: S606 - a stand-in for sudo must exec the command


def runuser(args: list[str]) -> int:
    user = option(args, "-u")
    command = args[args.index("--") + 1:] if "--" in args else []
    if user not in state().get("users", []) and real("id") and subprocess.call(
            [str(real("id")), "-u", str(user)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL):
        print(f"runuser: user {user} does not exist", file=sys.stderr)
        return 1
    # As the sandbox's own user; the shims below learn whom they stand for.
    return subprocess.call(command, env={**os.environ, "O4O_SHIM_USER": str(user)})


# ---- network -------------------------------------------------------------------------------

HEALTHY_BODY = '{"status":"alive","database":{"status":"healthy"}}\n'
"""What every URL answers unless a test says otherwise: O4O's health body with a connected database
(``SandboxHost.set_http_response`` makes it say ``not_initialized``, or anything else)."""


def curl(args: list[str]) -> int:
    url = next((a for a in reversed(args) if re.match(r"^https?://", a)), "")
    plan = load(PLAN, {"http": []})
    live = state().get("live_release")
    status, body = 200, HEALTHY_BODY.encode()
    for rule in reversed(plan.get("http", [])):
        if rule["url_contains"] in url and rule.get("live_release") in (None, live):
            status, body = rule["status"], rule["body"].encode()
            break
    else:
        body = sandbox_node_mirror.serve(url, SHIM_DIR) or body
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
        return sandbox_teardown.certbot_delete(option(args, "--cert-name") or "",
                                               Path(option(args, "--config-dir") or str(ROOT / "etc/letsencrypt")))
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
    live.mkdir(parents=True, exist_ok=True)
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                    "-nodes", "-days", "90", "-subj", f"/CN={domain}", "-keyout", str(live / "privkey.pem"),
                    "-out", str(live / "fullchain.pem")], check=True, capture_output=True)
    print(f"Successfully received certificate.\nCertificate is saved at: {live / 'fullchain.pem'}")
    return 0


def psql(args: list[str]) -> int:
    if "postgresql-client" not in packages():
        return not_installed("psql")
    return sandbox_postgres.psql(args, AS_USER, update_state, state(), sys.stdin.read)


COMMANDS: dict[str, Callable[[list[str]], int]] = {
    "apt-get": apt_get, "apt": apt_get, "dpkg-query": dpkg_query, "node": node, "npm": npm,
    "systemctl": systemctl, "nginx": nginx, "pm2": pm2, "pnpm": pnpm,
    "useradd": useradd, "id": id_, "chown": chown, "runuser": runuser, "curl": curl,
    "getent": getent, "certbot": certbot, "sudo": sudo, "psql": psql,
    "userdel": lambda args: sandbox_teardown.userdel(args, state(), update_state),
    "pg_lsclusters": lambda args: sandbox_postgres.pg_lsclusters(args, state()),
    "pg_ctlcluster": lambda args: sandbox_postgres.pg_ctlcluster(args, update_state),
}


def _curl_or_instance_api(args: list[str]) -> int:
    """The instance's own API (sandbox_apps_api) first, then the shim's curl."""
    answered: int | None = sandbox_apps_api.curl(args)
    return curl(args) if answered is None else answered


COMMANDS.update({"curl": _curl_or_instance_api, "npx": sandbox_apps_api.npx})


def main(argv: list[str]) -> int:
    name, args = argv[0], argv[1:]
    if LATENCY_SECONDS > 0:
        time.sleep(LATENCY_SECONDS)  # the latency a benchmark asked for, as on a slow remote host
    planned = record_and_plan(argv)
    if planned is not None:
        sys.stdout.write(planned["stdout"])
        sys.stderr.write(planned["stderr"])
        return int(planned["exit_code"])
    return COMMANDS[name](args)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
