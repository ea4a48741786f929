"""Build and locate the control-plane binaries (kube-apiserver, etcd, kubectl).

Owns: the pinned Kubernetes/etcd versions, the throwaway Go wrapper modules that
build them from the Go module proxy, and the cache directory they live in
(``~/.cache/o4o/testbin/<k8s>-<etcd>/``). ``KUBEBUILDER_ASSETS`` overrides it.

Must not: download prebuilt binaries, write inside the repository, or import
anything beyond the standard library (``make testbin`` runs it before the venv).

Run as a script, it prints one line: the directory holding the three binaries.
"""

from __future__ import annotations

import fcntl
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

KUBERNETES_VERSION = "1.34.4"
ETCD_VERSION = "3.6.4"
BINARIES = ("kube-apiserver", "etcd", "kubectl")


def cache_dir() -> Path:
    """Where binaries for the pinned versions live (honours XDG_CACHE_HOME)."""
    base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return base / "o4o" / "testbin" / f"{KUBERNETES_VERSION}-{ETCD_VERSION}"


def assets_dir() -> Path:
    """The directory to use: ``KUBEBUILDER_ASSETS`` if set, else the cache."""
    override = os.environ.get("KUBEBUILDER_ASSETS")
    return Path(override) if override else cache_dir()


def missing_binaries(directory: Path) -> list[str]:
    return [name for name in BINARIES if not os.access(directory / name, os.X_OK)]


def _go(args: list[str], cwd: Path) -> None:
    env = {**os.environ, "CGO_ENABLED": "0", "GOFLAGS": "-buildvcs=false -mod=mod"}
    subprocess.run(["go", *args], cwd=cwd, env=env, check=True, stdout=sys.stderr)


def _kubernetes_go_mod(workdir: Path) -> str:
    """Fetch k8s.io/kubernetes's own go.mod text via the module proxy."""
    out = subprocess.run(
        ["go", "mod", "download", "-json", f"k8s.io/kubernetes@v{KUBERNETES_VERSION}"],
        cwd=workdir,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    match = re.search(r'"GoMod":\s*"([^"]+)"', out)
    if not match:
        raise RuntimeError(f"go mod download gave no GoMod path: {out[:500]}")
    return Path(match.group(1)).read_text()


def wrapper_go_mod(kubernetes_go_mod: str, go_directive: str) -> str:
    """The wrapper module: require k8s.io/kubernetes, replace each staging module.

    Every ``k8s.io/X => ./staging/src/k8s.io/X`` line of the upstream go.mod maps
    to ``k8s.io/X v0.<minor>.<patch>``; its ``godebug`` lines are copied.
    """
    minor_patch = KUBERNETES_VERSION.split(".", 1)[1]
    staging = re.findall(r"(k8s\.io/[\w.-]+)\s*=>\s*\./staging/src/k8s\.io/[\w.-]+", kubernetes_go_mod)
    if len(staging) < 20:
        raise RuntimeError(f"found only {len(staging)} staging replaces in k8s.io/kubernetes go.mod")
    godebug = [line for line in kubernetes_go_mod.splitlines() if line.startswith("godebug")]
    lines = [
        "module o4o.local/testbin/kubernetes",
        "",
        f"go {go_directive}",
        "",
        *godebug,
        "",
        f"require k8s.io/kubernetes v{KUBERNETES_VERSION}",
        "",
        "replace (",
        *(f"\t{module} => {module} v0.{minor_patch}" for module in sorted(set(staging))),
        ")",
        "",
    ]
    return "\n".join(lines)


def _go_directive(kubernetes_go_mod: str) -> str:
    match = re.search(r"^go (\S+)", kubernetes_go_mod, re.MULTILINE)
    return match.group(1) if match else "1.24"


def _version_ldflags() -> str:
    package = "k8s.io/component-base/version"
    git_version = f"v{KUBERNETES_VERSION}"
    major, minor, _ = KUBERNETES_VERSION.split(".")
    flags = {
        "gitVersion": git_version,
        "gitMajor": major,
        "gitMinor": minor,
        "gitTreeState": "clean",
        "buildDate": "1970-01-01T00:00:00Z",
    }
    return " ".join(f"-X {package}.{key}={value}" for key, value in flags.items())


def build_kubernetes(target: Path, workdir: Path) -> None:
    module = workdir / "kubernetes"
    module.mkdir()
    upstream = _kubernetes_go_mod(module)
    (module / "go.mod").write_text(wrapper_go_mod(upstream, _go_directive(upstream)))
    (module / "tools.go").write_text(
        "//go:build tools\n\npackage tools\n\n"
        'import (\n\t_ "k8s.io/kubernetes/cmd/kube-apiserver"\n\t_ "k8s.io/kubernetes/cmd/kubectl"\n)\n'
    )
    _go(["mod", "tidy"], module)
    ldflags = f"-s -w {_version_ldflags()}"
    for command in ("kube-apiserver", "kubectl"):
        _go(["build", "-trimpath", "-ldflags", ldflags, "-o", str(target / command),
             f"k8s.io/kubernetes/cmd/{command}"], module)


def build_etcd(target: Path, workdir: Path) -> None:
    module = workdir / "etcd"
    module.mkdir()
    (module / "go.mod").write_text(
        f"module o4o.local/testbin/etcd\n\ngo 1.24\n\nrequire go.etcd.io/etcd/server/v3 v{ETCD_VERSION}\n"
    )
    (module / "tools.go").write_text(
        '//go:build tools\n\npackage tools\n\nimport _ "go.etcd.io/etcd/server/v3"\n'
    )
    _go(["mod", "tidy"], module)
    _go(["build", "-trimpath", "-ldflags", "-s -w", "-o", str(target / "etcd"),
         "go.etcd.io/etcd/server/v3"], module)


def ensure_testbin() -> Path:
    """Return the assets directory, building the binaries first if any is missing."""
    directory = assets_dir()
    missing = missing_binaries(directory)
    if not missing:
        return directory
    if os.environ.get("KUBEBUILDER_ASSETS"):
        raise RuntimeError(f"KUBEBUILDER_ASSETS={directory} lacks {', '.join(missing)}")
    if shutil.which("go") is None:
        raise RuntimeError("building the control plane needs Go on PATH")
    directory.mkdir(parents=True, exist_ok=True)
    # One build at a time per cache: a concurrent caller waits for it and then finds the binaries
    # (several builds at once on 2 cores took four times as long and built the same thing).
    with open(directory.parent / f".{directory.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        missing = missing_binaries(directory)
        if not missing:
            return directory
        _build(directory, missing)
    return directory


def _build(directory: Path, missing: list[str]) -> None:
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="o4o-testbin-") as tmp:
        staging = Path(tmp) / "out"
        staging.mkdir()
        if {"kube-apiserver", "kubectl"} & set(missing):
            build_kubernetes(staging, Path(tmp))
        if "etcd" in missing:
            build_etcd(staging, Path(tmp))
        for built in staging.iterdir():
            os.replace(built, directory / built.name)  # same filesystem as cache is not assumed
    print(f"built {', '.join(missing)} in {time.monotonic() - started:.0f}s", file=sys.stderr)


if __name__ == "__main__":
    try:
        print(ensure_testbin())
    except (RuntimeError, subprocess.CalledProcessError) as error:
        print(f"testbin: {error}", file=sys.stderr)
        sys.exit(1)
