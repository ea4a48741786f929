"""A local Lightsail endpoint speaking AWS's JSON 1.1 protocol, for tests and ``make dev``.

Owns: :class:`LocalLightsail`, a threaded HTTP server on 127.0.0.1 that answers
``POST /`` with ``X-Amz-Target: Lightsail_20161128.<Operation>``. Every request is
checked against botocore's own service model (``ParamValidator`` on the input
shape, plus the model's ``pattern``/``max`` traits) and refused with
``InvalidInputException`` as AWS would; every answer is checked against the output
shape (a mismatch is a bug here and lands in ``protocol_errors``). Faults
(latency, throttling, 5xx, rejected credentials, lost responses) are injected per
test through :attr:`LocalLightsail.faults`, drawn from a seedable RNG.

Must not: be imported by shipped code, verify signatures, or sleep except to
inject the latency a test asked for. The region comes from the SigV4 credential
scope of each request (us-east-1 when unsigned).
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import datetime
import http.server
import json
import random
import re
import threading
import time
import uuid
from collections.abc import Callable
from types import TracebackType
from typing import Any

import botocore.exceptions  # type: ignore[import-untyped,unused-ignore]
import botocore.session  # type: ignore[import-untyped,unused-ignore]
import botocore.validate  # type: ignore[import-untyped,unused-ignore]

from o4o_operator.testing.lightsail_buckets import BucketBackend
from o4o_operator.testing.lightsail_domains import LocalDomainEntry
from o4o_operator.testing.lightsail_errors import LightsailApiError
from o4o_operator.testing.lightsail_resources import LocalServer, LocalStaticIp
from o4o_operator.testing.lightsail_state import (
    HostKeys,
    IpAllocator,
    LightsailState,
    ServerFleet,
    supported_operations,
)

TARGET_PREFIX = "Lightsail_20161128."
CONTENT_TYPE = "application/x-amz-json-1.1"
_REGION_IN_CREDENTIAL = re.compile(r"Credential=[^/,]+/\d{8}/([a-z0-9-]+)/")
_SERVICE_MODEL: Any = None


def service_model() -> Any:
    """botocore's Lightsail model (loaded once)."""
    global _SERVICE_MODEL
    if _SERVICE_MODEL is None:
        _SERVICE_MODEL = botocore.session.get_session().get_service_model("lightsail")
    return _SERVICE_MODEL


@dataclasses.dataclass
class Faults:
    """What to break, per test. Rates are probabilities per request, drawn from ``rng``."""

    latency_seconds: float = 0.0
    throttle_rate: float = 0.0
    server_error_rate: float = 0.0
    reject_credentials: bool = False
    lose_response_once: set[str] = dataclasses.field(default_factory=set)
    """Operations to perform but answer with a 500, once each (the response "got lost")."""
    rng: random.Random = dataclasses.field(default_factory=random.Random)

    def seed(self, seed: int) -> None:
        self.rng.seed(seed)


@dataclasses.dataclass(frozen=True)
class Exchange:
    operation: str
    status: int
    request: dict[str, Any]
    response: dict[str, Any]


