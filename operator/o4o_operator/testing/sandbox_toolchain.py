"""The sandbox's Node.js toolchain: what node, npm and pnpm do there.

Owns: ``node`` (the one the runtime script linked onto PATH as ``/usr/local/bin/node``, else "command
not found"), ``npm ls|install --global`` (packages recorded in the shim state's ``npm_global`` and
``npm_versions``, each with a small executable that leads back to its shim naming its package directory in
``O4O_SHIM_PACKAGE``; with ``--prefix`` elsewhere than npm's own, only there, recorded in ``npm_prefixes``)
and ``pnpm`` as pnpm 10 does it (at the version of the package it was run from: the one npm installed
into the prefix whose ``bin`` came first on PATH, else the global one) for the fixture workspace
(``install`` needing a lockfile, ``run`` and ``exec``, ``--filter``
with ``name...`` selecting workspace dependencies first, ``--fail-if-no-match`` and pnpm's exit
statuses), running the packages' scripts for real. ``sandbox_shim`` calls these after logging the call
and serving planned failures, as for every shim, and hands them its state and helpers as a :class:`Shim`.

Must not: touch anything outside ``$O4O_ROOT`` and the workspace it runs in, start a daemon, or import
anything beyond the standard library (``sandbox_shim`` runs it as a sibling file).
"""

from __future__ import annotations

import dataclasses
import json
import os
import shlex
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

State = dict[str, Any]
UpdateState = Callable[[Callable[[State], None]], None]


@dataclasses.dataclass(frozen=True)
class Shim:
    """What these stand-ins use of ``sandbox_shim``: the sandbox's paths, its state and its helpers."""

    global_prefix: Path
    """``$O4O_ROOT/usr/local``, where the runtime script links node and npm."""
    shim_dir: Path
    state: Callable[[], State]
    update_state: UpdateState
    option: Callable[..., str | None]
    passthrough: Callable[[list[str]], int]
    not_installed: Callable[[str], int]
    npm_version: Callable[[str], str | None]


# ---- node and npm ----------------------------------------------------------------------------


def linked_node(shim: Shim) -> Path | None:
    """The node the runtime script linked onto PATH (``/usr/local/bin/node``), if any."""
    link = shim.global_prefix / "bin/node"
    return link if link.exists() else None


def node(args: list[str], shim: Shim) -> int:
    installed = linked_node(shim)
    if installed is None:
        return shim.not_installed("node")
    if args[:1] in (["--version"], ["-v"]):
        return subprocess.call([str(installed), "--version"])
    return shim.passthrough(["node", *args])


def npm_prefix(shim: Shim) -> Path:
    """npm's global prefix: ``prefix=`` in its builtin npmrc, else the Node.js directory it came with."""
    npm_dir = (shim.global_prefix / "bin/npm").resolve().parents[1]
    builtin = npm_dir / "npmrc"
    for line in builtin.read_text().splitlines() if builtin.exists() else []:
        if line.startswith("prefix="):
            return Path(line.split("=", 1)[1].strip())
    return npm_dir.parents[1]


def npm(args: list[str], shim: Shim) -> int:
    if not (shim.global_prefix / "bin/npm").exists():
        return shim.not_installed("npm")
    if args[:1] in (["ls"], ["list"]) and ("-g" in args or "--global" in args):
        names = [a for a in args[1:] if not a.startswith("-")]
        installed: dict[str, str] = shim.state().get("npm_versions", {})
        found = {name: version for name, version in installed.items() if not names or name in names}
        for name, version in sorted(found.items()):
            print(f"{npm_prefix(shim)}/lib/node_modules/{name}:{name}@{version}")
        return 0 if found or not names else 1
    if "install" in args and ("-g" in args or "--global" in args):
        valued = {"--prefix", "--globalconfig", "--userconfig", "--cache"}
        specs = [a for index, a in enumerate(args) if not a.startswith("-") and a != "install"
                 and (index == 0 or args[index - 1] not in valued)]
        prefix = Path(shim.option(args, "--prefix") or npm_prefix(shim))
        own_prefix = prefix != npm_prefix(shim)
        versions: dict[str, str] = {}
        for spec in specs:
            name, _, version = spec.rpartition("@") if "@" in spec.lstrip("@") else (spec, "", "latest")
            versions[name] = version
            package = prefix / "lib/node_modules" / name
            package.mkdir(parents=True, exist_ok=True)
            (package / "package.json").write_text(json.dumps({"name": name, "version": version}))
            binary = prefix / "bin" / name
            binary.parent.mkdir(parents=True, exist_ok=True)
            binary.write_text(f"#!/bin/sh\nO4O_SHIM_PACKAGE={shlex.quote(str(package))} exec "
                              f"{shim.shim_dir / name} \"$@\"\n")
            binary.chmod(0o755)
            print(f"added 1 package in 0.1s ({name}@{version} in {prefix})")

        def change(s: dict[str, Any]) -> None:
            if own_prefix:  # another prefix (an instance's own): nothing global changes
                prefixes = s.setdefault("npm_prefixes", {})
                prefixes[str(prefix)] = {**prefixes.get(str(prefix), {}), **versions}
                return
            s["npm_global"] = sorted(set(s.get("npm_global", [])) | set(versions))
            s["npm_versions"] = {**s.get("npm_versions", {}), **versions}

        shim.update_state(change)
    return 0


# ---- pnpm --------------------------------------------------------------------------------

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


def pnpm_version(shim: Shim) -> str | None:
    """The version of the pnpm this call stands for: the package its executable named, else the global one."""
    package = os.environ.get("O4O_SHIM_PACKAGE", "")
    if Path(package).name == "pnpm":
        manifest = Path(package) / "package.json"
        return str(json.loads(manifest.read_text())["version"]) if manifest.exists() else None
    if "pnpm" not in shim.state().get("npm_global", []):
        return None
    return shim.npm_version("pnpm") or PNPM_DEFAULT_VERSION


def pnpm(args: list[str], shim: Shim) -> int:
    version = pnpm_version(shim)
    if version is None:
        return shim.not_installed("pnpm")
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
            print(version)
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
