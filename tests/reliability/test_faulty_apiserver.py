"""The fault-injecting proxy R2 puts in front of the apiserver: 409s where asked, watches streamed."""

from __future__ import annotations

import gc
import http.client
import json
import ssl
import warnings

import pytest

from o4o_operator.testing import ControlPlane
from o4o_operator.testing.faulty_apiserver import FaultyApiserver

pytestmark = pytest.mark.slow


def test_the_proxy_answers_conflicts_to_chosen_writes_and_streams_watches(control_plane: ControlPlane,
                                                                          namespace: str) -> None:
    with FaultyApiserver(control_plane, conflict_rate=1.0, seed=7, path_pattern="/configmaps/") as proxy:
        kubeconfig = proxy.write_kubeconfig(proxy.directory / "kubeconfig")
        kubectl = [f"--kubeconfig={kubeconfig}", "-n", namespace]
        connection = http.client.HTTPSConnection("127.0.0.1", proxy.port, timeout=30,
                                                 context=ssl.create_default_context(cafile=str(proxy.ca_path)))
        connection.request("GET", f"/api/v1/namespaces/{namespace}/configmaps?watch=1")
        watch = connection.getresponse()
        assert watch.status == 200

        control_plane.kubectl(*kubectl, "create", "configmap", "seen", "--from-literal=a=b")
        event = json.loads(watch.readline())  # arrives while the watch stays open
        connection.close()
        patch = control_plane.kubectl(*kubectl, "patch", "configmap", "seen", "-p", '{"data":{"a":"c"}}',
                                      check=False)
        other = control_plane.kubectl(f"--kubeconfig={kubeconfig}", "label", "namespace", namespace, "checked=yes")

        assert (event["type"], event["object"]["metadata"]["name"]) == ("ADDED", "seen")
        assert patch.returncode != 0 and "(Conflict)" in patch.stderr and "has been modified" in patch.stderr
        assert other.returncode == 0  # a write the pattern does not choose goes through
        assert proxy.stats.conflicts == 1 and proxy.stats.watches == 1, proxy.stats


def test_stopping_leaves_no_socket_open_though_a_client_never_answers_the_tls_close(control_plane: ControlPlane,
                                                                                     namespace: str) -> None:
    """A client with a watch open that never reads again: the proxy's TLS close waits for its close_notify, and
    the loop used to go first, leaving both sockets (the client's and the upstream one) to the garbage collector,
    whose ResourceWarnings failed a later test on the same worker."""
    proxy = FaultyApiserver(control_plane).start()
    connection = http.client.HTTPSConnection("127.0.0.1", proxy.port, timeout=30,
                                             context=ssl.create_default_context(cafile=str(proxy.ca_path)))
    try:
        connection.request("GET", f"/api/v1/namespaces/{namespace}/configmaps?watch=1")
        assert connection.getresponse().status == 200
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ResourceWarning)
            proxy.stop()
            del proxy
            gc.collect()
        leaked = [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)]
        assert leaked == []
    finally:
        connection.close()
