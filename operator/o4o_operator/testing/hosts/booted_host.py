"""One booted Debian server: systemd as PID 1 under systemd-nspawn, on its own network namespace.

Owns: a host's directory (an overlay's upper and work directories over the cached image, and the boot log),
what makes the host its own before it boots (SSH host keys, machine id, hostname, the ``admin`` user's
``authorized_keys``), booting it, waiting until sshd answers on ``<address>:22``, running a command inside as
root (:meth:`BootedHost.run`), and powering it off and removing every trace.

How it boots, so that nothing outlives this process even when it is SIGKILLed::

    python ─(PDEATHSIG)─> unshare --pid --mount ─> sh: mount overlay; exec systemd-nspawn --boot ─> systemd

The overlay is mounted inside a private mount namespace, so it vanishes with the host; ``systemd-nspawn`` is
PID 1 of a new PID namespace, so when it dies the kernel kills the whole container. The network namespace is
the world's (see ``network.py``). Must not touch the cached image: every write goes to the upper directory.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import hashlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

from o4o_operator.testing.hosts import apt_archive
from o4o_operator.testing.hosts.network import HostLink
from o4o_operator.testing.hosts.rootfs import LOGIN_USER
from o4o_operator.testing.hosts.system import HostWorldError, children_of, run_checked, spawn_guarded

HOST_KEY_TYPES = ("ed25519", "ecdsa", "rsa")
_BOOT_TIMEOUT = 120.0
_POWEROFF_TIMEOUT = 45.0


@dataclasses.dataclass(frozen=True)
class HostKey:
    """A public SSH host key as Lightsail's ``GetInstanceAccessDetails`` reports one in ``hostKeys[]``."""

    algorithm: str  # e.g. "ssh-ed25519"
    public_key: str  # "ssh-ed25519 AAAA..." (the known_hosts form without a host name)
    fingerprint_sha256: str  # "SHA256:..." as ssh-keygen -l prints it
    fingerprint_sha1: str

    @classmethod
    def from_line(cls, line: str) -> HostKey:
        algorithm, blob = line.split()[:2]
        raw = base64.b64decode(blob)
        sha256 = base64.b64encode(hashlib.sha256(raw).digest()).decode().rstrip("=")
        sha1 = base64.b64encode(hashlib.sha1(raw, usedforsecurity=False).digest()).decode().rstrip("=")
        return cls(algorithm=algorithm, public_key=f"{algorithm} {blob}", fingerprint_sha256=f"SHA256:{sha256}",
                   fingerprint_sha1=f"SHA1:{sha1}")


def _user_ids(root: Path, user: str) -> tuple[int, int]:
    for line in (root / "etc/passwd").read_text().splitlines():
        fields = line.split(":")
        if fields[0] == user:
            return int(fields[2]), int(fields[3])
    raise HostWorldError(f"the image has no user {user!r}")


def _sshd_answers(address: str) -> bool:
    try:
        with socket.create_connection((address, 22), timeout=1.0) as connection:
            connection.settimeout(2.0)
            return connection.recv(8).startswith(b"SSH-")
    except OSError:
        return False


