"""View models for the instance list: rows, stats, filtering, sorting, paging.

Owns: turning a DeploymentInstance body into an :class:`InstanceRow`, the
health buckets the stats count, the list query (filters, sort, page) parsed
from URL parameters, and the human formats for ages and durations. Purely
computational: no I/O, no clock (callers pass ``now``). Must not read anything
but the object it is given, and never any Secret.
"""

from __future__ import annotations

import dataclasses
import datetime
import enum
import ipaddress
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any
from urllib.parse import urlencode

from o4o_dashboard import bodies
from o4o_operator.models import PAUSED_ANNOTATION, ConditionStatus, Phase, StageState
from o4o_operator.pipeline.stages import STAGE_COUNT

PHASE_ORDER: tuple[str, ...] = tuple(phase.value for phase in Phase)
DEPLOYING_PHASES = frozenset(
    {Phase.PENDING, Phase.PROVISIONING, Phase.INSTALLING, Phase.BUILDING, Phase.CONFIGURING}
)
_PROGRESS = re.compile(r"^\s*(\d+)\s*/\s*(\d+)\s*$")


class Health(enum.StrEnum):
    """The stats bucket an instance counts in."""

    READY = "ready"
    DEPLOYING = "deploying"
    FAILED = "failed"
    DELETING = "deleting"


@dataclasses.dataclass(frozen=True, slots=True)
class InstanceRow:
    """One line of the instance list, computed once when the object changes."""

    namespace: str
    name: str
    uid: str
    domain: str
    description: str
    phase: str
    health: Health
    stalled: bool
    paused: bool
    stages_succeeded: int
    stage_count: int
    ip_address: str
    created_at: datetime.datetime | None
    ready_reason: str
    ready_message: str

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"

    @property
    def progress_percent(self) -> int:
        if self.stage_count <= 0:
            return 0
        return round(100 * self.stages_succeeded / self.stage_count)

    def age_seconds(self, now: datetime.datetime) -> float | None:
        if self.created_at is None:
            return None
        return max(0.0, (now - self.created_at).total_seconds())

    def to_json(self, now: datetime.datetime) -> dict[str, Any]:
        return {
            "namespace": self.namespace,
            "name": self.name,
            "uid": self.uid,
            "domain": self.domain,
            "description": self.description,
            "phase": self.phase,
            "health": self.health.value,
            "stalled": self.stalled,
            "paused": self.paused,
            "stagesSucceeded": self.stages_succeeded,
            "stageCount": self.stage_count,
            "stageProgress": f"{self.stages_succeeded}/{self.stage_count}",
            "ipAddress": self.ip_address,
            "createdAt": iso(self.created_at),
            "ageSeconds": _whole(self.age_seconds(now)),
            "readyReason": self.ready_reason,
            "readyMessage": self.ready_message,
        }


def condition(status: Mapping[str, Any], condition_type: str) -> Mapping[str, Any]:
    """The condition of ``condition_type`` in a status body, or an empty mapping."""
    return next((c for c in bodies.mappings(status, "conditions") if c.get("type") == condition_type), {})


def stage_progress(status: Mapping[str, Any]) -> tuple[int, int]:
    """Stages succeeded out of all: counted from ``status.stages``, else parsed from ``stageProgress``."""
    stages = bodies.mappings(status, "stages")
    if stages:
        succeeded = sum(1 for stage in stages if stage.get("state") == StageState.SUCCEEDED.value)
        return succeeded, STAGE_COUNT
    match = _PROGRESS.fullmatch(bodies.text(status, "stageProgress"))
    if match:
        done, total = int(match.group(1)), int(match.group(2))
        return min(done, total), total or STAGE_COUNT
    return 0, STAGE_COUNT


def is_paused(body: Mapping[str, Any]) -> bool:
    """Paused by spec, by annotation, or reported so by the Reconciling condition."""
    if bodies.flag(body, "spec", "paused"):
        return True
    if bodies.text(body, "metadata", "annotations", PAUSED_ANNOTATION).lower() == "true":
        return True
    reconciling = condition(bodies.mapping(body, "status"), "Reconciling")
    return reconciling.get("status") == ConditionStatus.FALSE.value and reconciling.get("reason") == "Paused"


