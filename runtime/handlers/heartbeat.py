"""``heartbeat``: keep a connection healthy; reply ``heartbeatAck``.

Budget: one DynamoDB call (metrics ride in the EMF log line). The per-connection rate limit,
``lastSeenAt`` and the once-only refresh/warning bookkeeping are all one conditional UpdateItem
on the connection record (``store.record_heartbeat``). When that call is the one that marked a
notice as sent, the notice is pushed through @connections — once per connection, however many
heartbeats follow. A connection without a record (e.g. a listener whose session ended) still
gets its ack: the socket is open, and recreating the record would resurrect a finished role.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from runtime import fanout, refresh_tokens, store
from runtime.config import config
from runtime.errors import ErrorCode, ServiceError
from runtime.hashing import keyed_hash
from runtime.invocation import Invocation, message_route
from runtime.messages import (
    ConnectionRefreshRequired,
    HeartbeatAck,
    Push,
    connection_warning,
    heartbeat_ack,
)
from runtime.metric_names import DEPENDENCY_FAILURES, HEARTBEAT_LATENCY
from runtime.observability.logs import log
from runtime.protocol import now_ms
from runtime.settings import CONNECTION_CUTOFF_MINUTES

# API Gateway closes every WebSocket connection after two hours.
MAX_CONNECTION_MINUTES = CONNECTION_CUTOFF_MINUTES
_MINUTE_MS = 60_000


def refresh_offset_ms(
    connection_id: str, spread_minutes: int, *, hash_hex: Callable[[str], str] = keyed_hash
) -> int:
    """This connection's own delay of its refresh push, in [0, spread): stable for the
    connection (a keyed hash of its ID, so a client cannot choose it by its ID), spread
    evenly over the connections of an audience that joined together. ``hash_hex`` is for
    models that have no stack key (bench/refresh_model.py)."""
    spread_ms = spread_minutes * _MINUTE_MS
    if spread_ms <= 0:
        return 0
    return int(hash_hex("refresh:" + connection_id), 16) % spread_ms


def refresh_due_ms(
    connection_id: str,
    refresh_minutes: int,
    spread_minutes: int,
    *,
    hash_hex: Callable[[str], str] = keyed_hash,
) -> int:
    """The connection age (ms) at which ``connectionRefreshRequired`` is pushed to it."""
    offset = refresh_offset_ms(connection_id, spread_minutes, hash_hex=hash_hex)
    return refresh_minutes * _MINUTE_MS + offset


@message_route(latency=HEARTBEAT_LATENCY)
def handler(inv: Invocation, message: dict[str, Any]) -> HeartbeatAck:
    cfg = config()
    now = now_ms()
    age_ms = now - inv.connected_at_ms if inv.connected_at_ms else None
    try:
        record = store.record_heartbeat(
            inv.connection_id,
            now_ms=now,
            per_minute=cfg.heartbeatsPerMinute,
            refresh_due=age_ms is not None
            and age_ms
            >= refresh_due_ms(
                inv.connection_id, cfg.connectionRefreshMinutes, cfg.connectionRefreshSpreadMinutes
            ),
            warning_due=_reached(age_ms, cfg.connectionWarningMinutes),
            connected_at_ms=inv.connected_at_ms or None,
        )
    except store.Conflict:
        raise _rate_limited(now, cfg.heartbeatsPerMinute) from None
    if record is None:
        log.info("heartbeat on a connection without a record; acknowledged, not recreated")
        return heartbeat_ack(now)
    inv.identify(session_id=record.get("sessionId"), user_id=record.get("userId"))
    if record.get(store.REFRESH_NOTIFIED) == now:
        _push_refresh_required(inv, record, now)
    if record.get(store.WARNING_NOTIFIED) == now and age_ms is not None:
        remaining = max(0, (MAX_CONNECTION_MINUTES * _MINUTE_MS - age_ms) // _MINUTE_MS)
        _push(inv, connection_warning(remaining, now))
    return heartbeat_ack(now)


def _reached(age_ms: int | None, minutes: int) -> bool:
    return age_ms is not None and age_ms >= minutes * _MINUTE_MS


def _rate_limited(now: int, limit: int) -> ServiceError:
    window_end = (store.heartbeat_window(now) + 1) * store.HEARTBEAT_WINDOW_MS
    retry_after = max(1, math.ceil((window_end - now) / 1000))
    return ServiceError(
        ErrorCode.RATE_LIMIT_EXCEEDED,
        f"Too many heartbeat requests: the limit is {limit} per minute; retry in {retry_after} s.",
        retryAfter=retry_after,
        limit=limit,
        windowSeconds=store.HEARTBEAT_WINDOW_MS // 1000,
    )


def _push_refresh_required(inv: Invocation, record: store.ConnectionItem, now: int) -> None:
    role = record.get("role")
    if role not in store.ROLES or not record.get("sessionId"):
        # Nothing to refresh into; the warning (if due) still tells the client the clock.
        log.debug("refresh age reached by a connection without a role; nothing pushed")
        return
    session_id, language = record["sessionId"], record.get("targetLanguage")
    notice: ConnectionRefreshRequired = {
        "type": "connectionRefreshRequired",
        "sessionId": session_id,
        "role": role,
        "refreshToken": refresh_tokens.issue(session_id, role, inv.connection_id),
        "timestamp": now,
    }
    if role == store.LISTENER and language:
        # Key order as documented: targetLanguage after role.
        notice = {
            "type": "connectionRefreshRequired",
            "sessionId": session_id,
            "role": role,
            "targetLanguage": language,
            "refreshToken": notice["refreshToken"],
            "timestamp": now,
        }
    _push(inv, notice)


def _push(inv: Invocation, message: Push) -> None:
    """A notice is best effort: the heartbeat itself has already succeeded."""
    try:
        delivered = fanout.post(inv.connection_id, message)
    except Exception as error:
        # Not inv.count_dependency_failure: its message would carry botocore's text, which
        # can embed the @connections URL and so the raw connection ID.
        log.bind(errorMessage=fanout.describe(error)).warning(
            f"{message['type']} push failed; continuing degraded"
        )
        inv.metrics.add(DEPENDENCY_FAILURES, 1, Operation="connectionPush")
        return
    if delivered:
        log.info(f"pushed {message['type']}")
    else:
        log.info(f"{message['type']} not pushed: the connection is gone")
