"""The backups panel of the instance page (o4o_dashboard.backups): pure view and template, no server."""

from __future__ import annotations

import datetime
import json
from typing import Any

from dashboard_samples import XSS, body, spec, status_ready

from o4o_dashboard.backups import backups_view, format_size, postgres_version
from o4o_dashboard.detail import instance_detail
from o4o_dashboard.web import template_environment

NOW = datetime.datetime(2025, 3, 1, 11, 2, 30, tzinfo=datetime.UTC)
SHA = "ab" * 32


def _status() -> dict[str, Any]:
    status = status_ready()
    status["database"] = {
        "backups": [
            {"id": "20250301T030000Z-0123456789ab", "time": "2025-03-01T03:00:00Z", "size": 1258291,
             "sha256": SHA, "postgresVersion": "140013", "commit": "0123456789abcdef" * 2 + "01234567",
             "key": "o4o/ns/shop/uid/20250301T030000Z-0123456789ab.dump", "reason": "schedule",
             "uploads": {"key": "o4o/ns/shop/uid/20250301T030000Z-0123456789ab.uploads.tar.gz", "size": 1048576,
                         "sha256": SHA}},
            {"id": "20250228T120000Z-0123456789ab", "time": "2025-02-28T12:00:00Z", "size": 512,
             "sha256": SHA, "postgresVersion": "90624", "commit": "0123456789ab", "key": "k", "reason": "migration"},
        ],
        "backupRequest": {"id": "before-upgrade", "outcome": "Failed", "time": "2025-03-01T10:00:00Z",
                          "message": f"BackupFailed: upload refused {XSS}"},
        "backupSchedule": "0 3 * * *", "nextScheduledBackup": "2025-03-02T03:00:00Z",
        "lastScheduledBackup": {"time": "2025-03-01T03:00:00Z", "outcome": "Succeeded",
                                "backupId": "20250301T030000Z-0123456789ab"},
    }
    return status


def test_the_view_lists_backups_outcomes_and_the_schedule_without_keys_or_checksums() -> None:
    view = backups_view(_status())
    first = view.backups[0]
    assert (first.id, first.size, first.uploads_size, first.commit, first.postgres_version, first.reason) == (
        "20250301T030000Z-0123456789ab", "2.2 MiB", "1.0 MiB", "0123456789ab", "14.13", "schedule")  # dump + uploads
    second = view.backups[1]
    assert (second.postgres_version, second.size, second.uploads_size) == ("9.6.24", "512 B", "")  # database only
    assert [(o.label, o.outcome) for o in view.outcomes] == [("Request before-upgrade", "Failed"),
                                                             ("Scheduled", "Succeeded")]
    assert view.schedule == "0 3 * * *"
    assert view.next_scheduled == datetime.datetime(2025, 3, 2, 3, tzinfo=datetime.UTC)
    shown = json.dumps(view.to_json())
    assert SHA not in shown and ".dump" not in shown and ".tar.gz" not in shown


def test_the_instance_page_shows_the_panel_escaped_and_leaves_it_out_without_backups() -> None:
    environment = template_environment()
    detail = instance_detail(body("shop", "ns", spec("shop.example.com"), _status()), [], NOW)
    html = environment.get_template("_detail.html").render(detail=detail, now=NOW, revision="1")
    assert 'id="backups"' in html and 'data-backup="20250301T030000Z-0123456789ab"' in html
    assert "Request before-upgrade" in html and "2.2 MiB <small>(uploads 1.0 MiB)</small>" in html and "14.13" in html
    assert XSS not in html and "&lt;img src=x" in html
    assert SHA not in html
    bare = instance_detail(body("bare", "ns", spec("bare.example.com"), status_ready()), [], NOW)
    assert 'id="backups"' not in environment.get_template("_detail.html").render(detail=bare, now=NOW,
                                                                                  revision="1")


def test_sizes_and_versions_read_as_people_write_them() -> None:
    assert [format_size(n) for n in (0, 1023, 1024, 5 * 1024 ** 3)] == ["0 B", "1023 B", "1.0 KiB", "5.0 GiB"]
    assert [postgres_version(v) for v in ("150013", "100001", "90624", "")] == ["15.13", "10.1", "9.6.24", ""]
