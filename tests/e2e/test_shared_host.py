"""Two DIs with the same name, in two namespaces, on one existing host: both Ready, nothing shared; deleting
one removes its things from the host and leaves the other's.

The sandbox runs everything as root, so this proves what the scripts asked for (which user, which
paths, which PM2 process, which nginx site) from the shims' record; tests/host/test_real_users.py
shows that the same scripts really keep real users apart.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from e2e_support import wait_for

from o4o_operator.rendering import HostContext
from o4o_operator.rendering.env_values import database_identifier
from o4o_operator.testing.sandbox import SandboxHost, ShimCall
from o4o_operator.testing.world import ZONE, LocalWorld


def domain(namespace: str) -> str:
    return f"shared-{hashlib.sha256(namespace.encode()).hexdigest()[:12]}.{ZONE}"


def expected(world: LocalWorld, namespace: str) -> HostContext:
    """The names the operator derives for DI ``shop`` in ``namespace``."""
    return HostContext(domain=domain(namespace), instance_name="shop", namespace=namespace,
                       repository=world.repository.as_uri(), revision="main", tls_email="ops@example.com")


def owner_of(path: str, contexts: list[HostContext]) -> HostContext | None:
    """The instance whose base directory holds this logical path, if any."""
    found = [ctx for ctx in contexts if f"{path}/".startswith(f"{ctx.base_dir}/")]
    return found[0] if found else None


def as_user(call: ShimCall) -> tuple[str, ...]:
    return call.args[call.args.index("--") + 1:]


def test_two_namespaces_share_one_existing_host_without_sharing_anything(world: LocalWorld, namespace: str) -> None:
    other = f"{namespace[:61]}-b"
    world.control_plane.create_namespace(other)
    host: SandboxHost = world.fleet.host_for(f"shared-existing-{namespace}")
    namespaces = [namespace, other]
    for index, ns in enumerate(namespaces):
        world.create_secrets(ns, env={"JWT_SECRET": f"canary-{index}-{ns}"})
        world.apply(world.manifest(
            "shop", ns, domain=domain(ns), apiPort=3001 + index,
            provider={"existing": {"host": host.address}},
            ssh={"user": world.fleet_user, "privateKeySecretRef": {"name": "ssh-key"},
                 "hostKeyFingerprint": host.host_key_fingerprint}))
    commits = {ns: wait_for(world, ns, "shop", "condition=Ready")["status"]["source"]["commit"] for ns in namespaces}
    # Two of everything on the host, each .env holding its own instance's secret only.
    env_files = sorted(host.path("/srv/o4o").glob("*/shared/.env"))
    assert len(env_files) == 2
    assert sorted(sum(f"canary-{index}-" in path.read_text() for index in (0, 1)) for path in env_files) == [1, 1]
    assert len(list(host.path("/etc/nginx/sites-enabled").glob("o4o-*"))) == 2
    assert len(host.shim_state()["users"]) == 3  # one per instance, and PostgreSQL's own
    contexts = [expected(world, ns) for ns in namespaces]
    first, second = contexts

    # One user each (PostgreSQL's postgres besides); every path, process and site name is the instance's own.
    assert sorted(host.shim_state()["users"]) == sorted([*(ctx.app_user for ctx in contexts), "postgres"])
    # One role and one database each, owned by that role, on the host's one PostgreSQL.
    names = [database_identifier(ctx.app_user) for ctx in contexts]
    postgres = host.shim_state()["postgres"]
    assert names[0] != names[1] and {name: postgres["databases"][name] for name in names} == {n: n for n in names}
    assert all(postgres["roles"][name] for name in names)
    for kind in ("app_user", "base_dir", "state_dir", "webroot", "pm2_app_name", "nginx_enabled_path"):
        assert getattr(first, kind) != getattr(second, kind), kind
    assert host.shim_state()["pm2"] == {ctx.app_user: {ctx.pm2_app_name: commits[ctx.namespace]} for ctx in contexts}
    for index, ctx in enumerate(contexts):
        env_file = host.path(ctx.env_path).read_text()
        assert f"canary-{index}-{ctx.namespace}" in env_file
        assert f"canary-{1 - index}-" not in env_file
        enabled = host.path(ctx.nginx_enabled_path)
        assert enabled.readlink().as_posix() == f"../sites-available/{ctx.nginx_site_name(True)}"
        site = host.path(ctx.nginx_site_path(True)).read_text()
        assert f"root {ctx.site_root};" in site and f"proxy_pass http://127.0.0.1:{3001 + index};" in site
        assert (Path(host.path(ctx.current_link)).resolve().parent == host.path(ctx.releases_dir).resolve())

    # Whatever ran in an instance's directory ran as that instance's user, and nobody else's.
    calls = host.commands()
    runuser = [c for c in calls if c.name == "runuser"]
    assert {c.args[1] for c in runuser} == {*(ctx.app_user for ctx in contexts), "postgres"}
    for call in runuser:
        paths = [arg.removeprefix(str(host.root)) for arg in as_user(call) if arg.startswith(str(host.root))]
        owners = {owner.app_user for path in paths if (owner := owner_of(path, contexts)) is not None}
        assert owners <= {call.args[1]}, call
    for ctx in contexts:
        clones = [as_user(c) for c in runuser if c.args[1] == ctx.app_user and as_user(c)[:2] == ("git", "clone")]
        assert clones and all(args[-1] == str(host.path(ctx.repo_dir)) + ".staging" for args in clones)
    for call in calls:
        if call.name in ("pnpm", "pm2") and call.args[:1] not in {("--version",), ("startup",)}:
            owner = owner_of(call.cwd.removeprefix(str(host.root)), contexts) if call.name == "pnpm" else None
            assert call.user in {ctx.app_user for ctx in contexts}, call
            assert owner is None or owner.app_user == call.user, call
    startups = {c.args[c.args.index("-u") + 1] for c in calls if c.name == "pm2" and c.args[:1] == ("startup",)}
    assert startups == {ctx.app_user for ctx in contexts}
    assert not [c for c in calls if c.name == "chown" and "-h" not in c.args]

    # Deleting one instance removes its things from the host and leaves the other's, Ready and serving.
    world.control_plane.kubectl("delete", "di", "shop", "-n", namespace, "--timeout=240s", timeout=270)
    state = host.shim_state()
    gone = [first.base_dir, first.state_dir, first.webroot, f"/home/{first.app_user}", first.nginx_enabled_path,
            first.nginx_site_path(False), first.nginx_site_path(True), first.certificate_dir,
            f"/etc/systemd/system/pm2-{first.app_user}.service"]
    assert [path for path in gone if host.path(path).exists() or host.path(path).is_symlink()] == []
    assert sorted(state["users"]) == sorted([second.app_user, "postgres"])
    assert state["pm2"] == {second.app_user: {second.pm2_app_name: commits[second.namespace]}}
    assert names[0] not in state["postgres"]["databases"] and names[0] not in state["postgres"]["roles"]
    assert state["postgres"]["databases"][names[1]] == names[1]
    assert [c.args for c in host.commands("userdel")] == [(first.app_user,)]
    serving = host.path(second.nginx_enabled_path).readlink().as_posix()
    assert serving == f"../sites-available/{second.nginx_site_name(True)}"
    assert host.path(second.current_link).resolve().parent == host.path(second.releases_dir).resolve()
    assert host.path(second.env_path).exists() and host.path(second.certificate_path).exists()
    assert {f"pm2-{second.app_user}", "nginx"} <= set(state["active"])
    conditions = {c["type"]: c["status"] for c in world.get("shop", other)["status"]["conditions"]}
    assert conditions["Ready"] == "True"
