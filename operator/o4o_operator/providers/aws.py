"""boto3 clients, the bounded thread pool their calls run in, and what their failures mean.

Owns: client construction (botocore ``standard`` retries, connect/read timeouts, an
optional endpoint URL, explicit or default-chain credentials), the async
:meth:`AwsClient.call` that runs one blocking boto3 call in a shared bounded pool and
counts it in ``metrics.CLOUD_REQUESTS``, and the mapping of AWS failures onto the
error vocabulary (:class:`CloudCallError` -> ``TransientError``/``PermanentError``).

Must not: log credentials or put them in any message (messages pass through a
``Redactor`` that knows them), block the event loop, decide what to do next, or know
about Kopf. boto3 exceptions never leave this module: callers see ``CloudCallError``.

boto3 and botocore are imported on the first client made (or the first failure described), not with this
module: an operator whose instances make no cloud call (existing hosts, DNS managed elsewhere) never loads
them (about 9 MB of RSS; bench ``p4_memory``).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import functools
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from o4o_operator import errors, metrics
from o4o_operator.redaction import Redactor

DEFAULT_POOL_SIZE = 8

THROTTLING_CODES = frozenset({
    "Throttling", "ThrottlingException", "ThrottledException", "RequestThrottledException",
    "TooManyRequestsException", "RequestLimitExceeded", "RequestThrottled", "SlowDown",
    "PriorRequestNotComplete",
})
CREDENTIAL_CODES = frozenset({
    "AccessDeniedException", "AccessDenied", "UnauthenticatedException", "UnrecognizedClientException",
    "InvalidClientTokenId", "InvalidAccessKeyId", "SignatureDoesNotMatch", "InvalidSignatureException",
    "AuthFailure", "ExpiredToken", "ExpiredTokenException", "MissingAuthenticationTokenException",
    "IncompleteSignature", "NoCredentials",
})
_OTHER_KNOWN_CODES = frozenset({
    "NotFoundException", "InvalidInputException", "OperationFailureException", "ServiceException",
    "AccountSetupInProgressException", "RegionSetupInProgressException", "InvalidChangeBatch",
    "NoSuchHostedZone", "NoSuchChange", "InvalidInput", "PriorRequestNotComplete",
    "Timeout", "ConnectionError", "ParamValidation",
})
METRIC_OUTCOMES = THROTTLING_CODES | CREDENTIAL_CODES | _OTHER_KNOWN_CODES | {"success", "error"}
"""Every value the ``outcome`` label of ``o4o_cloud_requests_total`` can take."""


@dataclasses.dataclass(frozen=True)
class StaticCredentials:
    """Explicit AWS keys (from a Secret). Never printed: ``repr`` hides them."""

    access_key_id: str = dataclasses.field(repr=False)
    secret_access_key: str = dataclasses.field(repr=False)
    session_token: str | None = dataclasses.field(default=None, repr=False)

    def secret_values(self) -> tuple[str, ...]:
        return tuple(v for v in (self.access_key_id, self.secret_access_key, self.session_token) if v)


@dataclasses.dataclass(frozen=True)
class ClientSettings:
    """How to build a client. ``credentials=None`` means boto3's default chain.

    ``max_attempts`` counts every attempt, the first included (botocore's ``total_max_attempts``).
    """

    max_attempts: int = 8
    connect_timeout: float = 10.0
    read_timeout: float = 30.0
    endpoint_url: str | None = None
    credentials: StaticCredentials | None = None
    in_flight: InFlightCalls | None = dataclasses.field(default=None, compare=False)
    """Where the calls made with these settings are counted while their threads run (one per instance)."""


class InFlightCalls:
    """The boto3 calls of one instance still running in their threads, including those whose caller was
    cancelled (a thread cannot be stopped: its call may still land). Teardown waits for them first, so that
    a create already on its way cannot land after teardown looked."""

    def __init__(self) -> None:
        self._running: set[concurrent.futures.Future[Any]] = set()
        self._lock = threading.Lock()

    def add(self, future: concurrent.futures.Future[Any]) -> None:
        with self._lock:
            self._running.add(future)
        future.add_done_callback(self._discard)

    def _discard(self, future: concurrent.futures.Future[Any]) -> None:
        with self._lock:
            self._running.discard(future)

    def __len__(self) -> int:
        with self._lock:
            return len(self._running)

    async def wait_idle(self, timeout: float) -> bool:  # noqa: ASYNC109 - a bound, not a cancellation scope
        """Wait until no call is running (True), or ``timeout`` seconds (False)."""
        with self._lock:
            running = list(self._running)
        if not running:
            return True
        done, _ = await asyncio.wait([asyncio.wrap_future(f) for f in running], timeout=timeout)
        return len(done) == len(running)


_pool_lock = threading.Lock()
_pool: ThreadPoolExecutor | None = None
_pool_size = DEFAULT_POOL_SIZE


def configure_pool(size: int) -> None:
    """Set the size of the shared pool; takes effect when the pool is (re)created."""
    global _pool, _pool_size
    if size < 1:
        raise ValueError("the AWS thread pool needs at least one worker")
    with _pool_lock:
        if size != _pool_size and _pool is not None:
            _pool.shutdown(wait=False)  # calls already queued still finish
            _pool = None
        _pool_size = size


def shared_pool() -> ThreadPoolExecutor:
    """The one bounded pool every boto3 call runs in."""
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(max_workers=_pool_size, thread_name_prefix="o4o-aws")
        return _pool


def make_boto3_client(service: str, region: str, settings: ClientSettings) -> Any:
    """A blocking boto3 client. Slow (it loads the service model): call it off the event loop.

    Made once per (service, region, settings, pool size) and shared: clients are thread-safe, and building
    one per stage pass was most of the operator's CPU when many instances provision at once. It keeps as
    many HTTP connections as the shared pool has threads (botocore's default of 10 made every call beyond
    the tenth at once connect anew and throw its connection away).
    """
    return _make_boto3_client(service, region, settings, max(_pool_size, DEFAULT_MAX_POOL_CONNECTIONS))


DEFAULT_MAX_POOL_CONNECTIONS = 10
"""botocore's own default."""


@functools.lru_cache(maxsize=16)
def _make_boto3_client(service: str, region: str, settings: ClientSettings, connections: int) -> Any:
    import boto3  # type: ignore[import-untyped,unused-ignore]  # here, not at import (see the module's docstring)
    import botocore.config  # type: ignore[import-untyped,unused-ignore]

    config = botocore.config.Config(
        region_name=region,
        max_pool_connections=connections,
        # Config's own "max_attempts" counts retries only; "total_max_attempts" includes the first try.
        retries={"mode": "standard", "total_max_attempts": settings.max_attempts},
        connect_timeout=settings.connect_timeout,
        read_timeout=settings.read_timeout,
        # S3-compatible endpoints (a Lightsail bucket, versitygw) are addressed by path; SigV4 for presigned URLs.
        **({"s3": {"addressing_style": "path"}, "signature_version": "s3v4"} if service == "s3" else {}),
    )
    credentials = settings.credentials
    session = boto3.session.Session(
        aws_access_key_id=credentials.access_key_id if credentials else None,
        aws_secret_access_key=credentials.secret_access_key if credentials else None,
        aws_session_token=credentials.session_token if credentials else None,
        region_name=region,
    )
    return session.client(service, endpoint_url=settings.endpoint_url, config=config)


class CloudCallError(Exception):
    """One AWS call failed. ``code`` is AWS's error code (or Timeout/ConnectionError/NoCredentials)."""

    def __init__(self, operation: str, code: str, message: str, *, http_status: int | None = None) -> None:
        super().__init__(f"{operation} failed with {code}: {message}")
        self.operation = operation
        self.code = code
        self.message = message
        self.http_status = http_status

    @property
    def is_not_found(self) -> bool:
        return self.code in {"NotFoundException", "NoSuchHostedZone", "NoSuchChange"}

    def to_stage_error(self) -> errors.StageError:
        """Throttling, 5xx, timeouts and unknown failures are transient; rejected credentials and
        requests botocore itself refuses are permanent."""
        text = f"{self.operation} failed with {self.code}: {self.message}"
        if self.code in CREDENTIAL_CODES:
            return errors.PermanentError("CloudCredentialsRejected", text)
        if self.code == "ParamValidation":
            return errors.PermanentError("CloudRequestInvalid", text)
        if self.code in THROTTLING_CODES:
            return errors.TransientError("CloudThrottled", text)
        if self.code in {"Timeout", "ConnectionError"} or (self.http_status or 0) >= 500:
            return errors.TransientError("CloudUnavailable", text)
        return errors.TransientError("CloudRequestFailed", text)


def metric_outcome(code: str) -> str:
    return code if code in METRIC_OUTCOMES else "error"


class AwsClient:
    """One service in one region; calls run in the shared pool, never on the event loop."""

    def __init__(self, service: str, region: str, settings: ClientSettings | None = None, *,
                 pool: ThreadPoolExecutor | None = None) -> None:
        self.service = service
        self.region = region
        self._settings = settings or ClientSettings()
        self._pool = pool
        self._client: Any = None
        self._client_lock = threading.Lock()
        credentials = self._settings.credentials
        self.redact = Redactor(credentials.secret_values() if credentials else ())

    def blocking_client(self) -> Any:
        """The boto3 client, for what makes no request (presigning): call it off the event loop."""
        return self._blocking_client()

    def _blocking_client(self) -> Any:
        with self._client_lock:
            if self._client is None:
                self._client = make_boto3_client(self.service, self.region, self._settings)
            return self._client

    def _blocking_call(self, operation_name: str, params: dict[str, Any]) -> dict[str, Any]:
        method = getattr(self._blocking_client(), operation_name)
        response: dict[str, Any] = method(**params)
        response.pop("ResponseMetadata", None)
        return response

    async def call(self, operation_name: str, **params: Any) -> dict[str, Any]:
        """Run ``client.<operation_name>(**params)`` in the pool; raise CloudCallError on failure."""
        label = _api_name(operation_name)
        loop = asyncio.get_running_loop()
        work = functools.partial(self._blocking_call, operation_name, params)
        future = (self._pool or shared_pool()).submit(work)
        if self._settings.in_flight is not None:
            self._settings.in_flight.add(future)
        try:
            response = await asyncio.wrap_future(future, loop=loop)
        except Exception as exc:
            if not _is_botocore_error(exc):
                raise
            failure = self._describe(label, exc)
            metrics.CLOUD_REQUESTS.labels(operation=label, outcome=metric_outcome(failure.code)).inc()
            raise failure from None
        metrics.CLOUD_REQUESTS.labels(operation=label, outcome="success").inc()
        return response

    def _describe(self, operation: str, exc: Exception) -> CloudCallError:
        import botocore.exceptions  # type: ignore[import-untyped,unused-ignore]  # loaded by the call that failed

        if isinstance(exc, botocore.exceptions.ClientError):
            error = exc.response.get("Error", {})
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            code = str(error.get("Code") or "error")
            message = self.redact(str(error.get("Message") or "no message"))
            return CloudCallError(operation, code, message, http_status=status)
        if isinstance(exc, botocore.exceptions.ParamValidationError):
            return CloudCallError(operation, "ParamValidation", self.redact(str(exc)))
        missing = botocore.exceptions.NoCredentialsError | botocore.exceptions.PartialCredentialsError
        if isinstance(exc, missing):
            return CloudCallError(operation, "NoCredentials", "no usable AWS credentials were found")
        if isinstance(exc, botocore.exceptions.ConnectTimeoutError | botocore.exceptions.ReadTimeoutError):
            return CloudCallError(operation, "Timeout", self.redact(str(exc)))
        if isinstance(exc, botocore.exceptions.EndpointConnectionError | botocore.exceptions.ConnectionError):
            return CloudCallError(operation, "ConnectionError", self.redact(str(exc)))
        return CloudCallError(operation, "error", self.redact(str(exc)))


def _is_botocore_error(exc: BaseException) -> bool:
    """Whether a call's failure is botocore's (a client's error, or one botocore raised itself)."""
    if "botocore.exceptions" not in sys.modules:
        return False  # botocore never loaded: nothing raised can be its
    import botocore.exceptions  # type: ignore[import-untyped,unused-ignore]

    return isinstance(exc, botocore.exceptions.ClientError | botocore.exceptions.BotoCoreError)


def _api_name(operation_name: str) -> str:
    """``get_instance`` -> ``GetInstance``: the bounded label used in metrics and messages."""
    return "".join(part.capitalize() for part in operation_name.split("_"))