class BootedHost:
    """A server the world booted; usually made by :meth:`HostWorld.boot_host`.

    ``address`` is its IPv4 address (reachable from the machine through the bridge), ``login_user`` is
    ``admin``, :meth:`host_keys` are its real public host keys, :meth:`authorize` adds a login key.
    """

    def __init__(self, *, name: str, link: HostLink, image: Path, directory: Path,
                 authorized_keys: Sequence[str] = (), package_cache: Path | None = None) -> None:
        """``package_cache``: the machine's kept Debian packages, laid into the host's apt archive before it
        boots and added to from it when it is removed (see ``apt_archive.py``); None keeps none."""
        self.name = name
        self.package_cache = package_cache
        self.link = link
        self.image = image
        self.directory = directory
        self.login_user = LOGIN_USER
        self.boot_seconds: float | None = None
        self._authorized = [key.strip() for key in authorized_keys if key.strip()]
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return self.link.address

    @property
    def upper(self) -> Path:
        return self.directory / "upper"

    @property
    def log_path(self) -> Path:
        return self.directory / "boot.log"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    # --- making the host its own -------------------------------------------------------------------------

    def _mirror_dirs(self, relative: str) -> Path:
        """Create ``relative`` in the upper directory with the image's modes and owners, parents first."""
        target, lower = self.upper, self.image
        for part in Path(relative).parts:
            target, lower = target / part, lower / part
            if not target.exists():
                target.mkdir()
                if lower.exists():
                    stat = lower.stat()
                    target.chmod(stat.st_mode & 0o7777)
                    shutil.chown(target, stat.st_uid, stat.st_gid)
        return target

    def _prepare(self) -> None:
        ssh = self._mirror_dirs("etc/ssh")
        for kind in HOST_KEY_TYPES:
            run_checked(["ssh-keygen", "-q", "-t", kind, "-N", "", "-C", f"root@{self.name}",
                         "-f", str(ssh / f"ssh_host_{kind}_key")])
        etc = self.upper / "etc"
        (etc / "machine-id").write_text(secrets.token_hex(16) + "\n")
        (etc / "hostname").write_text(self.name + "\n")
        hosts = (self.image / "etc/hosts").read_text() if (self.image / "etc/hosts").exists() else ""
        (etc / "hosts").write_text(f"127.0.0.1\tlocalhost\n127.0.1.1\t{self.name}\n" + hosts)
        self._write_authorized_keys(self.upper)
        if self.package_cache is not None:
            apt_archive.seed(self.package_cache, self._mirror_dirs(apt_archive.ARCHIVE))

    def _write_authorized_keys(self, root: Path) -> None:
        uid, gid = _user_ids(self.image, self.login_user)
        if root == self.upper:
            ssh_dir = self._mirror_dirs(f"home/{self.login_user}/.ssh")
        else:
            ssh_dir = root / "home" / self.login_user / ".ssh"
            ssh_dir.mkdir(exist_ok=True)
        ssh_dir.chmod(0o700)
        shutil.chown(ssh_dir, uid, gid)
        keys = ssh_dir / "authorized_keys"
        keys.write_text("".join(f"{key}\n" for key in self._authorized))
        keys.chmod(0o600)
        shutil.chown(keys, uid, gid)

    def authorize(self, public_key: str) -> None:
        """Let ``public_key`` (an OpenSSH public key line) log in as ``admin``, before or after boot."""
        if public_key.strip() and public_key.strip() not in self._authorized:
            self._authorized.append(public_key.strip())
        if self.running:
            self._write_authorized_keys(Path(f"/proc/{self._container_init()}/root"))
        elif self.upper.exists():
            self._write_authorized_keys(self.upper)

    def trust_root(self, name: str, pem: str) -> None:
        """Before boot: trust ``pem`` system-wide, as a corporate image trusts its own CA (``update-ca-certificates``
        done by hand: the file in ``/usr/local/share/ca-certificates`` and the system bundle with it appended)."""
        if self.running:
            raise HostWorldError(f"host {self.name}: trust roots before it boots")
        self.upper.mkdir(parents=True, exist_ok=True)
        (self._mirror_dirs("usr/local/share/ca-certificates") / f"{name}.crt").write_text(pem)
        bundle = self._mirror_dirs("etc/ssl/certs") / "ca-certificates.crt"
        current = (bundle if bundle.exists() else self.image / "etc/ssl/certs/ca-certificates.crt").read_text()
        bundle.write_text(current.rstrip("\n") + "\n" + pem.strip() + "\n")

    def host_keys(self) -> list[HostKey]:
        """The host's public SSH host keys (generated for it before its first boot)."""
        paths = sorted((self.upper / "etc/ssh").glob("ssh_host_*_key.pub"))
        return [HostKey.from_line(path.read_text()) for path in paths]

    def known_hosts_line(self) -> str:
        return "".join(f"{self.address} {key.public_key}\n" for key in self.host_keys())

    # --- booting and stopping ----------------------------------------------------------------------------

    def _boot_command(self) -> list[str]:
        merged, work = self.directory / "merged", self.directory / "work"
        options = f"lowerdir={self.image},upperdir={self.upper},workdir={work}"
        nspawn = ["systemd-nspawn", "--directory", str(merged), "--boot", "--register=no", "--keep-unit",
                  f"--machine={self.name}", f"--network-namespace-path={self.link.netns_path}",
                  "--resolv-conf=off", "--timezone=off", "--link-journal=no", "--console=passive"]
        mount_then_boot = 'mount -t overlay overlay -o "$1" "$2" && shift 2 && exec "$@"'
        return ["unshare", "--pid", "--fork", "--kill-child", "--mount-proc", "--propagation", "private",
                "sh", "-c", mount_then_boot, "o4o-boot", options, str(merged), *nspawn]

    def start(self, timeout: float = _BOOT_TIMEOUT) -> BootedHost:
        """Make, boot and wait for the host until sshd answers on ``address:22``."""
        if self._process is not None:
            raise HostWorldError(f"host {self.name} was already started")
        for child in ("upper", "work", "merged"):
            (self.directory / child).mkdir(parents=True, exist_ok=True)
        self._prepare()
        Path("/run/systemd/nspawn/propagate").mkdir(parents=True, exist_ok=True)
        started = time.monotonic()
        self._process = spawn_guarded(self._boot_command(), self.log_path)
        deadline = started + timeout
        while not _sshd_answers(self.address):
            if self._process.poll() is not None or time.monotonic() > deadline:
                how = "exited" if self._process.poll() is not None else f"had no sshd after {timeout:.0f} s"
                log = self.log_path.read_text(errors="replace")[-3000:]
                raise HostWorldError(f"host {self.name} ({self.address}) {how}; its boot log ends:\n{log}")
            time.sleep(0.1)
        self.boot_seconds = time.monotonic() - started
        return self

    def _nspawn_pid(self) -> int:
        if self._process is None:
            raise HostWorldError(f"host {self.name} is not running")
        children = children_of(self._process.pid)
        if not children:
            raise HostWorldError(f"host {self.name} has no systemd-nspawn process")
        return children[0]

    def _container_init(self) -> int:
        """The container's systemd (PID 1 inside), as a PID of the machine."""
        children = children_of(self._nspawn_pid())
        if not children:
            raise HostWorldError(f"host {self.name} has no init process")
        return children[0]

    def run(self, args: Sequence[str], *, timeout: float = 120.0, check: bool = True,
            input_text: str | None = None) -> subprocess.CompletedProcess[str]:
        """Run ``args`` as root inside the host (all its namespaces), like a console login would."""
        command = ["nsenter", f"--target={self._container_init()}", "--all", "--", *args]
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, input=input_text,
                              check=False)
        if check and done.returncode != 0:
            raise HostWorldError(f"{' '.join(args)} in host {self.name} exited with {done.returncode}: "
                                 f"{(done.stderr or done.stdout).strip()[-2000:]}")
        return done

    def stop(self, timeout: float = _POWEROFF_TIMEOUT) -> None:
        """Power off (SIGTERM to nspawn: an orderly shutdown), SIGKILL after ``timeout``, remove everything."""
        process, self._process = self._process, None
        try:
            if process is not None and process.poll() is None:
                for pid in children_of(process.pid):
                    signal_quietly(pid, signal.SIGTERM)
                try:
                    process.wait(timeout=timeout)
                except subprocess.TimeoutExpired:
                    process.kill()  # unshare: its child, nspawn, is PID 1 of the namespace and takes it all down
                    process.wait()
        finally:
            self.link.remove()
            if self.package_cache is not None:
                apt_archive.harvest(self.upper / apt_archive.ARCHIVE, self.package_cache)
            shutil.rmtree(self.directory, ignore_errors=True)


def signal_quietly(pid: int, number: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, number)
