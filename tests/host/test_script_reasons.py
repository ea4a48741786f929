"""A script's reason, however long or odd, ends as a status the real apiserver accepts and a bounded label.

The script runs over SSH on a sandbox host; its failure goes through the same pipeline transitions
the worker uses, and the resulting status is written to a DeploymentInstance on the control plane.
"""

from __future__ import annotations

import datetime
import json
import re
import shlex
from typing import Any

import pytest

from o4o_operator import metrics
from o4o_operator.errors import KNOWN_REASONS, REASON_MAX_LENGTH, StageError
from o4o_operator.models import DeploymentInstanceStatus
from o4o_operator.pipeline.decisions import Stall
from o4o_operator.pipeline.stages import STAGES_BY_NAME, StageName
from o4o_operator.pipeline.transitions import with_stage_failed, with_stage_started, with_summary
from o4o_operator.providers.ssh import SshSession
from o4o_operator.testing import ControlPlane

REASON = re.compile(r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$")
GARBAGE = {  # case: (what the script prints as its reason, the metric label expected)
    "long": ("Reason" + "X" * 400, "Other"),
    "one-too-long": ("A" * 129, "Other"),
    "not-camel-case": ("bad-reason:$(id)", "CommandFailed"),  # not a marker: the exit status (65) decides
}
NOW = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)


def _instance(namespace: str, name: str) -> dict[str, Any]:
    return {"apiVersion": "deploy.o4o.io/v1alpha1", "kind": "DeploymentInstance",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"domain": "shop.example.com", "provider": {"existing": {"host": "198.51.100.1"}},
                     "ssh": {"privateKeySecretRef": {"name": "ssh"}, "trustOnFirstUse": True},
                     "source": {"repository": "https://example.com/o4o.git"}, "tls": {"email": "ops@example.com"}}}


def _failures(reason: str) -> float:
    return metrics.REGISTRY.get_sample_value("o4o_stage_failures_total",
                                             {"stage": "source", "reason": reason}) or 0.0


@pytest.mark.parametrize("case", sorted(GARBAGE))
async def test_a_script_printing_a_garbage_reason_still_yields_a_valid_status(
        session: SshSession, control_plane: ControlPlane, namespace: str, case: str) -> None:
    garbage, label = GARBAGE[case]
    script = f"echo working\nprintf '::o4o::permanent reason=%s %s\\n' {shlex.quote(garbage)} 'it broke'\nexit 65\n"
    with pytest.raises(StageError) as caught:
        await session.run(script, timeout=30, log=lambda line: None)
    error = caught.value
    assert not error.transient
    assert len(error.reason) <= REASON_MAX_LENGTH and REASON.match(error.reason), error.reason

    stage = STAGES_BY_NAME[StageName.SOURCE]
    status = with_stage_started(DeploymentInstanceStatus(), stage, "hash", 1, NOW)
    status = with_stage_failed(status, stage, error, "uid", NOW)
    status = with_summary(status, Stall(stage, error.reason, error.message), {}, 1, NOW)
    name = f"garbage-{case}"
    control_plane.kubectl("create", "-f", "-", "-n", namespace, input=json.dumps(_instance(namespace, name)))
    written = status.to_body()
    result = control_plane.kubectl("patch", "di", name, "-n", namespace, "--subresource=status", "--type=merge",
                                   "-p", json.dumps({"status": written}), check=False)
    assert result.returncode == 0, result.stderr
    stored = json.loads(control_plane.kubectl("get", "di", name, "-n", namespace, "-o", "json").stdout)["status"]
    assert stored == written
    stalled = next(c for c in stored["conditions"] if c["type"] == "Stalled")
    assert stalled["status"] == "True" and stalled["reason"] == error.reason

    before = _failures(label)
    metrics.count_stage_failure("source", error.reason)
    assert _failures(label) == before + 1
    assert label in KNOWN_REASONS | {"Other"}
    if label == "Other":
        assert _failures(error.reason) == 0.0


async def test_a_known_script_reason_keeps_its_own_label(session: SshSession) -> None:
    with pytest.raises(StageError) as caught:
        await session.run("printf '::o4o::permanent reason=RevisionNotFound no such branch\\n'\nexit 65\n",
                          timeout=30, log=lambda line: None)
    assert caught.value.reason == "RevisionNotFound"
    before = _failures("RevisionNotFound")
    metrics.count_stage_failure("source", caught.value.reason)
    assert _failures("RevisionNotFound") == before + 1
