"""P3: the runtime bootstrap script on 50 sandbox hosts, ansible-playbook's wall time over ours.

The script is the operator's own ``runtime`` stage script, rendered with
``render_script("setup-runtime", HostContext(...))``. Each side gets a fresh fleet of
sandbox hosts (so both install everything from scratch) with no added latency:
what is compared is the fan-out machinery, on top of the same remote work.

- ours: the operator's :class:`~o4o_operator.providers.ssh.SshConnector` (50 sessions,
  as the operator's default) connects to every host and runs the script, all at once
  with ``asyncio.gather``, each run's output going to an ``InstanceLog`` as in a stage.
- ansible: ``ansible-playbook`` (ansible-core) with ``forks = 50``, ``gather_facts:
  false`` and one ``ansible.builtin.script`` task running the same file, over OpenSSH
  with the default ControlPersist, a 0600 key file and host key checking off.

Both clocks include connecting. The ratio is ``T(ansible) / T(ours)``. Also reported:
the same script run locally 50 times at once without SSH (``bash`` with the sandbox's
environment), the floor both sides share.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import say, verdict, write_result
from o4o_operator.providers.ssh import SshConnector
from o4o_operator.redaction import Redactor
from o4o_operator.rendering.host_context import HostContext
from o4o_operator.rendering.render import render_script
from o4o_operator.runner.log import InstanceLog
from o4o_operator.runner.settings import OperatorSettings
from o4o_operator.testing.world import SandboxFleet

NAME = "p3-fanout"
TARGET = 5.0


@dataclasses.dataclass(frozen=True)
class Options:
    hosts: int = 50
    forks: int = 50
    subnet: int = 93
    timeout: float = 900.0


def runtime_script() -> str:
    context = HostContext(domain="bench.example.com", instance_name="bench",
                          repository="https://example.invalid/o4o-platform.git", revision="main",
                          tls_email="ops@example.com")
    return render_script("setup-runtime", context)


@contextlib.contextmanager
def fleet_of(count: int, subnet: int, directory: Path) -> Any:
    """``count`` fresh sandbox hosts trusting one client key; all stopped afterwards."""
    directory.mkdir(parents=True, exist_ok=True)
    fleet = SandboxFleet(directory, subnet=subnet)
    try:
        for index in range(count):
            fleet.host_for(f"bench-{index}")
        yield fleet
    finally:
        fleet.stop()


def _user() -> str:
    import pwd

    return pwd.getpwuid(os.getuid()).pw_name


# ---- ours ----------------------------------------------------------------------------------


async def run_ours(fleet: SandboxFleet, script: str, limit: float) -> dict[str, Any]:
    """Connect to every host and run the script, all at once, as the operator's runtime stage does."""
    connector = SshConnector(max_sessions=OperatorSettings().max_ssh_sessions, honour_sandbox_root=True)
    user = _user()

    async def one(host: Any) -> int:
        session = await connector.connect(host.address, host.port, user, fleet.private_key_pem,
                                          host.host_key_fingerprint, limit)
        log = InstanceLog(Redactor())
        await session.run(script, timeout=limit, log=log)
        await session.close()
        return len(log.full_text.splitlines())

    started = time.perf_counter()
    try:
        lines = await asyncio.gather(*(one(host) for host in fleet.hosts.values()))
    finally:
        elapsed = time.perf_counter() - started
        await connector.close_all()
    return {"seconds": round(elapsed, 2), "hosts_ok": len(lines), "output_lines_per_host": lines[0]}


# ---- ansible ---------------------------------------------------------------------------------


def _ansible_files(fleet: SandboxFleet, script: str, forks: int, directory: Path) -> dict[str, Path]:
    key = directory / "id_ed25519"
    key.write_text(fleet.private_key_pem)
    key.chmod(0o600)
    (directory / "runtime.sh").write_text(script)
    hosts = "\n".join(f"h{index} ansible_host={host.address}" for index, host in enumerate(fleet.hosts.values()))
    (directory / "inventory.ini").write_text(
        f"[sandbox]\n{hosts}\n\n[sandbox:vars]\nansible_user={_user()}\nansible_port=22\n"
        f"ansible_ssh_private_key_file={key}\nansible_python_interpreter={sys.executable}\n")
    (directory / "playbook.yml").write_text(
        "- hosts: sandbox\n  gather_facts: false\n  tasks:\n"
        "    - name: Install the runtime (the operator's runtime stage script)\n"
        f"      ansible.builtin.script: {directory / 'runtime.sh'}\n")
    (directory / "ansible.cfg").write_text(
        f"[defaults]\nforks = {forks}\nhost_key_checking = False\nretry_files_enabled = False\n"
        f"local_tmp = {directory / 'local'}\nremote_tmp = {directory / 'remote'}\n"
        "interpreter_python = auto_silent\n\n[ssh_connection]\n"
        f"control_path_dir = {directory / 'cp'}\n"
        "ssh_args = -C -o ControlMaster=auto -o ControlPersist=60s -o UserKnownHostsFile=/dev/null "
        "-o LogLevel=ERROR\n")
    return {"cfg": directory / "ansible.cfg", "inventory": directory / "inventory.ini",
            "playbook": directory / "playbook.yml"}


