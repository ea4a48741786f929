"""kubectl apply ends in HTTPS 200 on a booted Debian server; then a revision bump, a rollback and drift; then a
fleet of two members on that same server, rolled to a new commit in two waves.

One DI, shaped like the Lightsail sample (debian_12, login admin, Pebble as its ACME server), is made Ready
once for the module; the tests run in order on it, each leaving it Ready for the next. The fleet's members use
its server as an existing host (``provider.existing``), so its runtime and PostgreSQL are found installed and
no other server boots. Timings are printed for the record (apply-to-Ready, per stage); nothing asserts on time.
"""

from __future__ import annotations

import json
import socket
import ssl
import time
import uuid
from dataclasses import dataclass
from typing import Any

import pytest
from real_support import conditions, dump, print_stage_times, wait_for

from o4o_operator.models import BuildSpec
from o4o_operator.testing.fixture_o4o import API_MAIN_TS, CRASHING_API_MAIN_TS
from o4o_operator.testing.fixture_repo import SITE_MARKER, SITE_PAGE, commit_to_branch, site_page
from o4o_operator.testing.fleet_watch import MemberWatch
from o4o_operator.testing.hosts import BootedHost
from o4o_operator.testing.real_world import RealWorld

pytestmark = [pytest.mark.real, pytest.mark.timeout(2400)]
NAME = "shop"
HEALTH = BuildSpec().health


