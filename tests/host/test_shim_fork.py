"""The shims' fork server and its C client: a shimmed command behaves as the Python script did."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from o4o_operator.testing import shim_fork
from o4o_operator.testing.sandbox import write_shims


@pytest.fixture
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[dict[str, str], Path]]:
    if shim_fork.client_binary() is None:
        pytest.skip("no C compiler: the shims are Python scripts (tests/host covers those)")
    root = Path(os.environ.get("TMPDIR", "/tmp")) / f"shimfork-{os.getpid()}"  # a short socket path
    root.mkdir(exist_ok=True)
    (root / ".shim-plan.json").write_text(json.dumps({"failures": [], "http": []}))
    server = shim_fork.ShimServer(root / "s.sock", root / "server.log")
    server.start()
    write_shims(root / "shims", server_socket=server.socket_path)
    env = {**os.environ, "O4O_ROOT": str(root), "PATH": f"{root / 'shims'}:/usr/bin:/bin"}
    try:
        yield env, root
    finally:
        server.stop()
        subprocess.run(["rm", "-rf", str(root)], check=True)


def bash(env: dict[str, str], script: str, **kwargs: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", "-c", script], env=env, capture_output=True, text=True, timeout=60,
                          check=False, **kwargs)  # type: ignore[call-overload]


def test_status_output_state_and_the_log_are_the_scripts(sandbox: tuple[dict[str, str], Path]) -> None:
    env, root = sandbox
    done = bash(env, "dpkg-query -W nginx; echo rc=$?; apt-get install -y nginx >/dev/null; "
                     "dpkg-query -W -f='${Status}\\n' nginx; systemctl is-active nginx; echo rc=$?")
    assert done.stdout.splitlines() == ["rc=1", "install ok installed", "rc=3"], done
    assert "no packages found matching nginx" in done.stderr
    logged = [json.loads(line)["argv"][0] for line in (root / ".shim-log").read_text().splitlines()]
    assert logged == ["dpkg-query", "apt-get", "dpkg-query", "systemctl"]


def test_stdin_a_process_substitution_the_directory_and_the_environment_reach_the_command(
        sandbox: tuple[dict[str, str], Path], tmp_path: Path) -> None:
    env, root = sandbox
    done = bash({**env, "HOME": str(tmp_path), "O4O_SECRETLESS_MARK": "dropped by sudo"},
                f"cd {tmp_path} && echo from-stdin | sudo -n -- bash -c "
                "'cat; cat \"$1\"; pwd; echo \"home=$HOME mark=${O4O_SECRETLESS_MARK:-}\"' _ <(echo from-fd)")
    assert done.stdout.splitlines() == ["from-stdin", "from-fd", str(tmp_path), f"home={tmp_path} mark="], done
    call = json.loads((root / ".shim-log").read_text().splitlines()[-1])
    assert call["argv"][0] == "sudo" and call["cwd"] == str(tmp_path)


def test_a_passthrough_execs_the_real_program_and_a_signal_is_128_plus_it(
        sandbox: tuple[dict[str, str], Path]) -> None:
    env, _ = sandbox
    assert bash(env, "getent passwd root").stdout.startswith("root:")
    killed = bash(env, "getent passwd root >/dev/null; kill -TERM $$", start_new_session=True)
    assert killed.returncode == -signal.SIGTERM


def test_without_its_server_a_command_fails_loudly(sandbox: tuple[dict[str, str], Path]) -> None:
    env, root = sandbox
    (root / "s.sock").unlink()
    done = bash(env, "id")
    assert done.returncode == 127 and "shim server" in done.stderr, done
