"""A booted Debian host: SSH login as admin with the key pair, sudo, systemd, the proxy, isolation, apt, stop."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from o4o_operator.testing.hosts import BootedHost, HostWorld, HostWorldError
from o4o_operator.testing.hosts.ssh_client import ClientKey, SshClient, generate_key_pair
from o4o_operator.testing.hosts.world import _processes_naming

pytestmark = [pytest.mark.realhost, pytest.mark.timeout(1200)]

_DNS_PROBE = r"""
import socket, sys
query = bytes.fromhex("123401000001000000000000036465620664656269616e036f72670000010001")  # deb.debian.org A
probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
probe.settimeout(3)
try:
    probe.sendto(query, (sys.argv[1], 53))
    answer = probe.recv(512)
except OSError as error:
    print(f"no answer: {error!r}")
    sys.exit(1)
print(f"answered {len(answer)} bytes")
"""


@pytest.fixture(scope="module")
def host(host_world: HostWorld, client_key: ClientKey) -> Iterator[BootedHost]:
    booted = host_world.boot_host("debian-one", authorized_keys=[client_key.public_line])
    print(f"\nbooted {booted.name} at {booted.address} in {booted.boot_seconds:.1f} s")
    yield booted
    host_world.remove_host(booted)


def _machine_resolver() -> str:
    for line in Path("/etc/resolv.conf").read_text().splitlines():
        if line.startswith("nameserver"):
            return line.split()[1]
    raise AssertionError("this machine's /etc/resolv.conf names no resolver")


def _machine_gateway() -> str:
    route = subprocess.run(["ip", "-4", "route", "show", "default"], capture_output=True, text=True, check=True)
    return route.stdout.split()[2]


def test_admin_logs_in_with_the_key_pair_and_has_passwordless_sudo(host: BootedHost, ssh: SshClient) -> None:
    done = ssh(host, "id -un && sudo -n true && sudo -n id -un")
    assert done.stdout.split() == ["admin", "root"]


def test_the_reported_host_keys_are_the_ones_sshd_presents(host: BootedHost, ssh: SshClient, tmp_path: Path) -> None:
    assert {key.algorithm for key in host.host_keys()} == {"ssh-ed25519", "ecdsa-sha2-nistp256", "ssh-rsa"}
    scanned = subprocess.run(["ssh-keyscan", "-t", "ed25519", host.address], capture_output=True, text=True,
                             check=True, timeout=30).stdout.split()
    assert f"{scanned[1]} {scanned[2]}" in {key.public_key for key in host.host_keys()}
    stranger = generate_key_pair(tmp_path, "stranger")
    wrong = tmp_path / "known_hosts"
    wrong.write_text(f"{host.address} {stranger.public_line}\n")
    assert ssh(host, "true", known_hosts=wrong, check=False).returncode != 0


def test_a_key_authorised_after_boot_can_log_in(host: BootedHost, ssh: SshClient, tmp_path: Path) -> None:
    other = SshClient(generate_key_pair(tmp_path, "second"), tmp_path)
    assert other(host, "true", check=False).returncode != 0
    host.authorize(other.key.public_line)
    assert other(host, "id -un").stdout.strip() == "admin"


def test_systemd_is_pid_one_and_the_system_reaches_running(host: BootedHost, ssh: SshClient) -> None:
    done = ssh(host, "ps -o comm= -p 1; systemctl is-system-running --wait", check=False, timeout=180)
    lines = done.stdout.split()
    assert lines[0] == "systemd"
    assert lines[1] in {"running", "degraded"}, ssh(host, "systemctl --failed --no-pager", check=False).stdout


def test_the_proxy_settings_reach_a_sudo_shell(host: BootedHost, ssh: SshClient, host_world: HostWorld) -> None:
    done = ssh(host, "sudo -n sh -c 'echo $http_proxy $https_proxy $HTTPS_PROXY $npm_config_https_proxy'")
    assert done.stdout.split() == [host_world.proxy_url] * 4
    assert "nameserver 198.51.100.1" in ssh(host, "cat /etc/resolv.conf").stdout


def test_packets_reach_the_world_address_and_nothing_else(host: BootedHost, ssh: SshClient) -> None:
    ssh(host, "timeout 5 bash -c 'exec 3<>/dev/tcp/198.51.100.1/3128'")  # the proxy answers
    for address in ("203.0.113.1", _machine_gateway(), _machine_resolver()):
        tried = ssh(host, f"timeout 5 bash -c 'exec 3<>/dev/tcp/{address}/80'", check=False)
        assert tried.returncode != 0, f"a TCP connection from the host reached {address}"
    assert "default" not in ssh(host, "ip route").stdout


def test_the_machine_resolver_answers_the_machine_but_not_the_host(host: BootedHost) -> None:
    resolver = _machine_resolver()
    from_machine = subprocess.run([sys.executable, "-c", _DNS_PROBE, resolver], capture_output=True, text=True,
                                  timeout=30, check=False)
    assert from_machine.returncode == 0, f"the probe itself is broken: {from_machine.stdout}{from_machine.stderr}"
    from_host = subprocess.run(["ip", "netns", "exec", host.link.netns, sys.executable, "-c", _DNS_PROBE, resolver],
                               capture_output=True, text=True, timeout=30, check=False)
    assert from_host.returncode == 1, f"the host's namespace reached {resolver}: {from_host.stdout}"


def test_apt_installs_through_the_proxy_which_refuses_other_hosts(host: BootedHost, ssh: SshClient,
                                                                   host_world: HostWorld) -> None:
    started = time.monotonic()
    ssh(host, "sudo -n apt-get -q update && sudo -n env DEBIAN_FRONTEND=noninteractive "
              "apt-get install -y -q --no-install-recommends curl", timeout=900)
    print(f"\napt-get update and install curl through the proxy: {time.monotonic() - started:.1f} s")
    npm = ssh(host, "curl -sS -o /dev/null -w '%{http_code}' https://registry.npmjs.org/")
    assert npm.stdout == "200"
    refused = ssh(host, "curl -sS -o /dev/null -w '%{http_code}' http://example.com/", check=False)
    assert refused.stdout == "403"
    tunnel = ssh(host, "curl -sS -o /dev/null https://example.com/", check=False)
    assert tunnel.returncode != 0 and "403" in tunnel.stderr
    direct = ssh(host, "curl -sS --noproxy '*' --max-time 10 -o /dev/null https://registry.npmjs.org/", check=False)
    assert direct.returncode != 0, "the host reached the registry without the proxy"
    assert host_world.proxy is not None
    assert 'refused on filtered domain "example.com"' in host_world.proxy.log_path.read_text()


def test_root_commands_run_inside_without_ssh_and_a_cut_host_is_unreachable(host: BootedHost, ssh: SshClient) -> None:
    assert host.run(["systemctl", "is-active", "ssh"]).stdout.strip() == "active"
    assert host.run(["hostname"]).stdout.strip() == host.name
    host.link.cut()
    try:
        assert ssh(host, "true", check=False, timeout=60).returncode != 0
    finally:
        host.link.reconnect()
    ssh(host, "true")


def test_a_stopped_host_leaves_nothing_behind(host_world: HostWorld, client_key: ClientKey,
                                              host: BootedHost) -> None:
    second = host_world.boot_host("debian-two", authorized_keys=[client_key.public_line],  # two hosts at once
                                  address="198.51.100.20")
    assert second.address == "198.51.100.20"
    with pytest.raises(HostWorldError, match="address"):
        host_world.new_host("debian-three", address=host.address)
    print(f"\nbooted {second.name} at {second.address} in {second.boot_seconds:.1f} s")
    init, directory, link = second._container_init(), second.directory, second.link
    started = time.monotonic()
    host_world.remove_host(second)
    print(f"stopped {second.name} in {time.monotonic() - started:.1f} s")
    assert not Path(f"/proc/{init}").exists() or Path(f"/proc/{init}/stat").read_text().split()[2] == "Z"
    assert not directory.exists()
    assert not _processes_naming(directory)
    assert not link.netns_path.exists()
    assert not Path(f"/sys/class/net/{link.veth}").exists()
    assert str(directory) not in Path("/proc/self/mounts").read_text()
    assert second.name not in host_world.hosts
    with socket.socket() as probe:
        probe.settimeout(2)
        assert probe.connect_ex((link.address, 22)) != 0
    assert host.running  # the other host is untouched
