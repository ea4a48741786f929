"""Public test peers, like ``kopf.testing``: shared by tests, ``make dev`` and benchmarks.

- :class:`ControlPlane`: a real etcd + kube-apiserver on loopback.
- ``LocalLightsail``: a local endpoint speaking Lightsail's JSON protocol.
- ``SandboxHost``: a real OpenSSH sshd on loopback with PATH shims.

Must never be imported by shipped operator code (an import-linter contract says so).
"""

from o4o_operator.testing.controlplane import ControlPlane, ControlPlaneError
from o4o_operator.testing.fixture_repo import commit_files, make_fixture_repo
from o4o_operator.testing.lightsail import LocalLightsail
from o4o_operator.testing.sandbox import SandboxHost, ShimCall

__all__ = ["ControlPlane", "ControlPlaneError", "LocalLightsail", "SandboxHost", "ShimCall", "commit_files",
           "make_fixture_repo"]
