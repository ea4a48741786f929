"""The status a worker keeps of what it wrote: packed small, compared without unpacking, read back exactly."""

from __future__ import annotations

import json
from typing import Any

from o4o_operator.runner.written_status import WrittenStatus, pack


def ready_status(lines: int = 100) -> dict[str, Any]:
    """Shaped like a Ready instance's status: conditions, stage records and a full log tail."""
    stages = [{"name": f"stage-{index}", "state": "Succeeded", "attempts": 1, "inputsHash": f"{index:064x}",
               "message": f"Stage {index}: done", "startedAt": "2026-12-07T04:00:00Z",
               "finishedAt": "2026-12-07T04:01:00Z"} for index in range(9)]
    log = [f"04:00:{index % 60:02d} [configure] nginx: configuration file /etc/nginx/nginx.conf test is successful"
           f" (line {index})" for index in range(lines)]
    return {"phase": "Ready", "conditions": [{"type": "Ready", "status": "True", "reason": "AllStagesSucceeded",
                                               "message": "All 9 stages succeeded"}], "stages": stages, "logTail": log}


def test_a_ready_status_is_held_in_a_fifth_of_its_text() -> None:
    body = ready_status()
    assert len(WrittenStatus.of(body).packed) * 5 < len(json.dumps(body))


def test_it_reads_back_exactly_what_was_packed() -> None:
    body = ready_status()
    assert WrittenStatus.of(body).body() == body


def test_equal_bodies_match_whatever_their_key_order_and_a_change_does_not() -> None:
    body = ready_status()
    written = WrittenStatus.of(body)
    reordered = dict(reversed(list(body.items())))
    assert written.is_packed(pack(reordered))
    changed = {**body, "logTail": [*body["logTail"], "one more line"]}
    assert not written.is_packed(pack(changed))
