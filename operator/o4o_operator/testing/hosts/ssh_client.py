"""The machine's own OpenSSH client, pointed at booted hosts: how tests log in as a real user would.

Owns: making a client key pair (:func:`generate_key_pair`, the Lightsail key pair's stand-in) and
:class:`SshClient`, which runs a command as a host's login user with the host keys the host reports pinned
(``StrictHostKeyChecking=yes``), so a wrong :meth:`BootedHost.host_keys` fails the login. Must not accept
unknown host keys or fall back to passwords.
"""

from __future__ import annotations

import dataclasses
import subprocess
from pathlib import Path

from o4o_operator.testing.hosts.booted_host import BootedHost


@dataclasses.dataclass(frozen=True)
class ClientKey:
    """A private key file and its public half as an OpenSSH line (what ``authorized_keys`` holds)."""

    private_path: Path
    public_line: str


def generate_key_pair(directory: Path, name: str = "id_ed25519") -> ClientKey:
    path = directory / name
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", str(path)], check=True)
    return ClientKey(private_path=path, public_line=path.with_suffix(".pub").read_text().strip())


class SshClient:
    """``SshClient(key, directory)(host, "sudo -n true")``: run over SSH; ``directory`` holds known_hosts files."""

    def __init__(self, key: ClientKey, directory: Path) -> None:
        self.key, self.directory = key, directory

    def known_hosts(self, host: BootedHost) -> Path:
        path = self.directory / f"known_hosts-{host.name}"
        path.write_text(host.known_hosts_line())
        return path

    def __call__(self, host: BootedHost, command: str, *, check: bool = True, timeout: float = 300.0,
                 known_hosts: Path | None = None) -> subprocess.CompletedProcess[str]:
        """Run ``command`` as ``host.login_user``; with ``check``, a non-zero exit raises with the output."""
        pinned = known_hosts or self.known_hosts(host)
        args = ["ssh", "-i", str(self.key.private_path), "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes",
                "-o", "PasswordAuthentication=no", "-o", "StrictHostKeyChecking=yes",
                "-o", f"UserKnownHostsFile={pinned}", "-o", "ConnectTimeout=10",
                f"{host.login_user}@{host.address}", command]
        done = subprocess.run(args, capture_output=True, text=True, timeout=timeout, check=False)
        if check and done.returncode != 0:
            raise AssertionError(f"ssh {host.login_user}@{host.address} {command!r} exited with "
                                 f"{done.returncode}:\n{done.stdout}\n{done.stderr}")
        return done
