"""Two instances on one host, with real Linux users: neither can read the other's files.

The shim sandbox runs everything as root, so it can only show *that* scripts switch users. Here the
rendered scripts run on this machine (as root, which this test needs) with real ``useradd``, ``chown``,
``runuser`` and ``install``; only package managers and services are shimmed. Everything lands in a
temporary ``O4O_ROOT``, apart from the two throwaway users (and their homes), which the fixture
removes again. It never touches a user it did not create.
"""

from __future__ import annotations

import grp
import os
import pwd
import secrets
import shutil
import stat
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from o4o_operator.pipeline.stages import StageName, script_for
from o4o_operator.providers.ssh_session import owner_upload_command
from o4o_operator.rendering import HostContext, render_env, render_script
from o4o_operator.testing.sandbox import write_shims

PACKAGE_SHIMS = ("apt-get", "dpkg-query", "node", "npm", "pnpm", "pm2", "systemctl", "nginx", "curl", "certbot")
COMMIT = "0123456789abcdef0123456789abcdef01234567"

pytestmark = pytest.mark.skipif(
    os.getuid() != 0 or not all(shutil.which(tool) for tool in ("useradd", "userdel", "runuser")),
    reason="creating real users needs root and the shadow tools")


def have_web_group() -> bool:
    try:
        grp.getgrnam("www-data")
    except KeyError:
        return False
    return True


def user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


class Machine:
    """A temporary O4O_ROOT on this machine, package shims first on PATH, and the users it made."""

    def __init__(self, directory: Path) -> None:
        self.root = directory / "root"
        self.root.mkdir()
        self.shims = directory / "shims"
        write_shims(self.shims, PACKAGE_SHIMS)
        for path in (directory, self.root):
            path.chmod(0o755)  # the instance users must be able to walk down to their directories
        self.env = {"O4O_ROOT": str(self.root), "PATH": f"{self.shims}:/usr/sbin:/usr/bin:/sbin:/bin",
                    "LANG": "C.UTF-8"}

    def path(self, logical: str) -> Path:
        return self.root / logical.lstrip("/")

    def run(self, script: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["bash", "-s"], input=script, env=self.env, capture_output=True, text=True,
                              check=False, timeout=120)

    def upload_as_owner(self, ctx: HostContext, logical: str, content: bytes, mode: int) -> None:
        """What the SSH session runs for ``upload(..., owner=ctx.app_user)``, run here."""
        command = owner_upload_command(str(self.path(logical)), mode, ctx.app_user, secrets.token_hex(6))
        done = subprocess.run(["bash", "-c", command], input=content, env=self.env, capture_output=True,
                              check=False, timeout=60)
        assert done.returncode == 0, done.stderr

    def as_user(self, user: str, *argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["runuser", "-u", user, "--", *argv], env=self.env, capture_output=True,
                              text=True, check=False, timeout=60)


@pytest.fixture
def instances() -> Iterator[tuple[HostContext, HostContext]]:
    """Two DIs named ``shop`` in two throwaway namespaces; their users are deleted afterwards."""
    token = secrets.token_hex(3)
    contexts = tuple(HostContext(domain=f"shop.{side}.example.com", instance_name="shop",
                                 namespace=f"o4o-rt-{token}-{side}", repository="https://example.invalid/x.git",
                                 revision="main", tls_email="ops@example.com", commit=COMMIT)
                     for side in ("a", "b"))
    for ctx in contexts:
        assert not user_exists(ctx.app_user), f"{ctx.app_user} exists already; not ours to touch"
    try:
        yield contexts[0], contexts[1]
    finally:
        for ctx in contexts:
            if user_exists(ctx.app_user):
                subprocess.run(["userdel", "--remove", ctx.app_user], capture_output=True, check=False)
            with_group = subprocess.run(["getent", "group", ctx.app_user], capture_output=True, check=False)
            if with_group.returncode == 0:
                subprocess.run(["groupdel", ctx.app_user], capture_output=True, check=False)


@pytest.fixture
def machine() -> Iterator[Machine]:
    directory = Path(tempfile.mkdtemp(prefix="o4o-real-users-"))
    try:
        yield Machine(directory)
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def owner_and_mode(path: Path) -> tuple[str, str, int]:
    info = path.lstat()
    return pwd.getpwuid(info.st_uid).pw_name, grp.getgrgid(info.st_gid).gr_name, stat.S_IMODE(info.st_mode)


