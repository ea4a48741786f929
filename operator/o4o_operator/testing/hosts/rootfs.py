"""The booted hosts' golden image: a Debian 12 root built once with debootstrap and cached.

Owns: :class:`RootfsRecipe` (what goes into the image, and its cache key), :func:`cached_rootfs` (build under
``~/.cache/o4o/hosts/<key>/`` atomically: a temporary directory renamed into place, under a file lock), and the
image's settings, baked in as a corporate image bakes them: the proxy in ``/etc/environment``, apt and npm; sudo
keeping the proxy variables; the TLS roots the build machine trusts beyond Debian's (``trust.py``), also for
Node.js (``NODE_EXTRA_CA_CERTS``); the resolver pointing at the test world's DNS; the ``admin`` login with
passwordless sudo; sshd taking keys only. The image holds no SSH host keys and an empty machine id: each host
gets its own (see ``booted_host.py``). Must not hold anything the pipeline installs (nginx, node, git, certbot).

Bump :data:`RECIPE_VERSION` whenever the build steps below change; the recipe's fields are part of the key too.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import time
from pathlib import Path

from o4o_operator.testing.file_lock import exclusive
from o4o_operator.testing.hosts import network
from o4o_operator.testing.hosts.apt_sources import DebianMirror, machine_debian_mirror
from o4o_operator.testing.hosts.system import HostWorldError, run_checked, spawn_guarded
from o4o_operator.testing.hosts.trust import machine_extra_roots

RECIPE_VERSION = 3
BASE_PACKAGES = ("systemd", "systemd-sysv", "dbus", "openssh-server", "sudo", "iproute2", "ca-certificates")
LOGIN_USER = "admin"  # Lightsail's default login on its debian_12 blueprint
WORLD_ADDRESS = str(network.WORLD_ADDRESS)  # the bridge: proxy, DNS and the world's services
PROXY_VARIABLES = ("http_proxy", "https_proxy", "no_proxy", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY",
                   "npm_config_proxy", "npm_config_https_proxy", "npm_config_noproxy", "NODE_EXTRA_CA_CERTS")
SYSTEM_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"
_DEBOOTSTRAP_TIMEOUT = 1200.0


def default_cache_root() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "o4o" / "hosts"


@dataclasses.dataclass(frozen=True)
class ImageNetwork:
    """How the image reaches the world: the proxy for registries, what bypasses it, and its resolver."""

    proxy_url: str = f"http://{WORLD_ADDRESS}:3128"
    no_proxy: tuple[str, ...] = ("localhost", "127.0.0.1", "::1", WORLD_ADDRESS)
    nameserver: str = WORLD_ADDRESS


@dataclasses.dataclass(frozen=True)
class RootfsRecipe:
    """What the image is made of; equal recipes share one cached root."""

    mirror: DebianMirror = dataclasses.field(default_factory=machine_debian_mirror)
    network: ImageNetwork = dataclasses.field(default_factory=ImageNetwork)
    suite: str = "bookworm"
    packages: tuple[str, ...] = BASE_PACKAGES
    extra_roots: tuple[str, ...] = dataclasses.field(default_factory=machine_extra_roots)  # PEM, see trust.py

    @property
    def key(self) -> str:
        """A short digest of the recipe and :data:`RECIPE_VERSION`: the cache directory's name."""
        described = json.dumps({"version": RECIPE_VERSION, **dataclasses.asdict(self)}, sort_keys=True)
        return f"{self.suite}-{hashlib.sha256(described.encode()).hexdigest()[:16]}"


@dataclasses.dataclass(frozen=True)
class Rootfs:
    """A built image: ``path`` is the root directory (read-only for everyone: hosts overlay it)."""

    path: Path
    key: str
    build_seconds: float
    size_bytes: int
    built_now: bool


def _write(root: Path, relative: str, text: str, mode: int = 0o644) -> None:
    path = root / relative.lstrip("/")
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.is_symlink():
        path.unlink()
    path.write_text(text)
    path.chmod(mode)


def _environment_lines(network: ImageNetwork) -> str:
    no_proxy = ",".join(network.no_proxy)
    values = {"http_proxy": network.proxy_url, "https_proxy": network.proxy_url, "no_proxy": no_proxy,
              "npm_config_proxy": network.proxy_url, "npm_config_https_proxy": network.proxy_url,
              "npm_config_noproxy": no_proxy, "NODE_EXTRA_CA_CERTS": SYSTEM_BUNDLE}  # node ignores the system store
    values |= {name.upper(): values[name] for name in ("http_proxy", "https_proxy", "no_proxy")}
    return "".join(f'{name}="{values[name]}"\n' for name in PROXY_VARIABLES)


