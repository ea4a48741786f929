"""Refusals of the local Lightsail, spelled the way AWS spells them.

Owns: :class:`LightsailApiError` (``__type`` code, message, HTTP status) and the two
refusals every operation needs. Purely computational.
"""

from __future__ import annotations


class LightsailApiError(Exception):
    """A refusal, as AWS would send it: ``__type`` code, message, HTTP status."""

    def __init__(self, code: str, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status


def invalid(message: str) -> LightsailApiError:
    return LightsailApiError("InvalidInputException", message)


def not_found(resource_type: str, name: str) -> LightsailApiError:
    return LightsailApiError("NotFoundException", f"The {resource_type} does not exist: {name}")
