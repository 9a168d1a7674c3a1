"""The wire protocol's error codes and the exception that carries them (docs/architecture.md)."""

from __future__ import annotations

from enum import StrEnum
from typing import Any


class ErrorCode(StrEnum):
    """Every error a client can receive; ``status`` is its HTTP-like status."""

    INVALID_MESSAGE = "INVALID_MESSAGE"
    INVALID_ACTION = "INVALID_ACTION"
    INVALID_PARAMETERS = "INVALID_PARAMETERS"
    INVALID_SESSION_ID = "INVALID_SESSION_ID"
    UNSUPPORTED_LANGUAGE = "UNSUPPORTED_LANGUAGE"
    UNAUTHORIZED = "UNAUTHORIZED"
    FORBIDDEN = "FORBIDDEN"
    SESSION_NOT_FOUND = "SESSION_NOT_FOUND"
    RATE_LIMIT_EXCEEDED = "RATE_LIMIT_EXCEEDED"
    SESSION_FULL = "SESSION_FULL"
    SESSION_LIMIT_REACHED = "SESSION_LIMIT_REACHED"
    # This speaker holds maxActiveSessionsPerUser active sessions: its own usage, like a rate
    # limit (429), not the service's capacity (503).
    USER_SESSION_LIMIT_REACHED = "USER_SESSION_LIMIT_REACHED"
    SERVICE_UNAVAILABLE = "SERVICE_UNAVAILABLE"
    INTERNAL_ERROR = "INTERNAL_ERROR"

    @property
    def status(self) -> int:
        return _STATUS[self]


_STATUS: dict[ErrorCode, int] = {
    ErrorCode.INVALID_MESSAGE: 400,
    ErrorCode.INVALID_ACTION: 400,
    ErrorCode.INVALID_PARAMETERS: 400,
    ErrorCode.INVALID_SESSION_ID: 400,
    ErrorCode.UNSUPPORTED_LANGUAGE: 400,
    ErrorCode.UNAUTHORIZED: 401,
    ErrorCode.FORBIDDEN: 403,
    ErrorCode.SESSION_NOT_FOUND: 404,
    ErrorCode.RATE_LIMIT_EXCEEDED: 429,
    ErrorCode.SESSION_FULL: 503,
    ErrorCode.SESSION_LIMIT_REACHED: 503,
    ErrorCode.USER_SESSION_LIMIT_REACHED: 429,
    ErrorCode.SERVICE_UNAVAILABLE: 503,
    ErrorCode.INTERNAL_ERROR: 500,
}


class ServiceError(Exception):
    """An error that becomes a structured ``error`` reply (or a rejected handshake)."""

    def __init__(self, code: ErrorCode, message: str, **details: Any) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.details = details

    @property
    def status(self) -> int:
        return self.code.status
