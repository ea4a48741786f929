"""DNS comes from the cloud's state: the records in the local Lightsail and in moto's Route 53 are what
challtestsrv answers.

Owns: turning both sources into one wanted record set (A, AAAA, TXT, CNAME), and pushing
only the differences to challtestsrv, under one lock, whenever a source changes. The local
Lightsail notifies synchronously (``LightsailState.subscribe_domains``), so a record
resolves once ``CreateDomainEntry`` has returned; Route 53 is polled in a thread (and
:meth:`DnsFeed.sync` forces a round). A failure to push is kept in :attr:`DnsFeed.errors`
and retried at the next sync; it never fails the cloud API call that caused it.

Must not: invent records, or answer DNS itself (challtestsrv does).
"""

from __future__ import annotations

import ipaddress
import logging
import threading
from collections.abc import Callable
from types import TracebackType
from typing import Any, Protocol

from o4o_operator.testing.lightsail_domains import LocalDomainEntry

RecordKey = tuple[str, str]
"""(lower-case name without the trailing dot, record type)."""
RecordSet = dict[RecordKey, tuple[str, ...]]
SUPPORTED_TYPES = frozenset({"A", "AAAA", "TXT", "CNAME"})
logger = logging.getLogger(__name__)


class RecordSink(Protocol):
    """What the feed writes to (``acme.ChallTestServer`` is one)."""

    def set_a(self, host: str, addresses: list[str]) -> None: ...
    def set_aaaa(self, host: str, addresses: list[str]) -> None: ...
    def set_txt(self, host: str, values: list[str]) -> None: ...
    def set_cname(self, host: str, target: str | None) -> None: ...


def _unquote(value: str) -> str:
    """``"v=spf1" "-all"`` (zone-file style, as Route 53 stores TXT) -> ``v=spf1-all``; bare text stays."""
    value = value.strip()
    if len(value) >= 2 and value.startswith('"') and value.endswith('"'):
        return "".join(value[1:-1].split('" "')).replace('\\"', '"')
    return value


def _is_address(value: str, version: int) -> bool:
    try:
        return ipaddress.ip_address(value).version == version
    except ValueError:
        return False


def _add(records: dict[RecordKey, list[str]], name: str, kind: str, value: str) -> None:
    name = name.strip().rstrip(".").lower()
    if kind not in SUPPORTED_TYPES or not name:
        return
    if kind == "A" and not _is_address(value, 4):  # an alias to a load balancer name, not an address
        return
    if kind == "AAAA" and not _is_address(value, 6):
        return
    if kind == "TXT":
        value = _unquote(value)
    if kind == "CNAME":
        value = value.strip().rstrip(".").lower()
    bucket = records.setdefault((name, kind), [])
    if value not in bucket:
        bucket.append(value)


def lightsail_records(entries: list[LocalDomainEntry]) -> RecordSet:
    records: dict[RecordKey, list[str]] = {}
    for entry in entries:
        _add(records, entry.name, entry.type, entry.target)
    return {key: tuple(values) for key, values in records.items()}


def route53_records(route53: Any) -> RecordSet:
    """Every supported record in every hosted zone of a boto3 Route 53 client (simple routing only)."""
    records: dict[RecordKey, list[str]] = {}
    for page in route53.get_paginator("list_hosted_zones").paginate():
        for zone in page["HostedZones"]:
            for rr_page in route53.get_paginator("list_resource_record_sets").paginate(HostedZoneId=zone["Id"]):
                for record_set in rr_page["ResourceRecordSets"]:
                    for value in record_set.get("ResourceRecords", []):
                        _add(records, record_set["Name"], record_set["Type"], value["Value"])
    return {key: tuple(values) for key, values in records.items()}


def merge(*sources: RecordSet) -> RecordSet:
    merged: dict[RecordKey, list[str]] = {}
    for source in sources:
        for key, values in source.items():
            bucket = merged.setdefault(key, [])
            bucket.extend(v for v in values if v not in bucket)
    return {key: tuple(values) for key, values in merged.items()}


def _push(sink: RecordSink, key: RecordKey, values: tuple[str, ...]) -> None:
    name, kind = key
    if kind == "A":
        sink.set_a(name, list(values))
    elif kind == "AAAA":
        sink.set_aaaa(name, list(values))
    elif kind == "TXT":
        sink.set_txt(name, list(values))
    else:
        sink.set_cname(name, values[0] if values else None)


class DnsFeed:
    """Keeps ``sink`` equal to the union of the attached sources. Context manager; ``stop`` detaches."""

    def __init__(self, sink: RecordSink, *, poll_interval: float = 0.5) -> None:
        self.sink = sink
        self.poll_interval = poll_interval
        self.errors: list[str] = []
        self._sources: dict[str, Callable[[], RecordSet]] = {}
        self._pushed: RecordSet = {}
        self._lock = threading.RLock()
        self._unsubscribes: list[Callable[[], None]] = []
        self._stopping = threading.Event()
        self._poller: threading.Thread | None = None

    # ---- sources ------------------------------------------------------------------

    def add_source(self, name: str, read: Callable[[], RecordSet]) -> None:
        with self._lock:
            self._sources[name] = read
        self.sync()

    def follow_lightsail(self, state: Any) -> None:
        """Follow a ``LightsailState`` (``LocalLightsail.state``): every domain change syncs at once."""
        with self._lock:
            self._sources["lightsail"] = lambda: lightsail_records(state.domain_entries())
        self._unsubscribes.append(state.subscribe_domains(self.sync))

    def follow_route53(self, route53: Any) -> None:
        """Follow a boto3 Route 53 client (moto): polled every ``poll_interval`` seconds."""
        self.add_source("route53", lambda: route53_records(route53))
        if self._poller is None:
            self._poller = threading.Thread(target=self._poll, name="dns-feed-route53", daemon=True)
            self._poller.start()

    # ---- syncing ------------------------------------------------------------------------

    def wanted(self) -> RecordSet:
        with self._lock:
            return merge(*(read() for read in self._sources.values()))

    def sync(self) -> None:
        """Read every source and push what differs from the last push. Never raises; see ``errors``."""
        with self._lock:
            try:
                wanted = self.wanted()
                for key in sorted(set(self._pushed) | set(wanted)):
                    values = wanted.get(key, ())
                    if self._pushed.get(key, ()) != values:
                        _push(self.sink, key, values)
                        if values:
                            self._pushed[key] = values
                        else:
                            self._pushed.pop(key, None)
            except Exception as error:  # a source or the sink is down: keep going, retry next time
                self.errors.append(f"{type(error).__name__}: {error}")
                logger.warning("DNS feed could not sync: %s", error)

    def _poll(self) -> None:
        while not self._stopping.wait(self.poll_interval):
            self.sync()

    def stop(self) -> None:
        self._stopping.set()
        for unsubscribe in self._unsubscribes:
            unsubscribe()
        self._unsubscribes.clear()
        if self._poller is not None:
            self._poller.join()
            self._poller = None

    def __enter__(self) -> DnsFeed:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.stop()