def health_of(phase: str, stalled: bool, deleting: bool) -> Health:
    if deleting or phase == Phase.DELETING.value:
        return Health.DELETING
    if stalled or phase == Phase.FAILED.value:
        return Health.FAILED
    if phase == Phase.READY.value:
        return Health.READY
    return Health.DEPLOYING


def instance_row(body: Mapping[str, Any]) -> InstanceRow:
    """The list row for a DeploymentInstance body (any shape; missing parts show as blanks)."""
    status = bodies.mapping(body, "status")
    phase = bodies.text(status, "phase") or Phase.PENDING.value
    stalled = condition(status, "Stalled").get("status") == ConditionStatus.TRUE.value
    deleting = bodies.lookup(body, "metadata", "deletionTimestamp") is not None
    ready = condition(status, "Ready")
    succeeded, total = stage_progress(status)
    return InstanceRow(
        namespace=bodies.text(body, "metadata", "namespace"),
        name=bodies.text(body, "metadata", "name"),
        uid=bodies.text(body, "metadata", "uid"),
        domain=bodies.text(body, "spec", "domain"),
        description=bodies.text(body, "spec", "description"),
        phase=phase,
        health=health_of(phase, stalled, deleting),
        stalled=stalled,
        paused=is_paused(body),
        stages_succeeded=succeeded,
        stage_count=total,
        ip_address=bodies.text(status, "server", "ipAddress"),
        created_at=bodies.timestamp(body, "metadata", "creationTimestamp"),
        ready_reason=bodies.text(ready, "reason"),
        ready_message=bodies.text(ready, "message"),
    )


# ---- stats --------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class Stats:
    total: int
    ready: int
    deploying: int
    failed: int

    def to_json(self) -> dict[str, int]:
        return dataclasses.asdict(self)


def stats_of(rows: Iterable[InstanceRow]) -> Stats:
    counts = dict.fromkeys(Health, 0)
    total = 0
    for row in rows:
        total += 1
        counts[row.health] += 1
    return Stats(total=total, ready=counts[Health.READY], deploying=counts[Health.DEPLOYING],
                 failed=counts[Health.FAILED])


# ---- the list query -------------------------------------------------------------

SORT_COLUMNS: tuple[str, ...] = ("name", "namespace", "domain", "phase", "progress", "ip", "age")
DEFAULT_PER_PAGE = 100
MAX_PER_PAGE = 1000


def _ip_order(row: InstanceRow) -> tuple[int, int, str]:
    try:
        address = ipaddress.ip_address(row.ip_address)
    except ValueError:
        return (2, 0, row.ip_address)
    return (address.version - 4, int(address), "")


def _phase_order(row: InstanceRow) -> int:
    return PHASE_ORDER.index(row.phase) if row.phase in PHASE_ORDER else len(PHASE_ORDER)


_NEVER = datetime.datetime.max.replace(tzinfo=datetime.UTC)
_SORT_KEYS: dict[str, Any] = {
    "name": lambda row: row.name,
    "namespace": lambda row: row.namespace,
    "domain": lambda row: row.domain,
    "phase": _phase_order,
    "progress": lambda row: row.stages_succeeded,
    "ip": _ip_order,
    # Youngest first when ascending by age: sort by creation time, newest first.
    "age": lambda row: -(row.created_at or _NEVER).timestamp(),
}


def _positive_int(value: str | None, default: int, maximum: int) -> int:
    if value is None or not value.strip().isdigit():
        return default
    return max(1, min(int(value), maximum))


