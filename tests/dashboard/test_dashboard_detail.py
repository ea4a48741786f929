"""The detail view model: Secret references only, the stage timeline, conditions, events."""

from __future__ import annotations

import datetime
import json

from dashboard_samples import STATES, body, spec, status_building, status_failed

from o4o_dashboard.detail import event_view, instance_detail, recent_events

NOW = datetime.datetime(2025, 3, 1, 11, 2, 30, tzinfo=datetime.UTC)


def test_spec_summary_shows_secret_references_and_nothing_unknown() -> None:
    spec_body = spec("shop.example.com")
    # Fields the schema does not have (a mistaken inline secret) must never be shown.
    spec_body["ssh"]["privateKey"] = "-----BEGIN OPENSSH PRIVATE KEY----- hunter2"
    spec_body["env"] = [{"name": "api-env", "value": "DATABASE_PASSWORD=hunter2"}]
    detail = instance_detail(body("shop", "ns", spec_body), [], NOW)
    fields = {f"{g.title}/{f.label}": f.value for g in detail.spec for f in g.fields}
    assert fields["SSH/Private key"] == "Secret deploy-key (key ssh-privatekey)"
    assert fields["Source/Credentials"] == "Secret git-token (key token)"
    assert fields["Provider/AWS credentials"] == (
        "Secret aws-keys (keys aws_access_key_id, aws_secret_access_key)")
    assert fields["Environment/Secrets"] == "Secret api-env"
    assert "hunter2" not in json.dumps(detail.to_json(NOW))


def test_stage_timeline_lists_all_ten_in_order_with_durations() -> None:
    detail = instance_detail(body("b", "ns", *STATES["building"]), [], NOW)
    assert [s.name for s in detail.stages] == ["provision", "dns", "runtime", "database", "source", "build-site",
                                               "build-api", "configure", "tls", "apps"]
    assert [s.state for s in detail.stages[:7]] == ["Succeeded"] * 5 + ["Running", "Pending"]
    assert detail.stages[0].duration == "42s"
    assert detail.stages[5].duration == "2m 30s"  # running: measured up to now
    assert detail.stages[6].duration == ""


def test_failed_stage_shows_attempts_reason_and_next_retry() -> None:
    detail = instance_detail(body("f", "ns", spec("f.example.com"), status_failed("boom")), [], NOW)
    tls = next(s for s in detail.stages if s.name == "tls")
    assert (tls.state, tls.attempts, tls.reason, tls.message, tls.duration) == (
        "Failed", 5, "RateLimited", "boom", "3m 05s")
    assert tls.next_retry_at == datetime.datetime(2025, 3, 1, 12, tzinfo=datetime.UTC)
    assert [c.type for c in detail.conditions] == ["Ready", "Reconciling", "Stalled"]
    assert detail.log_tail == ("Requesting certificate", "error: boom")


def test_a_stage_with_finish_before_start_has_no_duration() -> None:
    status = status_building()
    status["stages"][0]["finishedAt"] = "2025-03-01T09:00:00Z"
    assert instance_detail(body("b", "ns", spec("b.example.com"), status), [], NOW).stages[0].duration == ""


def _event(name: str, *, uid: str, at: str, reason: str = "Progress", count: int = 1) -> dict[str, object]:
    return {"metadata": {"name": name, "namespace": "ns", "creationTimestamp": at},
            "involvedObject": {"kind": "DeploymentInstance", "namespace": "ns", "name": "b", "uid": uid},
            "type": "Normal", "reason": reason, "message": f"{reason} {name}", "count": count,
            "lastTimestamp": at, "source": {"component": "o4o-operator"}}


def test_events_are_newest_first_and_exclude_an_earlier_object_of_the_same_name() -> None:
    events = [event_view(_event("e1", uid="uid-ns-b", at="2025-03-01T10:00:00Z")),
              event_view(_event("e2", uid="uid-ns-b", at="2025-03-01T10:05:00Z", count=3)),
              event_view(_event("old", uid="someone-else", at="2025-03-01T10:09:00Z"))]
    shown = recent_events(events, "uid-ns-b")
    assert [e.key for e in shown] == ["ns/e2", "ns/e1"]
    assert (shown[0].count, shown[0].source, shown[0].involved_name) == (3, "o4o-operator", "b")


def test_event_view_reads_events_k8s_io_style_fields() -> None:
    view = event_view({"metadata": {"name": "e", "namespace": "ns"},
                       "eventTime": "2025-03-01T10:00:00.123456Z",
                       "reportingComponent": "o4o", "series": {"count": 7},
                       "involvedObject": {"name": "b"}, "reason": "Created"})
    assert (view.count, view.source, view.involved_namespace) == (7, "o4o", "ns")
    assert view.last_seen == datetime.datetime(2025, 3, 1, 10, 0, 0, 123456, tzinfo=datetime.UTC)


def test_detail_json_has_everything_the_page_shows() -> None:
    document = instance_detail(body("b", "ns", *STATES["building"]), [], NOW).to_json(NOW)
    assert document["phase"] == "Building" and document["stageProgress"] == "5/10"
    assert document["spec"]["Site"]["Domain"] == "build.example.com"
    assert document["status"]["Server"]["IP address"] == "203.0.113.20"
    assert len(document["stages"]) == 10 and document["logTail"][-1] == "$ pnpm build"
    assert document["conditions"][0]["lastTransitionTime"] == "2025-03-01T10:05:00Z"