def _field(body: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        body = body[part]
    return body


@dataclass
class Served:
    domain: str
    address: str
    host: BootedHost
    obj: dict[str, Any]


def _patch_source(world: RealWorld, namespace: str, revision: str) -> int:
    world.control_plane.kubectl("patch", "di", NAME, "-n", namespace, "--type=merge",
                                "-p", json.dumps({"spec": {"source": {"revision": revision}}}))
    return int(world.get(NAME, namespace)["metadata"]["generation"])


@pytest.fixture(scope="module")
def served(real_world: RealWorld, real_namespace: str) -> Served:
    started = time.monotonic()
    real_world.apply(real_world.manifest(NAME, real_namespace))
    obj = wait_for(real_world, real_namespace, NAME, "condition=Ready")
    print(f"\napply-to-Ready: {time.monotonic() - started:.1f} s")
    print_stage_times("stages", obj)
    server = obj["status"]["server"]
    host = real_world.host(server["name"])
    print("reach it with: " + real_world.curl_command(obj["spec"]["domain"], server["ipAddress"]))
    return Served(obj["spec"]["domain"], server["ipAddress"], host, obj)


def _get(world: RealWorld, served: Served, path: str, *, scheme: str = "https") -> tuple[int, str]:
    done = world.curl(served.domain, served.address, path, scheme=scheme)
    assert done.returncode == 0, f"curl {scheme}://{served.domain}{path}: {done.stderr}"
    body, _, code = done.stdout.rpartition("\n")
    return int(code), body


def test_1_the_site_and_the_api_answer_200_over_https_with_a_pebble_certificate(
        real_world: RealWorld, served: Served) -> None:
    code, body = _get(real_world, served, "/")
    assert code == 200 and SITE_MARKER in body, body[-500:]
    code, body = _get(real_world, served, HEALTH.path)
    assert code == 200, body[-500:]
    assert _field(json.loads(body), HEALTH.body_field) == HEALTH.expect, body[-500:]

    context = ssl.create_default_context(cafile=str(real_world.pebble_root_path))
    with socket.create_connection((served.address, 443), timeout=10) as raw, \
            context.wrap_socket(raw, server_hostname=served.domain) as tls:
        certificate = tls.getpeercert()
    issuer = dict(item[0] for item in certificate["issuer"])
    assert "Pebble" in issuer.get("commonName", ""), issuer
    assert served.obj["status"]["certificate"]["notAfter"]

    redirect = real_world.curl(served.domain, served.address, "/", scheme="http",
                               extra=("--output", "/dev/null", "--write-out", "%{http_code} %{redirect_url}"))
    code, _, location = redirect.stdout.strip().partition(" ")
    assert code in ("301", "308") and location == f"https://{served.domain}/", redirect.stdout


def _pm2_user(host: BootedHost) -> str:
    """The app user whose systemd unit (``pm2-<user>.service``, from ``pm2 startup``) runs PM2."""
    units = host.run(["systemctl", "list-units", "--all", "--plain", "--no-legend", "pm2-*.service"]).stdout
    names = [line.split()[0] for line in units.splitlines() if line.strip()]
    assert len(names) == 1, units
    return names[0].removeprefix("pm2-").removesuffix(".service")


def _pm2_processes(host: BootedHost, user: str) -> dict[str, Any]:
    listing = host.run(["runuser", "-u", user, "--", "env", f"HOME=/home/{user}", "pm2", "jlist"]).stdout
    return {p["name"]: p for p in json.loads(listing[listing.index("["):])}


def test_2_nginx_runs_under_systemd_and_pm2_shows_the_api_online_under_the_app_users_unit(
        served: Served) -> None:
    assert served.host.run(["systemctl", "is-active", "nginx"]).stdout.strip() == "active"
    user = _pm2_user(served.host)
    assert served.host.run(["systemctl", "is-active", f"pm2-{user}"]).stdout.strip() == "active"
    processes = _pm2_processes(served.host, user)
    api = [p for name, p in processes.items() if name.endswith(f"{NAME}-api")]
    assert len(api) == 1, list(processes)
    assert api[0]["pm2_env"]["status"] == "online", dump(api[0]["pm2_env"])


def test_3_a_revision_bump_to_a_new_branch_is_served(real_world: RealWorld, real_namespace: str,
                                                      served: Served) -> None:
    marker = f"release {uuid.uuid4().hex[:8]}"
    branch = f"feature-{uuid.uuid4().hex[:6]}"
    commit = commit_to_branch(real_world.repository, branch, {SITE_PAGE: site_page(marker)}, "A feature")
    real_world.publish()
    started = time.monotonic()
    generation = _patch_source(real_world, real_namespace, branch)
    wait_for(real_world, real_namespace, NAME, f"jsonpath={{.status.observedGeneration}}={generation}")
    obj = wait_for(real_world, real_namespace, NAME, "condition=Ready")
    print(f"\nrevision bump to Ready: {time.monotonic() - started:.1f} s")
    print_stage_times("stages after the bump", obj)
    assert obj["status"]["source"]["commit"] == commit
    code, body = _get(real_world, served, "/")
    assert code == 200 and marker in body, body[-500:]
    served.obj = obj


def test_4_a_release_whose_api_exits_at_start_is_rolled_back(real_world: RealWorld, real_namespace: str,
                                                           served: Served) -> None:
    good_revision = served.obj["spec"]["source"]["revision"]
    good_commit = served.obj["status"]["source"]["commit"]
    _, good_page = _get(real_world, served, "/")
    broken = f"broken-{uuid.uuid4().hex[:6]}"
    commit_to_branch(real_world.repository, broken,
                     {API_MAIN_TS: CRASHING_API_MAIN_TS, SITE_PAGE: site_page("the broken release")}, "Broken API")
    real_world.publish()
    generation = _patch_source(real_world, real_namespace, broken)
    failed = wait_for(real_world, real_namespace, NAME,
                      "jsonpath={.status.conditions[?(@.type==\"Ready\")].reason}=RolledBack")
    assert failed["status"]["observedGeneration"] == generation
    assert conditions(failed)["Ready"]["status"] == "False"
    code, body = _get(real_world, served, "/")
    assert code == 200 and body == good_page
    code, body = _get(real_world, served, HEALTH.path)
    assert code == 200 and _field(json.loads(body), HEALTH.body_field) == HEALTH.expect, body[-500:]
    generation = _patch_source(real_world, real_namespace, good_revision)
    wait_for(real_world, real_namespace, NAME, f"jsonpath={{.status.observedGeneration}}={generation}")
    healed = wait_for(real_world, real_namespace, NAME, "condition=Ready")
    assert healed["status"]["source"]["commit"] == good_commit
    served.obj = healed


@pytest.mark.parametrize("how", ["pm2 stop", "systemctl stop nginx"])
def test_5_a_process_stopped_by_hand_turns_ready_false_within_a_drift_period_then_is_repaired(
        real_world: RealWorld, real_namespace: str, served: Served, how: str) -> None:
    wait_for(real_world, real_namespace, NAME, "condition=Ready")
    if how == "pm2 stop":
        user = _pm2_user(served.host)
        served.host.run(["runuser", "-u", user, "--", "env", f"HOME=/home/{user}", "pm2", "stop", "all"])
    else:
        served.host.run(["systemctl", "stop", "nginx"])
    stopped = time.monotonic()
    broken = wait_for(real_world, real_namespace, NAME, "condition=Ready=false",
                      timeout=int(real_world.drift_seconds * 3 + 120))
    print(f"\n{how}: Ready False after {time.monotonic() - stopped:.1f} s "
          f"(drift period {real_world.drift_seconds:g} s)")
    ready = conditions(broken)["Ready"]
    assert ready["reason"], dump(ready)
    configured = conditions(broken).get("Configured", {})
    print(f"Ready reason {ready['reason']}; Configured {configured.get('reason')}: "
          f"{configured.get('message', '')[:300]}")
    healed = wait_for(real_world, real_namespace, NAME, "condition=Ready", timeout=600)
    print(f"{how}: repaired after {time.monotonic() - stopped:.1f} s")
    assert healed["status"]["lastCheckTime"]
    code, body = _get(real_world, served, HEALTH.path)
    assert code == 200 and _field(json.loads(body), HEALTH.body_field) == HEALTH.expect, body[-500:]


FLEET = "shops"
MEMBERS = {"fleet-a": 3011, "fleet-b": 3012}
"""Each member's API port: they share the server with the module's DI (3001), one listener each."""


def _fleet_manifest(world: RealWorld, namespace: str, served: Served) -> dict[str, Any]:
    """Two members on the served DI's server, a wave each; the server offers several host keys, which one an
    SSH client negotiates is its choice: trust the first seen."""
    template = world.existing_manifest("template", namespace, served.host, apps=(),
                                       ssh={**served.obj["spec"]["ssh"], "trustOnFirstUse": True})["spec"]
    del template["domain"]
    zone = template["dns"]["zone"]
    return {"apiVersion": "deploy.o4o.io/v1alpha1", "kind": "DeploymentFleet",
            "metadata": {"name": FLEET, "namespace": namespace},
            "spec": {"template": template,
                     "members": [{"name": name, "domain": f"{name}.{zone}", "overrides": {"apiPort": port}}
                                 for name, port in MEMBERS.items()],
                     "strategy": {"waves": [{"name": "first", "count": 1},
                                            {"name": "second", "percentage": 100}]}}}


def _wait_fleet(world: RealWorld, namespace: str, condition: str, timeout: int = 900) -> dict[str, Any]:
    result = world.control_plane.kubectl("wait", f"--for={condition}", f"dfleet/{FLEET}", "-n", namespace,
                                         f"--timeout={timeout}s", check=False, timeout=timeout + 30)
    current = world.control_plane.kubectl("get", "dfleet", FLEET, "-n", namespace, "-o", "json", check=False)
    if result.returncode != 0:
        members = world.control_plane.kubectl("get", "di", "-n", namespace, "-o", "wide", check=False).stdout
        log = world.operator.output()[-6000:] if world.operator else ""
        raise AssertionError(f"{condition}: {result.stderr}\nfleet: {current.stdout[-4000:]}\nmembers:\n{members}\n"
                             f"operator log:\n{log}")
    return json.loads(current.stdout)  # type: ignore[no-any-return]


def test_6_a_fleet_of_two_members_on_this_server_rolls_a_new_commit_in_two_waves_and_both_serve_it(
        real_world: RealWorld, real_namespace: str, served: Served) -> None:
    first, second = MEMBERS
    _, page_before = _get(real_world, served, "/")
    watch = MemberWatch(real_world.control_plane, real_namespace)
    try:
        started = time.monotonic()
        real_world.apply(_fleet_manifest(real_world, real_namespace, served))
        made = _wait_fleet(real_world, real_namespace, "condition=Ready")
        created = time.monotonic() - started
        for name in MEMBERS:
            print_stage_times(f"{name} created", real_world.get(name, real_namespace))
        assert made["status"]["target"]["commit"] == real_world.commit
        assert watch.violations(real_world.commit, first, [second]) == []

        marker = f"fleet release {uuid.uuid4().hex[:8]}"
        branch = f"fleet-{uuid.uuid4().hex[:6]}"
        commit = commit_to_branch(real_world.repository, branch, {SITE_PAGE: site_page(marker)}, "A fleet release")
        real_world.publish()
        rolling = time.monotonic()
        real_world.control_plane.kubectl("patch", "dfleet", FLEET, "-n", real_namespace, "--type=merge", "-p",
                                         json.dumps({"spec": {"template": {"source": {"revision": branch}}}}))
        _wait_fleet(real_world, real_namespace, f"jsonpath={{.status.target.commit}}={commit}")
        rolled = _wait_fleet(real_world, real_namespace, "condition=Ready")
        rolled_in = time.monotonic() - rolling
    finally:
        watch.stop()
    # Wave by wave, by the recorded states: the second member was pinned only once the first served the commit.
    assert watch.pinned(commit) == [first, second]
    assert watch.violations(commit, first, [second]) == []
    assert [(w["name"], w["updated"], w["failed"]) for w in rolled["status"]["waves"]] == [("first", 1, 0),
                                                                                           ("second", 1, 0)]
    first_updated = watch.first_seen(first, commit, updated=True)
    second_pinned = watch.first_seen(second, commit, updated=False)
    assert first_updated is not None and second_pinned is not None and second_pinned >= first_updated
    # Both serve the new commit over HTTPS, each from its own API; the module's DI still serves its own page.
    for name, port in MEMBERS.items():
        member = real_world.get(name, real_namespace)
        print_stage_times(f"{name} rolled", member)
        assert member["status"]["source"]["commit"] == commit, dump(member["status"])
        assert member["metadata"]["ownerReferences"][0]["uid"] == rolled["metadata"]["uid"]
        at = Served(member["spec"]["domain"], served.address, served.host, member)
        code, body = _get(real_world, at, "/")
        assert code == 200 and marker in body, body[-500:]
        code, body = _get(real_world, at, HEALTH.path)
        assert code == 200 and _field(json.loads(body), HEALTH.body_field) == HEALTH.expect, body[-500:]
        assert f":{port} " in served.host.run(["ss", "-Hltn"]).stdout
    code, body = _get(real_world, served, "/")
    assert code == 200 and body == page_before, body[-500:]
    print(f"\nfleet of {len(MEMBERS)} on one booted server: created Ready in {created:.1f} s, rolled to a new "
          f"commit in {rolled_in:.1f} s (wave 2 pinned {second_pinned - first_updated:.1f} s after wave 1 was "
          f"updated)")