@pytest.mark.skipif(not have_web_group(), reason="the www-data group (nginx's) does not exist here")
def test_two_instances_on_one_host_cannot_read_each_others_files(
        machine: Machine, instances: tuple[HostContext, HostContext]) -> None:
    a, b = instances
    for ctx in (a, b):
        done = machine.run(render_script(script_for(StageName.RUNTIME), ctx))
        assert done.returncode == 0, done.stdout + done.stderr
        assert f"Creating user {ctx.app_user}" in done.stdout
        machine.upload_as_owner(ctx, ctx.env_path, render_env({"SECRET": f"only-for-{ctx.namespace}"}).encode(),
                                0o600)
    assert pwd.getpwnam(a.app_user).pw_uid != pwd.getpwnam(b.app_user).pw_uid

    for ctx in (a, b):
        user = ctx.app_user
        assert owner_and_mode(machine.path(ctx.base_dir)) == (user, "www-data", 0o750)
        assert owner_and_mode(machine.path(ctx.shared_dir)) == (user, user, 0o700)
        assert owner_and_mode(machine.path(ctx.releases_dir)) == (user, user, 0o755)
        assert owner_and_mode(machine.path(ctx.env_path)) == (user, user, 0o600)
        assert owner_and_mode(machine.path(ctx.state_dir)) == ("root", "root", 0o700)
        assert owner_and_mode(machine.path(ctx.webroot)) == ("root", "root", 0o755)
        assert owner_and_mode(machine.path(f"/home/{user}"))[::2] == (user, 0o700)

    a_env = str(machine.path(a.env_path))
    own = machine.as_user(a.app_user, "cat", a_env)
    assert own.returncode == 0 and f"only-for-{a.namespace}" in own.stdout
    for attempt in (("cat", a_env), ("ls", str(machine.path(a.base_dir))), ("ls", str(machine.path(a.releases_dir))),
                    ("ls", str(machine.path(a.state_dir))), ("ls", str(machine.path(f"/home/{a.app_user}")))):
        denied = machine.as_user(b.app_user, *attempt)
        assert denied.returncode != 0 and "Permission denied" in denied.stderr, attempt
    # nginx may walk into the releases to serve the site, and no further.
    assert machine.as_user("www-data", "ls", str(machine.path(a.releases_dir))).returncode == 0
    assert machine.as_user("www-data", "cat", a_env).returncode != 0

    again = machine.run(render_script(script_for(StageName.RUNTIME), a))
    assert again.returncode == 0 and f"User {a.app_user} exists" in again.stdout


@pytest.mark.skipif(not have_web_group(), reason="the www-data group (nginx's) does not exist here")
def test_root_does_not_follow_a_link_the_instance_user_planted(
        machine: Machine, instances: tuple[HostContext, HostContext]) -> None:
    a, _ = instances
    assert machine.run(render_script(script_for(StageName.RUNTIME), a)).returncode == 0
    victim = machine.path("/etc/o4o-victim")
    victim.parent.mkdir(parents=True, exist_ok=True)
    victim.write_text("root's own\n")
    victim.chmod(0o644)
    env_file = str(machine.path(a.env_path))
    planted = machine.as_user(a.app_user, "ln", "-sfn", str(victim), env_file)
    assert planted.returncode == 0, planted.stderr

    configured = machine.run(render_script(script_for(StageName.CONFIGURE), a))  # it stops later: nothing is built
    assert configured.returncode != 0
    assert owner_and_mode(victim) == ("root", "root", 0o644)
    assert victim.read_text() == "root's own\n"

    machine.upload_as_owner(a, a.env_path, b"SECRET='x'\n", 0o600)
    assert not Path(env_file).is_symlink()
    assert owner_and_mode(Path(env_file)) == (a.app_user, a.app_user, 0o600)
    assert victim.read_text() == "root's own\n"


@pytest.mark.skipif(not have_web_group(), reason="the www-data group (nginx's) does not exist here")
def test_teardown_removes_one_instance_with_its_user_and_follows_no_link(
        machine: Machine, instances: tuple[HostContext, HostContext]) -> None:
    a, b = instances
    for ctx in (a, b):
        assert machine.run(render_script(script_for(StageName.RUNTIME), ctx)).returncode == 0
        machine.upload_as_owner(ctx, ctx.env_path, b"SECRET='x'\n", 0o600)
    victim = machine.path("/etc/o4o-victim")
    victim.parent.mkdir(parents=True, exist_ok=True)
    victim.write_text("root's own\n")
    base = str(machine.path(a.base_dir))
    for argv in (("ln", "-s", str(victim), f"{base}/shared/planted"),  # root must not follow it
                 ("ln", "-s", str(machine.path(b.base_dir)), f"{base}/releases/other"),
                 ("mkdir", "-p", f"{base}/releases/x/node_modules/pkg"),
                 ("chmod", "0555", f"{base}/releases/x/node_modules")):  # read-only, as some packages ship
        assert machine.as_user(a.app_user, *argv).returncode == 0, argv

    done = machine.run(render_script("teardown-host", a))

    assert done.returncode == 0, done.stdout + done.stderr
    assert "::o4o::result teardown=finished" in done.stdout
    assert not user_exists(a.app_user)
    for logical in (a.base_dir, a.state_dir, a.webroot, f"/home/{a.app_user}"):
        assert not machine.path(logical).exists(), logical
    assert victim.read_text() == "root's own\n"
    assert user_exists(b.app_user)
    assert owner_and_mode(machine.path(b.base_dir)) == (b.app_user, "www-data", 0o750)
    assert machine.path(b.env_path).read_text() == "SECRET='x'\n"
    assert machine.path(f"/home/{b.app_user}").is_dir() and machine.path(b.state_dir).is_dir()
    again = machine.run(render_script("teardown-host", a))
    assert again.returncode == 0 and "::o4o::result teardown=finished" in again.stdout, again.stdout + again.stderr
