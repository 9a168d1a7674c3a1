"""Fixed-window rate limits in the RateLimits table: one conditional UpdateItem per check.

The window start is part of the key, so each window is a fresh item (expired by TTL) and a
check needs no read: ``ADD`` counts the request only while the count is under the limit.
Values (IPs, user IDs) are keyed hashes, never raw. If the table is unavailable the limit
fails open: availability of the service matters more than a missed count, and the
degradation is visible as a WARN line and the DependencyFailures metric.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from botocore.exceptions import BotoCoreError, ClientError

from runtime import clock
from runtime.errors import ErrorCode, ServiceError
from runtime.hashing import keyed_hash
from runtime.store import rate_windows
from runtime.store.dynamo import Conflict

if TYPE_CHECKING:
    from runtime.invocation import Invocation

SCOPES = ("ip", "user", "connection")
# Items outlive their window a little so a clock skew between instances cannot reset a count.
_TTL_MARGIN_S = 60


def identifier(operation: str, scope: str, value: str, window_start: int) -> str:
    """The item key: ``{operation}:{scope}@{window_start}:{keyed hash of value}``."""
    return f"{operation}:{scope}@{window_start}:{keyed_hash(value)}"


def enforce(
    inv: Invocation,
    operation: str,
    scope: str,
    value: str,
    limit: int,
    window_seconds: int,
    *,
    now: float | None = None,
) -> None:
    """Count one request of ``value`` (an IP, a user ID) for ``operation`` in this window.

    Raises RATE_LIMIT_EXCEEDED (``details.retryAfter`` = seconds until the window ends) when
    ``limit`` requests were already counted in the window. ``now`` (epoch seconds) is for tests.
    """
    if scope not in SCOPES:
        raise ValueError(f"unknown rate-limit scope {scope!r}")
    now = clock.now() if now is None else now
    window_start = int(now // window_seconds) * window_seconds
    window_end = window_start + window_seconds
    try:
        rate_windows.count_in_window(
            identifier(operation, scope, value, window_start),
            limit=limit,
            window_start=window_start,
            expires_at=window_end + _TTL_MARGIN_S,
        )
    except Conflict:
        retry_after = max(1, math.ceil(window_end - now))
        raise ServiceError(
            ErrorCode.RATE_LIMIT_EXCEEDED,
            f"Too many {operation} requests: the limit is {limit} per "
            f"{_describe_window(window_seconds)}; retry in {retry_after} s.",
            retryAfter=retry_after,
            limit=limit,
            windowSeconds=window_seconds,
        ) from None
    except (ClientError, BotoCoreError) as error:
        inv.count_dependency_failure("rateLimits", error)


def _describe_window(seconds: int) -> str:
    if seconds == 60:
        return "minute"
    if seconds == 3600:
        return "hour"
    return f"{seconds} s"
