"""manifests/rbac against the real kube-apiserver's RBAC authorizer.

manifests/rbac is applied for real (server-side), then each question is asked *as* the
ServiceAccount: kubectl runs with a kubeconfig holding only that account's TokenRequest
token (not admin impersonation), and `kubectl auth can-i` asks the API server through a
SelfSubjectAccessReview. A few answers are then checked with real requests too.

Not covered: ClusterRole aggregation into edit/view/admin (done by kube-controller-manager,
which this control plane does not run); the editor/viewer roles are bound directly instead.
"""

from __future__ import annotations

import asyncio
import json
import ssl
import subprocess
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest
from delivery_support import MANIFESTS

from o4o_operator.kubeapi import Credentials, KubeApi
from o4o_operator.testing import ControlPlane

SYSTEM_NAMESPACE = "o4o-system"
TENANT = "o4o-delivery-tenant"  # stands for any namespace holding DeploymentInstances
DI = "deploymentinstances.deploy.o4o.io"
FLEET = "deploymentfleets.deploy.o4o.io"


@dataclass(frozen=True)
class Ask:
    verb: str
    resource: str
    allowed: bool
    namespace: str | None = TENANT  # None: all namespaces (-A) or cluster-scoped
    subresource: str | None = None

    def __str__(self) -> str:
        sub = f"/{self.subresource}" if self.subresource else ""
        where = self.namespace or "cluster"
        return f"{'may' if self.allowed else 'not'}-{self.verb}-{self.resource}{sub}-{where}"


class Account:
    """kubectl (or a raw HTTPS request) as one ServiceAccount, authenticated by its own token."""

    def __init__(self, control_plane: ControlPlane, token: str, directory: Path) -> None:
        self._control_plane = control_plane
        self._token = token
        self.token = token
        self._kubectl = control_plane.assets / "kubectl"
        self._kubeconfig = control_plane.kubeconfig_for_token(token, directory / "kubeconfig")
        self._cache = directory / "cache"

    def request(self, method: str, path: str, body: object = None,
                content_type: str = "application/json") -> tuple[int, str]:
        assert self._control_plane.pki is not None
        context = ssl.create_default_context(cafile=str(self._control_plane.pki.ca_cert))
        request = urllib.request.Request(  # noqa: S310 - https to the test apiserver
            self._control_plane.server + path, method=method,
            data=None if body is None else json.dumps(body).encode(),
            headers={"Authorization": f"Bearer {self._token}", "Content-Type": content_type})
        try:
            with urllib.request.urlopen(request, context=context, timeout=30) as response:  # noqa: S310
                return int(response.status), response.read().decode()
        except urllib.error.HTTPError as error:
            return int(error.code), error.read().decode()

    def run(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(self._kubectl), f"--kubeconfig={self._kubeconfig}",
                               f"--cache-dir={self._cache}", *args],
                              input=stdin, capture_output=True, text=True, check=False, timeout=60)

    def can(self, ask: Ask) -> bool:
        args = ["auth", "can-i", ask.verb, ask.resource]
        args += ["-n", ask.namespace] if ask.namespace else ["--all-namespaces"]
        if ask.subresource:
            args.append(f"--subresource={ask.subresource}")
        result = self.run(*args)
        answer = result.stdout.strip()
        assert answer in {"yes", "no"}, f"kubectl {' '.join(args)}: {result.stdout}{result.stderr}"
        return answer == "yes"

    def username(self) -> str:
        result = self.run("auth", "whoami", "-o", "json")
        assert result.returncode == 0, result.stderr
        return str(json.loads(result.stdout)["status"]["userInfo"]["username"])


def account(control_plane: ControlPlane, name: str, namespace: str, directory: Path) -> Account:
    directory.mkdir(parents=True, exist_ok=True)
    return Account(control_plane, control_plane.token_for(name, namespace), directory)


@pytest.fixture(scope="module")
def rbac_applied(control_plane: ControlPlane) -> None:
    control_plane.kubectl("apply", "--server-side", "--field-manager=o4o-delivery-tests",
                          "-f", str(MANIFESTS / "operator" / "namespace.yaml"))
    if control_plane.kubectl("get", "namespace", TENANT, check=False).returncode != 0:
        control_plane.create_namespace(TENANT)
    control_plane.kubectl("apply", "--server-side", "--field-manager=o4o-delivery-tests",
                          "-k", str(MANIFESTS / "rbac"))