class LocalLightsail:
    """The local Lightsail. Use as a context manager, or ``start()``/``stop()``; then ``endpoint_url``."""

    def __init__(self, *, port: int = 0, pending_polls: int = 1, pending_seconds: float = 0.0,
                 clock: Callable[[], float] = time.monotonic, ip_allocator: IpAllocator | None = None,
                 host_keys: HostKeys | None = None, fleet: ServerFleet | None = None,
                 seed: int | None = None) -> None:
        """``ip_allocator``, ``host_keys`` and ``fleet`` put real machines behind the instances (see
        :class:`~o4o_operator.testing.lightsail_state.ServerFleet`)."""
        self.state = LightsailState(pending_polls=pending_polls, pending_seconds=pending_seconds, clock=clock,
                                    ip_allocator=ip_allocator, host_keys=host_keys, fleet=fleet)
        self.faults = Faults(rng=random.Random(seed))
        self.request_log: list[str] = []
        self.exchanges: collections.deque[Exchange] = collections.deque(maxlen=2000)
        self.protocol_errors: list[str] = []
        self._port = port
        self._log_lock = threading.Lock()
        self._server: http.server.ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ---- lifecycle ------------------------------------------------------------

    @property
    def endpoint_url(self) -> str:
        if self._server is None:
            raise RuntimeError("LocalLightsail is not started")
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> LocalLightsail:
        service_model()
        server = http.server.ThreadingHTTPServer(("127.0.0.1", self._port), _handler_for(self))
        server.daemon_threads = True
        server.block_on_close = False
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, args=(0.05,), name="local-lightsail",
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join()
        self._server = self._thread = None

    def __enter__(self) -> LocalLightsail:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.stop()

    # ---- introspection -----------------------------------------------------------

    def servers(self) -> list[LocalServer]:
        return self.state.servers()

    def static_ips(self) -> list[LocalStaticIp]:
        return self.state.static_ips()

    def domain_entries(self) -> list[LocalDomainEntry]:
        return self.state.domain_entries()

    def resources_for_uid(self, uid: str) -> list[str]:
        return self.state.resources_for_uid(uid)

    def hold_buckets_in(self, backend: BucketBackend) -> None:
        """Keep the objects of the buckets CreateBucket makes in ``backend`` (the world's S3 server)."""
        self.state.bucket_backend = backend

    def add_domain(self, name: str) -> None:
        """Create a DNS zone directly, as if the account already had it."""
        self.state.handle("us-east-1", "CreateDomain", {"domainName": name})

    # ---- one request ---------------------------------------------------------------

    def answer(self, target: str, authorization: str, body: bytes) -> tuple[int, dict[str, Any]]:
        """Status and JSON body for one request: the whole protocol, without the HTTP."""
        operation = target.removeprefix(TARGET_PREFIX)
        if not target.startswith(TARGET_PREFIX) or operation not in service_model().operation_names:
            return _error(LightsailApiError("UnknownOperationException", f"Unknown operation {target!r}"))
        with self._log_lock:
            self.request_log.append(operation)
        try:
            self._inject_faults(operation)
            params = _parse_body(body)
            operation_model = service_model().operation_model(operation)
            _validate_input(params, operation_model.input_shape)
            match = _REGION_IN_CREDENTIAL.search(authorization)
            result = self.state.handle(match.group(1) if match else "us-east-1", operation, params)
        except LightsailApiError as refusal:
            return self._record(operation, {}, *_error(refusal))
        problems = botocore.validate.ParamValidator().validate(result, operation_model.output_shape)
        if problems.has_errors():
            self.protocol_errors.append(f"{operation}: {problems.generate_report()}")
            return _error(LightsailApiError("ServiceException", "LocalLightsail answered wrongly", 500))
        with self._log_lock:
            lost = operation in self.faults.lose_response_once
            self.faults.lose_response_once.discard(operation)
        if lost:
            return _error(LightsailApiError("ServiceException", "The response was lost (injected).", 500))
        return self._record(operation, params, 200, result)

    def _record(self, operation: str, params: dict[str, Any], status: int,
                response: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        wire = json.loads(json.dumps(response, default=_wire_value))
        self.exchanges.append(Exchange(operation, status, params, wire))
        return status, wire

    def _inject_faults(self, operation: str) -> None:
        faults = self.faults
        if faults.latency_seconds > 0:
            time.sleep(faults.latency_seconds)  # server-side latency, on the server's thread
        if faults.reject_credentials:
            raise LightsailApiError("UnrecognizedClientException",
                                    "The security token included in the request is invalid.")
        with self._log_lock:
            throttled = faults.rng.random() < faults.throttle_rate
            broken = faults.rng.random() < faults.server_error_rate
        if throttled:
            raise LightsailApiError("ThrottlingException", "Rate exceeded")
        if broken:
            raise LightsailApiError("ServiceException", "We encountered an internal error.", 500)


def _parse_body(body: bytes) -> dict[str, Any]:
    try:
        params = json.loads(body or b"{}")
    except ValueError:
        raise LightsailApiError("SerializationException", "The request body is not valid JSON.") from None
    if not isinstance(params, dict):
        raise LightsailApiError("SerializationException", "The request body must be a JSON object.")
    return params


def _validate_input(params: dict[str, Any], shape: Any) -> None:
    """Refuse what botocore's client-side validator refuses, with the same words, and the model's
    ``pattern``/``max`` traits that only the service checks."""
    report = botocore.validate.ParamValidator().validate(params, shape)
    if report.has_errors():
        raise LightsailApiError("InvalidInputException",
                                str(botocore.exceptions.ParamValidationError(report=report.generate_report())))
    for problem in _trait_problems(params, shape, "input"):
        raise LightsailApiError("InvalidInputException", problem)


def _trait_problems(value: Any, shape: Any, path: str) -> list[str]:
    if shape.type_name == "structure":
        return [p for name, member in shape.members.items() if name in value
                for p in _trait_problems(value[name], member, f"{path}.{name}")]
    if shape.type_name == "list":
        return [p for i, item in enumerate(value)
                for p in _trait_problems(item, shape.member, f"{path}[{i}]")]
    metadata = shape.metadata
    if shape.type_name == "string" and "pattern" in metadata and not re.search(metadata["pattern"], value):
        return [f"Invalid value for {path}: must match {metadata['pattern']}"]
    if shape.type_name == "string" and "max" in metadata and len(value) > metadata["max"]:
        return [f"Invalid length for {path}: at most {metadata['max']}"]
    if shape.type_name in {"integer", "long"} and "max" in metadata and value > metadata["max"]:
        return [f"Invalid range for {path}: at most {metadata['max']}"]
    return []


def _error(refusal: LightsailApiError) -> tuple[int, dict[str, Any]]:
    return refusal.status, {"__type": refusal.code, "message": refusal.message, "code": refusal.code}


def _wire_value(value: Any) -> Any:
    if isinstance(value, datetime.datetime):
        return round(value.timestamp(), 3)  # the JSON protocol sends epoch seconds
    raise TypeError(f"cannot send {type(value).__name__}")


def _handler_for(local: LocalLightsail) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # headers and body go out in two writes
        timeout = 60

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            status, payload = local.answer(self.headers.get("X-Amz-Target", ""),
                                           self.headers.get("Authorization", ""), body)
            data = json.dumps(payload, default=_wire_value).encode()
            self.send_response(status)
            self.send_header("Content-Type", CONTENT_TYPE)
            self.send_header("Content-Length", str(len(data)))
            self.send_header("x-amzn-RequestId", str(uuid.uuid4()))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet: tests read ``request_log`` instead."""

    return Handler


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Run a local Lightsail endpoint until interrupted.")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--pending-polls", type=int, default=1)
    parser.add_argument("--domain", action="append", default=[], help="a DNS zone to create at start")
    args = parser.parse_args(argv)
    local = LocalLightsail(port=args.port, pending_polls=args.pending_polls).start()
    for domain in args.domain:
        local.add_domain(domain)
    print(local.endpoint_url, flush=True)
    print(f"Models {len(supported_operations())} operations; Ctrl-C stops it.", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        local.stop()


if __name__ == "__main__":
    main()