def _configure(root: Path, recipe: RootfsRecipe) -> None:
    """Turn a debootstrapped root into the golden image (runs on the temporary build directory)."""
    network, mirror = recipe.network, recipe.mirror
    sources = [f"deb {mirror.archive} {recipe.suite} main", f"deb {mirror.archive} {recipe.suite}-updates main"]
    if mirror.security:
        sources.append(f"deb {mirror.security} {recipe.suite}-security main")
    _write(root, "etc/apt/sources.list", "\n".join(sources) + "\n")
    _write(root, "etc/environment", _environment_lines(network))
    _write(root, "etc/apt/apt.conf.d/80proxy",
           f'Acquire::http::Proxy "{network.proxy_url}";\nAcquire::https::Proxy "{network.proxy_url}";\n')
    npmrc = f"proxy={network.proxy_url}\nhttps-proxy={network.proxy_url}\nnoproxy={','.join(network.no_proxy)}\n"
    for prefix in ("usr", "usr/local"):  # npm's global config is $PREFIX/etc/npmrc: Debian's npm, or a tarball's
        _write(root, f"{prefix}/etc/npmrc", npmrc)
    _write(root, "etc/sudoers.d/10-proxy-environment",
           f'Defaults env_keep += "{" ".join(PROXY_VARIABLES)}"\n', mode=0o440)
    _write(root, "etc/resolv.conf", f"nameserver {network.nameserver}\n")
    # dpkg syncs every unpacked file unless told not to; images for throwaway machines (Debian's own container
    # images among them) tell it not to. The pipeline's apt steps are unchanged, only faster on a busy disk.
    _write(root, "etc/dpkg/dpkg.cfg.d/o4o-image-unsafe-io", "force-unsafe-io\n")
    for number, pem in enumerate(recipe.extra_roots, start=1):
        _write(root, f"usr/local/share/ca-certificates/o4o-image-root-{number}.crt", pem)
    if recipe.extra_roots:
        run_checked(["chroot", str(root), "update-ca-certificates"])
    _write(root, "etc/ssh/sshd_config.d/60-o4o-image.conf",
           "PasswordAuthentication no\nKbdInteractiveAuthentication no\nPermitRootLogin no\n"
           "PubkeyAuthentication yes\n")
    run_checked(["chroot", str(root), "useradd", "--create-home", "--shell", "/bin/bash", "--groups", "adm,sudo",
                 "--comment", "Debian", LOGIN_USER])
    run_checked(["chroot", str(root), "usermod", "--password", "*", LOGIN_USER])  # no password, not locked
    _write(root, "etc/sudoers.d/90-cloud-init-users", f"{LOGIN_USER} ALL=(ALL) NOPASSWD:ALL\n", mode=0o440)
    for key in (root / "etc/ssh").glob("ssh_host_*"):
        key.unlink()
    _write(root, "etc/machine-id", "", mode=0o444)
    for leftovers in ("var/cache/apt/archives", "var/lib/apt/lists"):
        for entry in (root / leftovers).glob("*"):
            if entry.is_file():
                entry.unlink()


def _size_bytes(root: Path) -> int:
    return int(run_checked(["du", "-sb", "--one-file-system", str(root)]).split()[0])


def _debootstrap(root: Path, recipe: RootfsRecipe, log: Path) -> None:
    # A private mount namespace: debootstrap's /proc and /sys mounts in the target vanish with it, even on a crash.
    args = ["unshare", "--mount", "--propagation", "private", "debootstrap", "--variant=minbase",
            f"--include={','.join(recipe.packages)}", recipe.suite, str(root), recipe.mirror.archive]
    process = spawn_guarded(args, log)
    try:
        code = process.wait(timeout=_DEBOOTSTRAP_TIMEOUT)
    except BaseException:
        process.kill()
        process.wait()
        raise
    if code != 0:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-15:])
        raise HostWorldError(f"debootstrap {recipe.suite} from {recipe.mirror.archive} exited with {code}:\n{tail}")


def _read_built(directory: Path, built_now: bool) -> Rootfs:
    facts = json.loads((directory / "build.json").read_text())
    return Rootfs(path=directory / "root", key=directory.name, build_seconds=float(facts["build_seconds"]),
                  size_bytes=int(facts["size_bytes"]), built_now=built_now)


def cached_rootfs(recipe: RootfsRecipe | None = None, cache_root: Path | None = None) -> Rootfs:
    """The image for ``recipe``: built on first use (about a minute or more), then reused from the cache."""
    recipe = recipe or RootfsRecipe()
    cache_root = cache_root or default_cache_root()
    cache_root.mkdir(parents=True, exist_ok=True)
    final = cache_root / recipe.key
    if (final / "build.json").is_file():
        return _read_built(final, built_now=False)
    with exclusive(cache_root / f"{recipe.key}.lock"):
        if (final / "build.json").is_file():  # another process built it while we waited
            return _read_built(final, built_now=False)
        for stale in cache_root.glob(f".build-{recipe.key}-*"):
            shutil.rmtree(stale, ignore_errors=True)
        building = cache_root / f".build-{recipe.key}-{os.getpid()}"
        building.mkdir()
        try:
            started = time.monotonic()
            _debootstrap(building / "root", recipe, building / "debootstrap.log")
            _configure(building / "root", recipe)
            facts = {"key": recipe.key, "recipe": dataclasses.asdict(recipe), "recipe_version": RECIPE_VERSION,
                     "build_seconds": round(time.monotonic() - started, 1),
                     "size_bytes": _size_bytes(building / "root"), "built_at": time.time()}
            (building / "build.json").write_text(json.dumps(facts, indent=2) + "\n")
            building.rename(final)
        except BaseException:
            shutil.rmtree(building, ignore_errors=True)
            raise
    return _read_built(final, built_now=True)