@pytest.fixture(scope="module")
def operator(control_plane: ControlPlane, rbac_applied: None,
             tmp_path_factory: pytest.TempPathFactory) -> Account:
    return account(control_plane, "o4o-operator", SYSTEM_NAMESPACE, tmp_path_factory.mktemp("operator"))


@pytest.fixture(scope="module")
def dashboard(control_plane: ControlPlane, rbac_applied: None,
              tmp_path_factory: pytest.TempPathFactory) -> Account:
    return account(control_plane, "o4o-dashboard", SYSTEM_NAMESPACE, tmp_path_factory.mktemp("dashboard"))


def test_the_accounts_are_who_they_claim(operator: Account, dashboard: Account) -> None:
    """Guards the table below: an admin credential would answer yes to everything."""
    assert operator.username() == f"system:serviceaccount:{SYSTEM_NAMESPACE}:o4o-operator"
    assert dashboard.username() == f"system:serviceaccount:{SYSTEM_NAMESPACE}:o4o-dashboard"


OPERATOR_TABLE = [
    # framework (Kopf)
    Ask("list", DI, True, None),
    Ask("watch", DI, True, None),
    Ask("get", DI, True),
    Ask("patch", DI, True),
    Ask("patch", DI, True, subresource="status"),
    Ask("update", DI, True, subresource="status"),
    Ask("list", "namespaces", True, None),
    Ask("watch", "namespaces", True, None),
    Ask("list", "customresourcedefinitions.apiextensions.k8s.io", True, None),
    Ask("watch", "customresourcedefinitions.apiextensions.k8s.io", True, None),
    # application
    Ask("list", FLEET, True, None),
    Ask("watch", FLEET, True, None),
    Ask("patch", FLEET, True),
    Ask("patch", FLEET, True, subresource="status"),
    Ask("create", "events", True),
    Ask("create", DI, True),  # a fleet's members, owned by the fleet
    Ask("delete", DI, True),  # a member removed from its fleet
    Ask("get", "secrets", True),
    Ask("patch", "secrets", True),  # its own finalizer on held Secrets, keys of its own <name>-database
    Ask("create", "secrets", True),  # its own <name>-database (runner/generated_secret.py)
    Ask("delete", "secrets", True),  # that Secret on teardown, after the ownership test
    Ask("create", "configmaps", True),
    Ask("patch", "configmaps", True),
    Ask("delete", "configmaps", True),
    # denied: more than it needs
    Ask("list", "secrets", False),
    Ask("list", "secrets", False, None),
    Ask("watch", "secrets", False),
    Ask("update", "secrets", False),
    Ask("get", "configmaps", False),
    Ask("list", "configmaps", False),
    Ask("patch", "events", False),
    Ask("update", DI, False),
    Ask("create", FLEET, False),
    Ask("delete", FLEET, False),
    Ask("update", FLEET, False),
    Ask("delete", "namespaces", False, None),
    Ask("create", "namespaces", False, None),
    Ask("create", "deployments.apps", False),
    Ask("create", "pods", False),
    Ask("create", "serviceaccounts", False, subresource="token"),
    Ask("create", "clusterkopfpeerings.kopf.dev", False, None),
    Ask("update", "customresourcedefinitions.apiextensions.k8s.io", False, None),
    Ask("escalate", "clusterroles.rbac.authorization.k8s.io", False, None),
    Ask("bind", "clusterroles.rbac.authorization.k8s.io", False, None),
    Ask("create", "clusterrolebindings.rbac.authorization.k8s.io", False, None),
    Ask("impersonate", "serviceaccounts", False),
]


