"""Rate limits in the RateLimits table: fixed windows and token buckets.

A fixed window (``enforce``) is one conditional UpdateItem per check: the window start is
part of the key, so each window is a fresh item (expired by TTL) and a check needs no read:
``ADD`` counts the request only while the count is under the limit. A token bucket
(``take_token``) lets an address spend a burst at once and then refills at a steady rate;
it costs one conditional write for an idle bucket and two for one in use
(``store.take_from_bucket``). Values (IPs, user IDs) are keyed hashes, never raw. If the
table is unavailable the limit fails open: availability of the service matters more than a
missed count, and the degradation is visible as a WARN line and the DependencyFailures
metric.
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


def bucket_identifier(operation: str, scope: str, value: str) -> str:
    """A bucket's item key: ``{operation}:{scope}:{keyed hash of value}`` (no window)."""
    return f"{operation}:{scope}:{keyed_hash(value)}"


def take_token(
    inv: Invocation,
    operation: str,
    scope: str,
    value: str,
    *,
    per_minute: int,
    burst: int,
    now: float | None = None,
) -> None:
    """Take one of ``value``'s ``burst`` tokens for ``operation``; they refill at
    ``per_minute``. Raises RATE_LIMIT_EXCEEDED (``details.retryAfter`` = seconds until the
    next token) when the bucket is empty; fails open like ``enforce``."""
    if scope not in SCOPES:
        raise ValueError(f"unknown rate-limit scope {scope!r}")
    now_ms = int((clock.now() if now is None else now) * 1000)
    interval_ms = max(1, 60_000 // per_minute)
    # The bucket is full again (and its item useless) once tat has passed.
    full_again_ms = now_ms + burst * interval_ms
    try:
        wait_ms = rate_windows.take_from_bucket(
            bucket_identifier(operation, scope, value),
            now_ms=now_ms,
            interval_ms=interval_ms,
            burst=burst,
            expires_at=math.ceil(full_again_ms / 1000) + _TTL_MARGIN_S,
        )
    except (ClientError, BotoCoreError) as error:
        inv.count_dependency_failure("rateLimits", error)
        return
    if wait_ms is not None:
        retry_after = max(1, math.ceil(wait_ms / 1000))
        raise ServiceError(
            ErrorCode.RATE_LIMIT_EXCEEDED,
            f"Too many {operation} requests: {burst} at once, then {per_minute} per minute; "
            f"retry in {retry_after} s.",
            retryAfter=retry_after,
            limit=per_minute,
            burst=burst,
            windowSeconds=60,
        )


def _describe_window(seconds: int) -> str:
    if seconds == 60:
        return "minute"
    if seconds == 3600:
        return "hour"
    return f"{seconds} s"
