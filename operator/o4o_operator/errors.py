"""The error vocabulary shared by every layer.

Owns: the split between transient failures (retry with backoff) and permanent
ones (Stalled, with a CamelCase reason naming the cause). Purely computational:
no I/O, no framework imports. Messages must already be free of secret values.
"""

from __future__ import annotations


class StageError(Exception):
    """A stage could not finish. ``reason`` is CamelCase, ``message`` is for humans."""

    transient: bool = True

    def __init__(self, reason: str, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.field = field

    def __str__(self) -> str:
        return f"{self.reason}: {self.message}"


class TransientError(StageError):
    """Worth retrying: throttling, timeouts, a host still booting, a dropped connection."""

    transient = True


class PermanentError(StageError):
    """Retrying cannot help until the spec or the world changes: the instance stalls."""

    transient = False


class InvalidSpecError(PermanentError):
    """A spec value the CRD schema could not catch (unknown bundle, unknown app, ...)."""

    def __init__(self, field: str, message: str, *, reason: str = "InvalidSpec") -> None:
        super().__init__(reason, f"{field}: {message}", field=field)