LEASE = "leases.coordination.k8s.io"
OPERATOR_TABLE += [
    # leader election (framework): the one Lease in its own namespace
    Ask("create", LEASE, True, SYSTEM_NAMESPACE),
    Ask("get", f"{LEASE}/o4o-operator", True, SYSTEM_NAMESPACE),
    Ask("update", f"{LEASE}/o4o-operator", True, SYSTEM_NAMESPACE),
    Ask("get", f"{LEASE}/someone-elses", False, SYSTEM_NAMESPACE),
    Ask("update", f"{LEASE}/someone-elses", False, SYSTEM_NAMESPACE),
    Ask("patch", f"{LEASE}/o4o-operator", False, SYSTEM_NAMESPACE),
    Ask("delete", f"{LEASE}/o4o-operator", False, SYSTEM_NAMESPACE),
    Ask("list", LEASE, False, SYSTEM_NAMESPACE),
    Ask("watch", LEASE, False, SYSTEM_NAMESPACE),
    Ask("create", LEASE, False),
    Ask("get", f"{LEASE}/o4o-operator", False),
    Ask("update", f"{LEASE}/o4o-operator", False, "kube-system"),
]


@pytest.mark.parametrize("ask", OPERATOR_TABLE, ids=str)
def test_operator_permissions(operator: Account, ask: Ask) -> None:
    assert operator.can(ask) is ask.allowed


DASHBOARD_TABLE = [
    *(Ask(verb, DI, True, namespace) for verb in ("get", "list", "watch") for namespace in (TENANT, None)
      if not (verb == "get" and namespace is None)),
    *(Ask(verb, "events", True, namespace) for verb in ("list", "watch") for namespace in (TENANT, None)),
    Ask("get", "events", True),
    *(Ask(verb, DI, False) for verb in ("create", "patch", "update", "delete", "deletecollection")),
    Ask("patch", DI, False, subresource="status"),
    Ask("create", "events", False),
    Ask("delete", "events", False),
    Ask("get", "secrets", False),
    Ask("list", "secrets", False, None),
    Ask("get", "configmaps", False),
    Ask("list", "pods", False),
]


@pytest.mark.parametrize("ask", DASHBOARD_TABLE, ids=str)
def test_dashboard_permissions(dashboard: Account, ask: Ask) -> None:
    assert dashboard.can(ask) is ask.allowed


def test_operator_reads_a_named_secret_but_cannot_enumerate_them(control_plane: ControlPlane,
                                                                 operator: Account) -> None:
    """Real requests, not just SelfSubjectAccessReviews."""
    manifest = control_plane.kubectl("create", "secret", "generic", "shop-ssh", "-n", TENANT,
                                     "--from-literal=ssh-privatekey=not-a-real-key",
                                     "--dry-run=client", "-o", "yaml").stdout
    control_plane.kubectl("apply", "--server-side", "--field-manager=o4o-delivery-tests", "-f", "-",
                          input=manifest)
    got = operator.run("get", "secret", "shop-ssh", "-n", TENANT, "-o", "jsonpath={.metadata.name}")
    assert (got.returncode, got.stdout) == (0, "shop-ssh"), got.stderr
    listed = operator.run("get", "secrets", "-n", TENANT)
    assert listed.returncode != 0
    assert "Forbidden" in listed.stderr
    status, _ = operator.request("GET", f"/api/v1/namespaces/{TENANT}/secrets/shop-ssh")
    assert status == 200, "kubeapi.read_secret's exact request"


def test_operator_writes_its_log_configmap_and_events(control_plane: ControlPlane, operator: Account) -> None:
    """o4o_operator.kubeapi's own requests, sent by KubeApi under the operator's token: create, update,
    the ownership test on a foreign ConfigMap, release (deletionPolicy: Retain) and adoption by an
    instance of that name, delete; then an Event."""
    owner = {"metadata": {"name": "shop", "namespace": TENANT, "uid": "u-1"}}
    successor = {"metadata": {"name": "shop", "namespace": TENANT, "uid": "u-2"}}
    control_plane.kubectl("create", "configmap", "other-log", "-n", TENANT, "--from-literal=log=theirs")

    async def write_and_delete() -> list[bool]:
        assert control_plane.pki is not None
        kube = KubeApi(Credentials(server=control_plane.server, ca_path=str(control_plane.pki.ca_cert),
                                   token=operator.token), attempts=1)
        try:
            return [await kube.apply_configmap(TENANT, "shop-log", {"log": "Created server\n"}, owner, {}),
                    await kube.apply_configmap(TENANT, "shop-log", {"log": "Installed runtime\n"}, owner, {}),
                    await kube.apply_configmap(TENANT, "other-log", {"log": "ours"}, owner, {}),
                    await kube.delete_configmap(TENANT, "other-log", "u-1"),
                    await kube.release_owned("configmaps", TENANT, "shop-log", "u-1"),
                    await kube.adopt_released("configmaps", TENANT, "shop-log", successor, {}) is not None,
                    await kube.delete_configmap(TENANT, "shop-log", "u-2")]
        finally:
            await kube.close()

    assert asyncio.run(write_and_delete()) == [True, True, False, False, True, True, True]
    assert control_plane.kubectl("get", "cm", "shop-log", "-n", TENANT, check=False).returncode != 0
    assert control_plane.kubectl("get", "cm", "other-log", "-n", TENANT, "-o", "jsonpath={.data.log}").stdout \
        == "theirs"
    event = {"apiVersion": "v1", "kind": "Event",
             "metadata": {"name": "shop.0123456789ab", "namespace": TENANT},
             "involvedObject": {"apiVersion": "deploy.o4o.io/v1alpha1", "kind": "DeploymentInstance",
                                "name": "shop", "namespace": TENANT, "uid": "u-1"},
             "reason": "Provisioned", "message": "Created server", "type": "Normal",
             "source": {"component": "o4o-operator"}, "count": 1}
    status, body = operator.request("POST", f"/api/v1/namespaces/{TENANT}/events", event, "application/json")
    assert status == 201, body
    status, body = operator.request("GET", f"/api/v1/namespaces/{TENANT}/configmaps")
    assert status == 403, "list configmaps must be refused"


