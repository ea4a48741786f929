"""The instance's own HTTP API (O4O's admin login, ``/api/v1/admin/apps`` and its health path), spoken from
the operator.

Owns: the HTTP client on a local address that an SSH tunnel forwards to the API's port on the server
(:meth:`o4o_operator.providers.ssh_session.SshSession.tunnel`), the shapes O4O answers in (the login's
``data.tokens.accessToken`` with ``includeLegacyTokens``, the apps lists ``{"apps": [...]}`` or
``{"data": {"apps": [...]}}``, an error's ``message``), typed results, and the classification of what went
wrong (:class:`ApiFailure`) with the instance's own words, bounded.

Must not: go through a proxy (``trust_env`` is off) or follow a redirect (a 3xx is an answer, never a
second request, so nothing is ever sent to another host); format the admin's email or password, or the
session's token, into any string it logs, raises or returns (redaction by construction: the
credentials' ``repr`` hides them, the token lives only in the request's header, and the instance's words
are scrubbed of all three before anyone sees them); know stage names, spec fields or error reasons (the
runner maps :class:`InstanceApiError` to those).
"""

from __future__ import annotations

import contextlib
import dataclasses
import enum
import json
import re
from collections.abc import AsyncIterator, Iterable
from typing import Any

import aiohttp

from o4o_operator.pipeline.health import field_at

LOGIN_PATH = "/api/v1/auth/login"
APPS_PATH = "/api/v1/admin/apps"
MARKET_PATH = "/api/v1/admin/apps/market"
WORDS_LIMIT = 300
"""How much of the instance's own words an error carries."""
BODY_LIMIT = 1024 * 1024
"""How much of an answer is read (a larger one is cut, and then is no JSON)."""
MASK = "[redacted]"
_APP_ID = re.compile(r"^[a-z0-9][a-z0-9-]*$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")
_UNAVAILABLE_STATUSES = frozenset({502, 503, 504})
_UNAUTHORISED_STATUSES = frozenset({401, 403})


class ApiFailure(enum.StrEnum):
    UNAVAILABLE = "unavailable"
    """Nothing answered (refused, reset, timed out), or 502, 503 or 504: worth retrying."""
    UNAUTHORISED = "unauthorised"
    """401 or 403: the instance refused the admin (or its session)."""
    REFUSED = "refused"
    """Any other answer but 2xx (a 3xx included: redirects are never followed)."""
    BAD_ANSWER = "bad-answer"
    """2xx, but the body is not the JSON the call expects."""


class InstanceApiError(Exception):
    """A call that did not succeed. ``words`` are the instance's own (or, unanswered, what happened), bounded
    and scrubbed of the credentials and the token; ``status`` is None when nothing answered."""

    def __init__(self, failure: ApiFailure, call: str, status: int | None, words: str) -> None:
        self.failure = failure
        self.call = call
        self.status = status
        self.words = words
        super().__init__(f"{call}: {failure.value} (HTTP {self.status_text}): {words}")

    @property
    def status_text(self) -> str:
        """The status as curl's ``%{http_code}`` says it: ``000`` when nothing answered."""
        return "000" if self.status is None else str(self.status)


class AppAction(enum.StrEnum):
    INSTALL = "install"
    ACTIVATE = "activate"
    DEACTIVATE = "deactivate"
    UNINSTALL = "uninstall"


@dataclasses.dataclass(frozen=True)
class AdminCredentials:
    """The operator's admin account; neither value shows in ``repr`` (nor, therefore, in a traceback's locals)."""

    email: str = dataclasses.field(repr=False)
    password: str = dataclasses.field(repr=False)


@dataclasses.dataclass(frozen=True)
class InstalledApp:
    app_id: str
    status: str
    """As the instance says it: ``active``, ``installed``, ``inactive``, ... (``unknown`` when it says none)."""


@dataclasses.dataclass(frozen=True)
class Answer:
    """An answer to a free request (``spec.postInstall[i].request``): its status and the instance's words."""

    status: int
    words: str

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