def _ssh_masters(directory: Path) -> list[int]:
    """OpenSSH ControlPersist masters whose socket lives in ``directory`` (ansible leaves them behind)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if str(directory) in (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace"):
                    found.append(int(entry.name))
    return found


def run_ansible(fleet: SandboxFleet, script: str, forks: int, timeout: float) -> dict[str, Any]:
    playbook = shutil.which("ansible-playbook", path=str(Path(sys.executable).parent)) or \
        shutil.which("ansible-playbook")
    if playbook is None:
        raise RuntimeError("ansible-playbook not found: pip install '.[bench]' (ansible-core)")
    directory = Path(tempfile.mkdtemp(prefix="p3a-", dir="/tmp"))  # short: ControlPath is a socket path
    try:
        files = _ansible_files(fleet, script, forks, directory)
        env = {**os.environ, "ANSIBLE_CONFIG": str(files["cfg"]), "ANSIBLE_HOME": str(directory / "home"),
               "ANSIBLE_NOCOLOR": "1"}
        started = time.perf_counter()
        result = subprocess.run([playbook, "-i", str(files["inventory"]), str(files["playbook"])], env=env,
                                capture_output=True, text=True, timeout=timeout, check=False)
        elapsed = time.perf_counter() - started
        recap = result.stdout[result.stdout.rfind("PLAY RECAP"):]
        ok = sum(1 for line in recap.splitlines() if " ok=1 " in line and "failed=0" in line)
        if result.returncode != 0:
            raise RuntimeError(f"ansible-playbook exited {result.returncode}:\n{result.stdout[-3000:]}\n"
                               f"{result.stderr[-2000:]}")
        return {"seconds": round(elapsed, 2), "hosts_ok": ok, "version": _ansible_version(playbook)}
    finally:
        for pid in _ssh_masters(directory):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        shutil.rmtree(directory, ignore_errors=True)


def _ansible_version(playbook: str) -> str:
    output = subprocess.run([playbook, "--version"], capture_output=True, text=True, check=False).stdout
    return output.splitlines()[0] if output else "unknown"


# ---- the floor -------------------------------------------------------------------------------


def run_local(fleet: SandboxFleet, script: str, timeout: float) -> dict[str, Any]:
    """The same script, 50 at once, straight into bash with each host's environment: no SSH at all."""
    environments = []
    for host in fleet.hosts.values():
        environments.append({**os.environ, "O4O_ROOT": str(host.root),
                             "PATH": f"{host.shim_dir}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"})
    started = time.perf_counter()
    processes = [subprocess.Popen(["bash", "-s"], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL, env=env, text=True) for env in environments]
    for process in processes:
        assert process.stdin is not None
        process.stdin.write(script)
        process.stdin.close()
    codes = [process.wait(timeout=timeout) for process in processes]
    return {"seconds": round(time.perf_counter() - started, 2), "hosts_ok": codes.count(0)}


async def session_cost(fleet: SandboxFleet, runs: int = 10) -> float:
    """Seconds one SSH session running ``true`` takes on a sandbox host, one after another.

    Every session logs in as this machine's user, so its shell reads that user's ``~/.bashrc``
    (here: ``pyenv init``, whose rehash takes a machine-wide lock): a cost both sides pay
    per session, ansible more often than ours.
    """
    host = next(iter(fleet.hosts.values()))
    connector = SshConnector(honour_sandbox_root=True)
    try:
        session = await connector.connect(host.address, host.port, _user(), fleet.private_key_pem,
                                          host.host_key_fingerprint, 60)
        started = time.perf_counter()
        for _ in range(runs):
            await session.run("true", timeout=60, log=InstanceLog(Redactor()))
        return (time.perf_counter() - started) / runs
    finally:
        await connector.close_all()


def run(options: Options) -> dict[str, Any]:
    script = runtime_script()
    directory = Path(tempfile.mkdtemp(prefix="o4o-bench-p3-"))
    try:
        say(f"P3: {options.hosts} fresh sandbox hosts, the runtime script through our SshConnector ...")
        with fleet_of(options.hosts, options.subnet, directory / "ours") as fleet:
            ours = asyncio.run(run_ours(fleet, script, options.timeout))
        say(f"P3:   ours {ours['seconds']}s; now ansible-playbook (forks={options.forks}) on fresh hosts ...")
        with fleet_of(options.hosts, options.subnet, directory / "ansible") as fleet:
            ansible = run_ansible(fleet, script, options.forks, options.timeout)
        say(f"P3:   ansible {ansible['seconds']}s; now the same script locally without SSH (the floor) ...")
        with fleet_of(options.hosts, options.subnet, directory / "local") as fleet:
            local = run_local(fleet, script, options.timeout)
            per_session = asyncio.run(session_cost(fleet))
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    ratio = ansible["seconds"] / ours["seconds"]
    return {
        "benchmark": NAME, "hosts": options.hosts, "forks": options.forks, "target": f">= {TARGET}",
        "ratio": round(ratio, 2), "verdict": verdict(ratio, TARGET, at_most=False),
        "ours": ours, "ansible": ansible, "local_no_ssh": local,
        "overhead_seconds": {"ours": round(ours["seconds"] - local["seconds"], 2),
                             "ansible": round(ansible["seconds"] - local["seconds"], 2)},
        "seconds_per_ssh_session": round(per_session, 3), "script_bytes": len(script),
    }


def report(result: dict[str, Any]) -> None:
    say(f"P3  runtime script on {result['hosts']} hosts: ansible {result['ansible']['seconds']}s / ours "
        f"{result['ours']['seconds']}s = {result['ratio']} (target {result['target']}: {result['verdict']})")
    say(f"    hosts ok: ours {result['ours']['hosts_ok']}, ansible {result['ansible']['hosts_ok']}; "
        f"{result['ansible']['version']}, forks={result['forks']}")
    say(f"    the script alone, locally without SSH: {result['local_no_ssh']['seconds']}s; overhead above that: "
        f"ours {result['overhead_seconds']['ours']}s, ansible {result['overhead_seconds']['ansible']}s; one SSH "
        f"session (true) costs {result['seconds_per_ssh_session']}s here")


def main(options: Options) -> dict[str, Any]:
    result = run(options)
    path = write_result(NAME, result)
    report(result)
    say(f"    wrote {path}")
    return result