@dataclasses.dataclass(frozen=True, slots=True)
class ListQuery:
    """Filters, sort and page of the list, as carried in URL parameters (lenient parsing)."""

    phase: str = ""
    namespace: str = ""
    search: str = ""
    sort: str = "name"
    descending: bool = False
    page: int = 1
    per_page: int = DEFAULT_PER_PAGE

    @classmethod
    def from_params(cls, params: Mapping[str, str]) -> ListQuery:
        sort = params.get("sort", "name")
        return cls(
            phase=params.get("phase", "").strip(),
            namespace=params.get("namespace", "").strip(),
            search=params.get("q", "").strip()[:253],
            sort=sort if sort in SORT_COLUMNS else "name",
            descending=params.get("dir", "asc") == "desc",
            page=_positive_int(params.get("page"), 1, 1_000_000),
            per_page=_positive_int(params.get("limit"), DEFAULT_PER_PAGE, MAX_PER_PAGE),
        )

    def params(self) -> dict[str, str]:
        """The non-default parameters, in a stable order."""
        default = ListQuery()
        wanted = {
            "phase": self.phase, "namespace": self.namespace, "q": self.search,
            "sort": self.sort if self.sort != default.sort else "",
            "dir": "desc" if self.descending else "",
            "page": str(self.page) if self.page != default.page else "",
            "limit": str(self.per_page) if self.per_page != default.per_page else "",
        }
        return {name: value for name, value in wanted.items() if value}

    def query_string(self, **changes: Any) -> str:
        return urlencode(dataclasses.replace(self, **changes).params())

    def sort_link(self, column: str) -> str:
        """The query string that sorts by ``column`` (toggling direction if already sorted by it)."""
        descending = not self.descending if column == self.sort else False
        return self.query_string(sort=column, descending=descending, page=1)

    def aria_sort(self, column: str) -> str:
        if column != self.sort:
            return "none"
        return "descending" if self.descending else "ascending"

    def matches(self, row: InstanceRow) -> bool:
        if self.phase and row.phase != self.phase:
            return False
        if self.namespace and row.namespace != self.namespace:
            return False
        if self.search:
            needle = self.search.lower()
            return needle in row.domain.lower() or needle in row.name.lower()
        return True


@dataclasses.dataclass(frozen=True, slots=True)
class ListPage:
    rows: tuple[InstanceRow, ...]
    matching: int
    page: int
    pages: int


def select_rows(rows: Iterable[InstanceRow], query: ListQuery) -> ListPage:
    """Filter, sort (ties broken by namespace and name) and cut out the requested page."""
    matching = [row for row in rows if query.matches(row)]
    matching.sort(key=lambda row: (row.namespace, row.name))
    matching.sort(key=_SORT_KEYS[query.sort], reverse=query.descending)
    pages = max(1, math.ceil(len(matching) / query.per_page))
    page = min(query.page, pages)
    start = (page - 1) * query.per_page
    return ListPage(rows=tuple(matching[start:start + query.per_page]), matching=len(matching),
                    page=page, pages=pages)


# ---- formats ----------------------------------------------------------------------


def iso(moment: datetime.datetime | None) -> str | None:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ") if moment is not None else None


def format_timestamp(moment: datetime.datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC") if moment is not None else "—"


def format_age(seconds: float | None) -> str:
    """A short age in kubectl's style: 45s, 12m, 5h, 3d."""
    if seconds is None:
        return "—"
    whole = int(seconds)
    if whole < 120:
        return f"{whole}s"
    if whole < 120 * 60:
        return f"{whole // 60}m"
    if whole < 48 * 3600:
        return f"{whole // 3600}h"
    return f"{whole // 86400}d"


def format_duration(seconds: float | None) -> str:
    """A stage duration: 12s, 3m 05s, 1h 02m, 2d 03h."""
    if seconds is None:
        return "—"
    whole = max(0, int(seconds))
    if whole < 60:
        return f"{whole}s"
    if whole < 3600:
        return f"{whole // 60}m {whole % 60:02d}s"
    if whole < 86400:
        return f"{whole // 3600}h {(whole % 3600) // 60:02d}m"
    return f"{whole // 86400}d {(whole % 86400) // 3600:02d}h"


def namespaces_of(rows: Sequence[InstanceRow]) -> list[str]:
    return sorted({row.namespace for row in rows})


def _whole(seconds: float | None) -> int | None:
    return int(seconds) if seconds is not None else None