@dataclasses.dataclass(frozen=True)
class HealthAnswer:
    """What the API's health path answered: its status (None when nothing answered) and body (at most
    :data:`BODY_LIMIT` bytes), or, unanswered, what happened instead (``words``). Judged by
    :func:`o4o_operator.pipeline.health.judge_health`."""

    status: int | None
    body: bytes = b""
    words: str = ""

    @property
    def status_text(self) -> str:
        """As curl's ``%{http_code}`` says it: ``000`` when nothing answered."""
        return "000" if self.status is None else str(self.status)


@dataclasses.dataclass(frozen=True)
class _Raw:
    status: int
    text: str


def _json(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return None


async def _read_bounded(response: aiohttp.ClientResponse) -> bytes:
    """The body up to :data:`BODY_LIMIT` bytes (one ``read(n)`` returns only what has arrived so far)."""
    chunks: list[bytes] = []
    size = 0
    while size < BODY_LIMIT:
        chunk = await response.content.read(BODY_LIMIT - size)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


def _message_of(text: str) -> str:
    """O4O's words in an answer: ``message``, else ``error.message`` or ``error``, else the raw text."""
    document = _json(text)
    if isinstance(document, dict):
        error = document.get("error")
        for candidate in (document.get("message"),
                          error.get("message") if isinstance(error, dict) else error):
            if isinstance(candidate, str) and candidate:
                return candidate
    return text


def _apps_of(text: str) -> list[Any] | None:
    document = _json(text)
    if not isinstance(document, dict):
        return None
    if isinstance(document.get("apps"), list):
        return list(document["apps"])
    data = document.get("data")
    if isinstance(data, dict) and isinstance(data.get("apps"), list):
        return list(data["apps"])
    return None


class InstanceApi:
    """One admin session on one instance's API, at ``base_url`` (the local end of the tunnel)."""

    def __init__(self, http: aiohttp.ClientSession, base_url: str, *, timeout: float,
                 secrets: Iterable[str] = ()) -> None:
        self._http = http
        self._base_url = base_url.rstrip("/")
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._timeout_seconds = timeout
        self._secrets: tuple[str, ...] = tuple(secrets)
        self._token: str | None = None

    # ---- the words, scrubbed -------------------------------------------------------------------

    def _scrubbed(self, text: str) -> str:
        for secret in sorted((s for s in (*self._secrets, self._token or "") if s), key=len, reverse=True):
            text = text.replace(secret, MASK)
        return _CONTROL.sub(" ", text).strip()[:WORDS_LIMIT]

    def words(self, text: str) -> str:
        """The instance's words in an answer's body, bounded and scrubbed."""
        return self._scrubbed(_message_of(text))

    # ---- one call ------------------------------------------------------------------------------

    async def _call(self, method: str, path: str, body: Any | None = None, *, authorised: bool = True) -> _Raw:
        call = f"{method} {path}"
        headers = {"Accept": "application/json"}
        if authorised and self._token is not None:
            headers["Authorization"] = "Bearer " + self._token
        data = None if body is None else json.dumps(body).encode()
        if data is not None:
            headers["Content-Type"] = "application/json"
        try:
            async with self._http.request(method, self._base_url + path, data=data, headers=headers,
                                          allow_redirects=False, timeout=self._timeout) as response:
                raw = await _read_bounded(response)
                return _Raw(response.status, raw.decode("utf-8", "replace"))
        except TimeoutError:
            raise InstanceApiError(ApiFailure.UNAVAILABLE, call, None,
                                   f"no answer within {self._timeout_seconds:g} seconds") from None
        except aiohttp.ClientError as error:
            raise InstanceApiError(ApiFailure.UNAVAILABLE, call, None,
                                   self._scrubbed(f"{type(error).__name__}: {error}")) from None

    def _checked(self, call: str, raw: _Raw) -> _Raw:
        """2xx passes; anything else raises, classified."""
        if 200 <= raw.status < 300:
            return raw
        if raw.status in _UNAVAILABLE_STATUSES:
            failure = ApiFailure.UNAVAILABLE
        elif raw.status in _UNAUTHORISED_STATUSES:
            failure = ApiFailure.UNAUTHORISED
        else:
            failure = ApiFailure.REFUSED
        raise InstanceApiError(failure, call, raw.status, self.words(raw.text))

    # ---- what the operator asks ------------------------------------------------------------------

    async def login(self, credentials: AdminCredentials) -> None:
        """``POST /api/v1/auth/login`` with ``includeLegacyTokens``; later calls carry the token it answers."""
        self._secrets = (*self._secrets, credentials.password, credentials.email)
        self._token = None
        call = f"POST {LOGIN_PATH}"
        raw = self._checked(call, await self._call(
            "POST", LOGIN_PATH, {"email": credentials.email, "password": credentials.password,
                                 "includeLegacyTokens": True}, authorised=False))
        found, token = field_at(_json(raw.text), "data.tokens.accessToken")
        if not found or not isinstance(token, str) or not token:
            raise InstanceApiError(ApiFailure.BAD_ANSWER, call, raw.status,
                                   "the answer carried no data.tokens.accessToken")
        self._token = token

    async def market(self) -> tuple[str, ...]:
        """The app ids the instance offers (``GET /api/v1/admin/apps/market``), in its order."""
        return tuple(app.app_id for app in await self._apps(MARKET_PATH))

    async def installed(self) -> tuple[InstalledApp, ...]:
        """The apps the instance has, with their status (``GET /api/v1/admin/apps``)."""
        return await self._apps(APPS_PATH)

    async def _apps(self, path: str) -> tuple[InstalledApp, ...]:
        call = f"GET {path}"
        raw = self._checked(call, await self._call("GET", path))
        apps = _apps_of(raw.text)
        if apps is None:
            raise InstanceApiError(ApiFailure.BAD_ANSWER, call, raw.status, "the answer carried no apps list")
        found: list[InstalledApp] = []
        for app in apps:
            app_id = app.get("appId") if isinstance(app, dict) else None
            if isinstance(app_id, str) and _APP_ID.fullmatch(app_id):
                status = app.get("status")
                found.append(InstalledApp(app_id, status if isinstance(status, str) and status else "unknown"))
        return tuple(found)

    async def app_action(self, action: AppAction, app_id: str) -> None:
        """``POST /api/v1/admin/apps/<action>`` with ``{"appId": ...}``; anything but 2xx raises."""
        path = f"{APPS_PATH}/{action.value}"
        self._checked(f"POST {path}", await self._call("POST", path, {"appId": app_id}))

    async def health(self, path: str) -> HealthAnswer:
        """``GET path`` unauthenticated (the API's health path): whatever it answers, never a redirect
        followed; an unanswered call (refused, reset, timed out) is an answer with no status."""
        try:
            async with self._http.get(self._base_url + path, headers={"Accept": "application/json"},
                                      allow_redirects=False, timeout=self._timeout) as response:
                return HealthAnswer(response.status, await _read_bounded(response))
        except TimeoutError:
            return HealthAnswer(None, words=f"no answer within {self._timeout_seconds:g} seconds")
        except aiohttp.ClientError as error:
            return HealthAnswer(None, words=self._scrubbed(f"{type(error).__name__}: {error}"))

    async def request(self, method: str, path: str, body: Any | None = None) -> Answer:
        """A free request as the admin: whatever status it answers (only an unanswered call raises)."""
        raw = await self._call(method, path, body)
        return Answer(raw.status, self.words(raw.text))


@contextlib.asynccontextmanager
async def instance_api(base_url: str, *, timeout: float = 120.0,  # noqa: ASYNC109 - per call, not overall
                       secrets: Iterable[str] = ()) -> AsyncIterator[InstanceApi]:
    """A client for the API at ``base_url`` (no proxy from the environment, no cookies kept between calls).
    ``secrets`` are scrubbed from every word it reports, besides the credentials it logs in with."""
    connector = aiohttp.TCPConnector(force_close=True)
    async with aiohttp.ClientSession(connector=connector, trust_env=False,
                                     cookie_jar=aiohttp.DummyCookieJar()) as http:
        yield InstanceApi(http, base_url, timeout=timeout, secrets=secrets)
