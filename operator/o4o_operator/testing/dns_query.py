"""One DNS question over UDP, with the standard library: enough for tests and readiness probes.

Owns: encoding an A/AAAA/TXT/CNAME query, sending it to one server, and decoding the
answer section (no recursion, no retries, no EDNS, no TCP fallback).
Must not: be used as a resolver by shipped code.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import secrets
import socket
import struct

TYPES = {"A": 1, "CNAME": 5, "TXT": 16, "AAAA": 28}
RCODES = {0: "NOERROR", 1: "FORMERR", 2: "SERVFAIL", 3: "NXDOMAIN", 4: "NOTIMP", 5: "REFUSED"}


@dataclasses.dataclass(frozen=True)
class DnsAnswer:
    rcode: str
    records: list[tuple[str, str]]
    """(type, value) pairs of the answer section, in order (a CNAME, then its target's records)."""

    def values(self, kind: str) -> list[str]:
        return [value for record_type, value in self.records if record_type == kind]


def _encode_name(name: str) -> bytes:
    labels = [label.encode("idna") for label in name.rstrip(".").split(".") if label]
    return b"".join(bytes([len(label)]) + label for label in labels) + b"\0"


def _read_name(message: bytes, offset: int) -> tuple[str, int]:
    labels: list[str] = []
    end = None
    for _ in range(128):  # bounds pointer loops
        length = message[offset]
        if length & 0xC0 == 0xC0:
            if end is None:
                end = offset + 2
            offset = ((length & 0x3F) << 8) | message[offset + 1]
            continue
        if length == 0:
            return ".".join(labels), (end if end is not None else offset + 1)
        labels.append(message[offset + 1:offset + 1 + length].decode("ascii", "replace"))
        offset += 1 + length
    raise ValueError("DNS name has too many labels or a pointer loop")


def _value(kind: int, message: bytes, start: int, length: int) -> tuple[str, str]:
    data = message[start:start + length]
    if kind == 1:
        return "A", str(ipaddress.IPv4Address(data))
    if kind == 28:
        return "AAAA", str(ipaddress.IPv6Address(data))
    if kind == 5:
        return "CNAME", _read_name(message, start)[0]
    if kind == 16:
        parts, position = [], 0
        while position < len(data):
            size = data[position]
            parts.append(data[position + 1:position + 1 + size].decode("utf-8", "replace"))
            position += 1 + size
        return "TXT", "".join(parts)
    return str(kind), data.hex()


def parse_answer(message: bytes, query_id: int) -> DnsAnswer:
    ident, flags, questions, answers, _, _ = struct.unpack("!6H", message[:12])
    if ident != query_id:
        raise ValueError("DNS answer for another query")
    offset = 12
    for _ in range(questions):
        offset = _read_name(message, offset)[1] + 4
    records = []
    for _ in range(answers):
        offset = _read_name(message, offset)[1]
        kind, _, _, length = struct.unpack("!HHIH", message[offset:offset + 10])
        offset += 10
        records.append(_value(kind, message, offset, length))
        offset += length
    return DnsAnswer(RCODES.get(flags & 0xF, str(flags & 0xF)), records)


def query(server: str, port: int, name: str, kind: str = "A", *, timeout: float = 2.0) -> DnsAnswer | None:
    """Ask ``server:port`` one question; None when nothing answered within ``timeout``."""
    query_id = secrets.randbelow(65536)
    packet = struct.pack("!6H", query_id, 0x0100, 1, 0, 0, 0) + _encode_name(name) + struct.pack("!HH",
                                                                                                TYPES[kind], 1)
    family = socket.AF_INET6 if ":" in server else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout)
        sock.sendto(packet, (server, port))
        try:
            message, _ = sock.recvfrom(4096)
        except (TimeoutError, ConnectionRefusedError):
            return None
    return parse_answer(message, query_id)
