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
import time
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from runtime import aws
from runtime.config import config
from runtime.errors import ErrorCode, ServiceError
from runtime.rate_limits import identifier

if TYPE_CHECKING:
    from runtime.invocation import Invocation

# The item that carries both limits: the per-IP join limit's.
JOIN_OPERATION = "joinSession"
WINDOW_S = 60
FAILURES = "failedLookups"
_TTL_MARGIN_S = 60  # as rate_limits: a clock skew between instances cannot reset a count


def _window(now: float) -> tuple[int, int]:
    start = int(now // WINDOW_S) * WINDOW_S
    return start, start + WINDOW_S


def _key(inv: Invocation, window_start: int) -> dict[str, Any]:
    value = inv.source_ip or "unknown"
    return {"identifier": {"S": identifier(JOIN_OPERATION, "ip", value, window_start)}}


def admit(inv: Invocation, *, counts_as_join: bool, now: float | None = None) -> None:
    """Raise RATE_LIMIT_EXCEEDED if this IP used up its failed-lookup budget (or, when
    ``counts_as_join``, its join limit, which this request is then counted against)."""
    now = time.time() if now is None else now
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
    now = time.time() if now is None else now
    start, end = _window(now)
    try:
        aws.dynamodb().update_item(
            TableName=config().rate_limits_table,
            Key=_key(inv, start),
            UpdateExpression="ADD #failures :one SET windowStart = :ws, expiresAt = :exp",
            ExpressionAttributeNames={"#failures": FAILURES},
            ExpressionAttributeValues={
                ":one": {"N": "1"},
                ":ws": {"N": str(start)},
                ":exp": {"N": str(end + _TTL_MARGIN_S)},
            },
        )
    except (ClientError, BotoCoreError) as error:
        inv.count_dependency_failure("rateLimits", error)


class _Refused(Exception):
    def __init__(self, failures_exhausted: bool) -> None:
        super().__init__("refused")
        self.failures_exhausted = failures_exhausted


def _count_join(inv: Invocation, start: int, end: int, join_limit: int, budget: int) -> None:
    try:
        aws.dynamodb().update_item(
            TableName=config().rate_limits_table,
            Key=_key(inv, start),
            UpdateExpression="ADD #count :one SET windowStart = :ws, expiresAt = :exp",
            ConditionExpression=(
                "(attribute_not_exists(#count) OR #count < :limit) AND "
                "(attribute_not_exists(#failures) OR #failures < :budget)"
            ),
            # "count" is a DynamoDB reserved word.
            ExpressionAttributeNames={"#count": "count", "#failures": FAILURES},
            ExpressionAttributeValues={
                ":one": {"N": "1"},
                ":ws": {"N": str(start)},
                ":exp": {"N": str(end + _TTL_MARGIN_S)},
                ":limit": {"N": str(join_limit)},
                ":budget": {"N": str(budget)},
            },
            ReturnValuesOnConditionCheckFailure="ALL_OLD",
        )
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
            raise
        old = error.response.get("Item") or {}
        failures = int(old.get(FAILURES, {}).get("N", "0"))
        raise _Refused(failures_exhausted=failures >= budget) from None


def _check_budget(inv: Invocation, start: int, end: int, budget: int, now: float) -> None:
    item = (
        aws.dynamodb()
        .get_item(
            TableName=config().rate_limits_table,
            Key=_key(inv, start),
            ProjectionExpression="#failures",
            ExpressionAttributeNames={"#failures": FAILURES},
            ConsistentRead=True,
        )
        .get("Item")
        or {}
    )
    if int(item.get(FAILURES, {}).get("N", "0")) >= budget:
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
