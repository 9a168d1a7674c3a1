"""Counting windows: the RateLimits table's fixed windows and a connection's heartbeat minute.

Both count with one conditional write that adds only while under the limit, so a check
needs no read and concurrent requests cannot overshoot.
"""

from __future__ import annotations

from typing import Any, cast

from runtime import aws
from runtime.config import config
from runtime.store.dynamo import Conflict, from_item, to_item, update_or_conflict, values
from runtime.store.records import ConnectionItem

# "count" is a DynamoDB reserved word.
_COUNT = {"#count": "count"}
# Failed session lookups of one IP, counted on its join-limit item (runtime.session_lookups).
FAILED_LOOKUPS = "failedLookups"


def count_in_window(
    identifier: str,
    *,
    limit: int,
    window_start: int,
    expires_at: int,
    failures_below: int | None = None,
) -> None:
    """Count one request in the RateLimits item ``identifier``; Conflict when ``limit``
    requests were already counted in it. The item expires (TTL) at ``expires_at``.

    With ``failures_below`` the request is also refused once the item has counted that many
    failed lookups; the Conflict then carries the item as it was, to tell which limit said no.
    """
    condition = "attribute_not_exists(#count) OR #count < :limit"
    names = dict(_COUNT)
    named: dict[str, Any] = {"one": 1, "ws": window_start, "exp": expires_at, "limit": limit}
    extra: dict[str, Any] = {}
    if failures_below is not None:
        condition = f"({condition}) AND (attribute_not_exists(#failures) OR #failures < :budget)"
        names["#failures"] = FAILED_LOOKUPS
        named["budget"] = failures_below
        extra["ReturnValuesOnConditionCheckFailure"] = "ALL_OLD"
    update_or_conflict(
        TableName=config().rate_limits_table,
        Key=to_item({"identifier": identifier}),
        UpdateExpression="ADD #count :one SET windowStart = :ws, expiresAt = :exp",
        ConditionExpression=condition,
        ExpressionAttributeNames=names,
        ExpressionAttributeValues=values(**named),
        **extra,
    )


# A token bucket's one attribute: its theoretical arrival time (epoch ms), GCRA-style.
BUCKET_TAT = "tat"
# Attempts of the two-write take before it gives up and lets the request through (a
# concurrent writer moved the bucket between them; more rounds would not be worth it).
_BUCKET_ROUNDS = 3


