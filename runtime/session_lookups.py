"""A per-IP budget for failed session-ID lookups, so no client can guess session IDs.

Every route that looks up a session ID (``joinSession``, ``refreshConnection``) first passes
``admit``, and a lookup that finds no such session (or, for a speaker refresh, a session that
is not the caller's) is counted by ``record_failure``. After
``sessionLookupFailuresPerMinute`` failures in a minute, the IP's lookups get
RATE_LIMIT_EXCEEDED with ``details.retryAfter`` until the window ends.

Cost: the failure count lives on the IP's ``joinSession`` rate-limit item (same key, same
minute window), so for a join and a listener refresh the check rides on the join limit's one
conditional UpdateItem — no extra call on the happy path. A speaker refresh, which is not a
join, checks with one consistent GetItem. The counter is written only when a lookup fails
(one UpdateItem). Like every rate limit, the budget fails open when the table is unavailable.
Concurrent lookups from one IP that all pass the check before any failure is written can
exceed the budget by their number; the join limit (counted atomically) still bounds joins and
listener refreshes.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from botocore.exceptions import BotoCoreError, ClientError

from runtime import clock, store
from runtime.config import config
from runtime.errors import ErrorCode, ServiceError
from runtime.rate_limits import identifier

if TYPE_CHECKING:
    from runtime.invocation import Invocation

# The item that carries both limits: the per-IP join limit's.
JOIN_OPERATION = "joinSession"
WINDOW_S = 60
_TTL_MARGIN_S = 60  # as rate_limits: a clock skew between instances cannot reset a count


def _window(now: float) -> tuple[int, int]:
    start = int(now // WINDOW_S) * WINDOW_S
    return start, start + WINDOW_S


def _identifier(inv: Invocation, window_start: int) -> str:
    return identifier(JOIN_OPERATION, "ip", inv.source_ip or "unknown", window_start)


def admit(inv: Invocation, *, counts_as_join: bool, now: float | None = None) -> None:
    """Raise RATE_LIMIT_EXCEEDED if this IP used up its failed-lookup budget (or, when
    ``counts_as_join``, its join limit, which this request is then counted against)."""
    now = clock.now() if now is None else now
    start, end = _window(now)
    cfg = config()
    try:
        if counts_as_join:
            _count_join(
                inv, start, end, cfg.listenerJoinsPerMinute, cfg.sessionLookupFailuresPerMinute
            )
        else:
            _check_budget(inv, start, end, cfg.sessionLookupFailuresPerMinute, now)
    except _Refused as refused:
        raise _rate_limited(refused.failures_exhausted, end, now) from None
    except (ClientError, BotoCoreError) as error:
        inv.count_dependency_failure("rateLimits", error)


def record_failure(inv: Invocation, *, now: float | None = None) -> None:
    """Count one failed lookup against this IP's budget (written only when a lookup fails)."""
    now = clock.now() if now is None else now
    start, end = _window(now)
    try:
        store.count_failed_lookup(
            _identifier(inv, start), window_start=start, expires_at=end + _TTL_MARGIN_S
        )
    except (ClientError, BotoCoreError) as error:
        inv.count_dependency_failure("rateLimits", error)


class _Refused(Exception):
    def __init__(self, failures_exhausted: bool) -> None:
        super().__init__("refused")
        self.failures_exhausted = failures_exhausted


def _count_join(inv: Invocation, start: int, end: int, join_limit: int, budget: int) -> None:
    try:
        store.count_in_window(
            _identifier(inv, start),
            limit=join_limit,
            window_start=start,
            expires_at=end + _TTL_MARGIN_S,
            failures_below=budget,
        )
    except store.Conflict as conflict:
        failures = int((conflict.item or {}).get(store.FAILED_LOOKUPS, 0))
        raise _Refused(failures_exhausted=failures >= budget) from None


def _check_budget(inv: Invocation, start: int, end: int, budget: int, now: float) -> None:
    if store.failed_lookups(_identifier(inv, start)) >= budget:
        raise _Refused(failures_exhausted=True)


def _rate_limited(failures_exhausted: bool, window_end: int, now: float) -> ServiceError:
    cfg = config()
    retry_after = max(1, math.ceil(window_end - now))
    if failures_exhausted:
        return ServiceError(
            ErrorCode.RATE_LIMIT_EXCEEDED,
            "Too many lookups of sessions that do not exist: the limit is "
            f"{cfg.sessionLookupFailuresPerMinute} per minute; retry in {retry_after} s.",
            retryAfter=retry_after,
            limit=cfg.sessionLookupFailuresPerMinute,
            windowSeconds=WINDOW_S,
            reason="sessionLookupFailures",
        )
    return ServiceError(
        ErrorCode.RATE_LIMIT_EXCEEDED,
        "Too many joinSession requests (listener refreshes included): the limit is "
        f"{cfg.listenerJoinsPerMinute} per minute; retry in {retry_after} s.",
        retryAfter=retry_after,
        limit=cfg.listenerJoinsPerMinute,
        windowSeconds=WINDOW_S,
    )
