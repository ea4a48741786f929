"""HTTP hardening: allowed methods, security headers, optional token auth, bind policy.

Owns: the 405 (with ``Allow``) for anything but GET and HEAD; the CSP and the
other security headers on every response (pages, JSON, static files, errors,
the event stream); the optional token check (``Authorization: Bearer <token>``,
or Basic with the token as password so that a browser can prompt for it),
which leaves ``/healthz`` and ``/readyz`` open; loading the token from a file
or the environment; and the rule that without a token the dashboard only
listens on loopback unless told ``--insecure-bind`` (and, on loopback, only
answers requests addressed to a loopback name, which defeats DNS rebinding).

Must not: log, echo or store the presented credentials, or compare tokens in
variable time.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import ipaddress
import os
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path

from aiohttp import web
from aiohttp.typedefs import Middleware

ALLOWED_METHODS = ("GET", "HEAD")
OPEN_PATHS = frozenset({"/healthz", "/readyz"})
TOKEN_ENV = "O4O_DASHBOARD_TOKEN"  # noqa: S105 - the variable's name, not a token
MIN_TOKEN_CHARS = 16
CONTENT_SECURITY_POLICY = "; ".join((
    "default-src 'self'", "script-src 'self'", "style-src 'self'", "img-src 'self' data:",
    "connect-src 'self'", "font-src 'self'", "object-src 'none'", "base-uri 'none'",
    "form-action 'self'", "frame-ancestors 'none'",
))
SECURITY_HEADERS: Mapping[str, str] = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
}

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class TokenError(Exception):
    """The configured token cannot be used (the message says why, never what it is)."""


async def add_security_headers(request: web.Request, response: web.StreamResponse) -> None:
    """``on_response_prepare`` hook: runs for every response, streamed ones included."""
    for name, value in SECURITY_HEADERS.items():
        response.headers[name] = value
    response.headers["Server"] = "o4o-dashboard"  # not aiohttp's name and version


def _host_name(host_header: str) -> str:
    """The host part of a Host header (``[::1]:8080`` -> ``::1``, ``localhost:80`` -> ``localhost``)."""
    if host_header.startswith("["):
        return host_header[1:].partition("]")[0]
    return host_header.rpartition(":")[0] if host_header.count(":") == 1 else host_header


@web.middleware
async def only_loopback_hosts(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Without a token, answer only requests addressed to a loopback name (stops DNS rebinding)."""
    if request.path in OPEN_PATHS or is_loopback(_host_name(request.headers.get("Host", ""))):
        return await handler(request)
    raise web.HTTPForbidden(text="403: without a token the dashboard answers only to localhost\n")


@web.middleware
async def only_get_and_head(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.method not in ALLOWED_METHODS:
        raise web.HTTPMethodNotAllowed(request.method, ALLOWED_METHODS, text="405: Method Not Allowed\n")
    return await handler(request)


def _digest(value: bytes) -> bytes:
    return hashlib.sha256(value).digest()


def presented_token(authorization: str) -> bytes | None:
    """The token in a Bearer header, or the password of a Basic one."""
    scheme, _, credentials = authorization.strip().partition(" ")
    if scheme.lower() == "bearer":
        return credentials.strip().encode()
    if scheme.lower() == "basic":
        try:
            decoded = base64.b64decode(credentials.strip(), validate=True)
        except (binascii.Error, ValueError):
            return None
        _, separator, password = decoded.partition(b":")
        return password if separator else None
    return None


def token_matches(presented: bytes | None, expected: bytes) -> bool:
    """Constant-time comparison (of digests, so the length does not leak either)."""
    return presented is not None and hmac.compare_digest(_digest(presented), _digest(expected))


def require_token(token: str) -> Middleware:
    """Middleware that answers 401 unless the request carries ``token``."""
    expected = token.encode()

    @web.middleware
    async def check_token(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path in OPEN_PATHS:
            return await handler(request)
        if token_matches(presented_token(request.headers.get("Authorization", "")), expected):
            return await handler(request)
        unauthorized = web.HTTPUnauthorized(text="401: a valid bearer token is required\n")
        unauthorized.headers.add("WWW-Authenticate", 'Basic realm="o4o-dashboard", charset="UTF-8"')
        unauthorized.headers.add("WWW-Authenticate", 'Bearer realm="o4o-dashboard"')
        raise unauthorized

    return check_token


def load_token(token_file: Path | None, environ: Mapping[str, str] | None = None) -> str | None:
    """The token from ``token_file`` (a mounted Secret), else ``$O4O_DASHBOARD_TOKEN``, else ``None``."""
    env = os.environ if environ is None else environ
    if token_file is not None:
        try:
            token = token_file.read_text().strip()
        except OSError as error:
            raise TokenError(f"cannot read token file {token_file}: {error.strerror}") from None
        source = f"token file {token_file}"
    elif env.get(TOKEN_ENV):
        token, source = env[TOKEN_ENV].strip(), f"${TOKEN_ENV}"
    else:
        return None
    if len(token) < MIN_TOKEN_CHARS:
        raise TokenError(f"the token in {source} is shorter than {MIN_TOKEN_CHARS} characters")
    return token


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def bind_refusal(host: str, *, token_configured: bool, insecure_bind: bool) -> str | None:
    """Why listening on ``host`` is refused, or ``None`` if it is allowed."""
    if token_configured or insecure_bind or is_loopback(host):
        return None
    return (f"refusing to listen on {host} without a token: anyone who can reach it would see every "
            f"instance. Set --token-file (or ${TOKEN_ENV}), or pass --insecure-bind if something in "
            "front of the dashboard already authenticates.")