@pytest.mark.parametrize(("role", "allowed", "denied"), [
    ("deploymentinstance-editor-role",
     [Ask("create", DI, True), Ask("delete", DI, True), Ask("patch", DI, True), Ask("watch", DI, True),
      Ask("get", DI, True, subresource="status")],
     [Ask("patch", DI, False, subresource="status"), Ask("get", "secrets", False)]),
    ("deploymentinstance-viewer-role",
     [Ask("get", DI, True), Ask("list", DI, True), Ask("watch", DI, True),
      Ask("get", DI, True, subresource="status")],
     [Ask("create", DI, False), Ask("delete", DI, False), Ask("patch", DI, False),
      Ask("get", "secrets", False)]),
])
def test_user_roles(control_plane: ControlPlane, rbac_applied: None, namespace: str, tmp_path: Path,
                    role: str, allowed: list[Ask], denied: list[Ask]) -> None:
    """Bound directly in one namespace (aggregation into edit/view needs kube-controller-manager)."""
    control_plane.kubectl("create", "rolebinding", "user", "-n", namespace, f"--clusterrole={role}",
                          f"--serviceaccount={namespace}:user")
    user = account(control_plane, "user", namespace, tmp_path)
    for ask in [*allowed, *denied]:
        placed = Ask(ask.verb, ask.resource, ask.allowed, namespace, ask.subresource)
        assert user.can(placed) is ask.allowed, placed
    elsewhere = Ask("get", DI, False, TENANT)
    assert user.can(elsewhere) is False, "a RoleBinding grants nothing outside its namespace"


async def test_operator_holds_its_lease_with_its_own_token(control_plane: ControlPlane, operator: Account) -> None:
    """The elector's own requests (get, create, update behind the resourceVersion) pass as the operator."""
    from o4o_operator.kubeapi_lease import LeaseApi
    from o4o_operator.kubeapi_transport import Credentials, KubeTransport
    from o4o_operator.pipeline.election import ElectionTimings
    from o4o_operator.runner.leader import LeaderElector

    assert control_plane.pki is not None
    transport = KubeTransport(Credentials(server=control_plane.server, ca_path=str(control_plane.pki.ca_cert),
                                          token=operator.token), attempts=1)
    try:
        elector = LeaderElector(LeaseApi(transport, SYSTEM_NAMESPACE, "o4o-operator"), "rbac-test", ElectionTimings())
        term = await elector.try_acquire()
        assert term is not None
        api = LeaseApi(transport, SYSTEM_NAMESPACE, "o4o-operator")
        created = await api.read()
        await elector.renew(term)  # an update: a refusal would only be logged, so look at the Lease
        renewed = await api.read()
        assert created is not None and renewed is not None and term.deposed is None
        assert renewed.resource_version != created.resource_version and renewed.holder == "rbac-test"
        await elector.release(term)
        released = await api.read()
        assert released is not None and released.holder == ""
    finally:
        await transport.close()