def take_from_bucket(
    identifier: str, *, now_ms: int, interval_ms: int, burst: int, expires_at: int
) -> int | None:
    """Take one token from the RateLimits item ``identifier``: a token bucket of ``burst``
    tokens refilled one per ``interval_ms``. None when taken; else how many ms until the
    next token.

    The bucket is one number, ``tat`` (the generic cell rate algorithm): a full bucket has
    ``tat`` ≤ now, each token taken moves it ``interval_ms`` on, and a token is there while
    ``tat`` ≤ now + (burst − 1) × interval. A DynamoDB update cannot compute max(tat, now),
    so the two cases are two conditional writes: an idle bucket (absent, or ``tat`` ≤ now) is
    restarted at now + interval — one write, the common case of an address seen for the
    first time in a while — and a bucket in use is advanced by one interval while under the
    ceiling: two writes (the first one's failed condition returns ``tat``). A refusal costs
    one or two. Concurrent takes cannot overshoot: each write's condition is checked
    atomically.
    """
    ceiling = now_ms + (burst - 1) * interval_ms
    table = config().rate_limits_table
    key = to_item({"identifier": identifier})
    names = {"#tat": BUCKET_TAT}
    for _ in range(_BUCKET_ROUNDS):
        try:
            update_or_conflict(
                TableName=table,
                Key=key,
                UpdateExpression="SET #tat = :next, expiresAt = :exp",
                ConditionExpression="attribute_not_exists(#tat) OR #tat <= :now",
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values(
                    next=now_ms + interval_ms, now=now_ms, exp=expires_at
                ),
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
            return None
        except Conflict as idle_refused:
            tat = int((idle_refused.item or {}).get(BUCKET_TAT, 0))
        if tat > ceiling:
            return tat - ceiling
        try:
            update_or_conflict(
                TableName=table,
                Key=key,
                UpdateExpression="SET #tat = #tat + :interval, expiresAt = :exp",
                ConditionExpression="#tat > :now AND #tat <= :ceiling",
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values(
                    interval=interval_ms, now=now_ms, ceiling=ceiling, exp=expires_at
                ),
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
            return None
        except Conflict as busy_refused:
            tat = int((busy_refused.item or {}).get(BUCKET_TAT, 0))
        if tat > ceiling:
            return tat - ceiling
        # Concurrent takes moved it between the two writes (or it went idle): again.
    return None


def count_failed_lookup(identifier: str, *, window_start: int, expires_at: int) -> None:
    """Count one failed session lookup on the RateLimits item ``identifier`` (no condition)."""
    aws.dynamodb().update_item(
        TableName=config().rate_limits_table,
        Key=to_item({"identifier": identifier}),
        UpdateExpression="ADD #failures :one SET windowStart = :ws, expiresAt = :exp",
        ExpressionAttributeNames={"#failures": FAILED_LOOKUPS},
        ExpressionAttributeValues=values(one=1, ws=window_start, exp=expires_at),
    )


def failed_lookups(identifier: str) -> int:
    """How many failed lookups the RateLimits item ``identifier`` has counted (consistent)."""
    response = aws.dynamodb().get_item(
        TableName=config().rate_limits_table,
        Key=to_item({"identifier": identifier}),
        ProjectionExpression="#failures",
        ExpressionAttributeNames={"#failures": FAILED_LOOKUPS},
        ConsistentRead=True,
    )
    return int((from_item(response.get("Item")) or {}).get(FAILED_LOOKUPS, 0))


HEARTBEAT_WINDOW_MS = 60_000
# How many earlier windows a heartbeat removes at most: a connection lives two hours at most
# (API Gateway), so no older window can exist.
MAX_STALE_WINDOWS = 121
# Minutes past heartbeatTimeoutSeconds before a silent connection is surely closed: the
# sweeper runs every minute, and one more for a pass that overran.
SWEEP_SLACK_WINDOWS = 3
REFRESH_NOTIFIED = "refreshNotifiedAt"
WARNING_NOTIFIED = "warningNotifiedAt"


def heartbeat_window(now_ms: int) -> int:
    """The index of the per-minute rate-limit window ``now_ms`` falls in."""
    return now_ms // HEARTBEAT_WINDOW_MS


def stale_windows(window: int, connected_at_ms: int | None, silence_s: int | None = None) -> range:
    """The windows a heartbeat in ``window`` removes: every earlier one since the connection
    opened (at most ``MAX_STALE_WINDOWS``); without ``connected_at_ms``, the previous one.

    With ``silence_s`` (how long a connection may stay silent before the sweeper closes it),
    only the windows of that silence plus ``SWEEP_SLACK_WINDOWS``: a heartbeat after a longer
    silence does not come (the sweeper closed the connection), so no counter older than that
    can exist. Without the bound a heartbeat late in a connection's two hours REMOVEd over a
    hundred names, and the local stack, whose connections age on the alarms' clock, spent
    its embedded DynamoDB parsing them (the rehearsal's heartbeats timed out).
    """
    first = window - 1
    if connected_at_ms is not None:
        oldest = window - MAX_STALE_WINDOWS
        if silence_s is not None:
            oldest = max(oldest, window - (silence_s * 1000 // HEARTBEAT_WINDOW_MS + 1)
                         - SWEEP_SLACK_WINDOWS)  # fmt: skip
        first = min(first, max(heartbeat_window(connected_at_ms), oldest))
    return range(first, window)


def record_heartbeat(
    connection_id: str,
    *,
    now_ms: int,
    per_minute: int,
    refresh_due: bool = False,
    warning_due: bool = False,
    connected_at_ms: int | None = None,
) -> ConnectionItem | None:
    """A heartbeat's whole bookkeeping in one UpdateItem; returns the record as it now is.

    Sets ``lastSeenAt``, counts the heartbeat in this minute's counter (an attribute named
    after the window) only while under ``per_minute``, and when due sets
    ``refreshNotifiedAt`` / ``warningNotifiedAt`` to ``now_ms`` unless already set — so a
    returned value equal to ``now_ms`` means this call is the one that must push. None when
    the connection has no record (never recreated). Conflict (with the record) when the
    limit is reached.

    The record keeps only this window's counter, whatever the gaps between heartbeats: the
    same call REMOVEs every earlier window since the connection opened (``connected_at_ms``;
    a connection lives two hours at most, so the list is bounded). REMOVE of an absent
    attribute is a no-op, so no read is needed to know which ones exist.
    """
    window = heartbeat_window(now_ms)
    names = {"#cur": f"hb{window}"}
    silence_s = config().heartbeatTimeoutSeconds
    stale = {
        f"#old{n}": f"hb{w}"
        for n, w in enumerate(stale_windows(window, connected_at_ms, silence_s))
    }
    names.update(stale)
    sets = ["lastSeenAt = :now"]
    for due, attribute, alias in (
        (refresh_due, REFRESH_NOTIFIED, "#refresh"),
        (warning_due, WARNING_NOTIFIED, "#warning"),
    ):
        if due:
            names[alias] = attribute
            sets.append(f"{alias} = if_not_exists({alias}, :now)")
    removed = f" REMOVE {', '.join(stale)}" if stale else ""
    try:
        response = update_or_conflict(
            TableName=config().connections_table,
            Key=to_item({"connectionId": connection_id}),
            UpdateExpression=f"SET {', '.join(sets)} ADD #cur :one" + removed,
            ConditionExpression=(
                "attribute_exists(connectionId) AND (attribute_not_exists(#cur) OR #cur < :limit)"
            ),
            ExpressionAttributeNames=names,
            ExpressionAttributeValues=values(now=now_ms, one=1, limit=per_minute),
            ReturnValues="ALL_NEW",
            ReturnValuesOnConditionCheckFailure="ALL_OLD",
        )
    except Conflict as conflict:
        if conflict.item is None:
            return None
        raise
    return cast("ConnectionItem | None", from_item(response.get("Attributes")))
