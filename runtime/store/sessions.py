"""Session records (the Sessions table) and the active-sessions counter item.

Creating a session, joining it and moving it to a refreshed connection each touch the
session and a connection record in one transaction, so they live here, beside the session.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, cast

from runtime import clock
from runtime.config import config
from runtime.store.connections import LISTENER, SPEAKER
from runtime.store.dynamo import (
    Conflict,
    conditional_set,
    from_item,
    get_item,
    records,
    to_item,
    transact,
    ttl_from_now,
    update_or_conflict,
    update_part,
    values,
)
from runtime.store.records import SessionItem
from runtime.tables import ACTIVE_SESSIONS_INDEX

# Only active sessions carry this attribute, so only they appear in the sparse index.
ACTIVE_SHARD = "active"
# The item in the Sessions table that counts active sessions (its key can never be a
# valid session ID, so no client can address it).
COUNTERS_KEY = "#counters"
# "role" and "ttl" are DynamoDB reserved words.
_ROLE = {"#role": "role"}
_ROLE_TTL = {"#role": "role", "#ttl": "ttl"}


def get_session(session_id: str) -> SessionItem | None:
    return cast("SessionItem | None", get_item(config().sessions_table, {"sessionId": session_id}))


def create_session(session: SessionItem, *, max_active: int) -> None:
    """Create a session and make its connection the speaker, atomically, in one transaction.

    Three parts: the active-sessions counter (< ``max_active``), the new session item (its ID
    must be unused) and the speaker's connection (must exist, without a role). Conflict
    ``reasons`` name the parts that failed: ``limit``, ``taken``, ``role``.
    """
    cfg = config()
    counter = update_part(
        cfg.sessions_table,
        {"sessionId": COUNTERS_KEY},
        "ADD activeSessions :one",
        "attribute_not_exists(activeSessions) OR activeSessions < :max",
        {"one": 1, "max": max_active},
    )
    session_put = {
        "Put": {
            "TableName": cfg.sessions_table,
            "Item": to_item({**session, "activeShard": ACTIVE_SHARD}),
            "ConditionExpression": "attribute_not_exists(sessionId)",
        }
    }
    role = update_part(
        cfg.connections_table,
        {"connectionId": session["speakerConnectionId"]},
        "SET #role = :role, sessionId = :sid",
        "attribute_exists(connectionId) AND attribute_not_exists(#role)",
        {"role": SPEAKER, "sid": session["sessionId"]},
        names=_ROLE,
    )
    transact({"limit": counter, "taken": session_put, "role": role})


def add_listener(session_id: str, *, max_listeners: int) -> SessionItem:
    """Count one more listener if the session is active and not full; returns the new item.

    Conflict carries the old item (None when the session does not exist).
    """
    response = update_or_conflict(
        TableName=config().sessions_table,
        Key=to_item({"sessionId": session_id}),
        UpdateExpression="ADD listenerCount :one",
        ConditionExpression="isActive = :true AND listenerCount < :max",
        ExpressionAttributeValues=values(one=1, true=True, max=max_listeners),
        ReturnValues="ALL_NEW",
        ReturnValuesOnConditionCheckFailure="ALL_OLD",
    )
    item = from_item(response.get("Attributes"))
    assert item is not None
    return cast("SessionItem", item)


def remove_listener(session_id: str) -> int | None:
    """Count one listener fewer, never below zero; returns the new count (None if none left)."""
    try:
        response = update_or_conflict(
            TableName=config().sessions_table,
            Key=to_item({"sessionId": session_id}),
            UpdateExpression="ADD listenerCount :minus",
            ConditionExpression="listenerCount > :zero",
            ExpressionAttributeValues=values(minus=-1, zero=0),
            ReturnValues="UPDATED_NEW",
        )
    except Conflict:
        return None
    return (from_item(response.get("Attributes")) or {}).get("listenerCount")


_END_SESSION = "SET isActive = :false, endReason = :reason, endedAt = :now REMOVE activeShard"


def end_session(session_id: str, *, speaker_connection_id: str | None, reason: str) -> bool:
    """Mark a session inactive and release its slot in the active-sessions counter.

    With ``speaker_connection_id`` the session ends only if that connection is still its
    speaker (a refreshed speaker's old connection must not end it). Returns False if the
    session was already ended (redelivery) or has another speaker.
    """
    cfg = config()
    condition = "isActive = :true"
    named: dict[str, Any] = {
        "true": True,
        "false": False,
        "reason": reason,
        "now": clock.now_ms(),
    }
    if speaker_connection_id:
        condition += " AND speakerConnectionId = :speaker"
        named["speaker"] = speaker_connection_id
    try:
        transact(
            {
                "session": update_part(
                    cfg.sessions_table, {"sessionId": session_id}, _END_SESSION, condition, named
                ),
                "counter": update_part(
                    cfg.sessions_table,
                    {"sessionId": COUNTERS_KEY},
                    "ADD activeSessions :minus",
                    "activeSessions > :zero",
                    {"minus": -1, "zero": 0},
                ),
            }
        )
    except Conflict as conflict:
        if "session" in conflict.reasons:
            return False
        # The counter was already 0 (drift): end the session anyway; the sweeper reconciles.
        return conditional_set(
            cfg.sessions_table, {"sessionId": session_id}, _END_SESSION, condition, named
        )
    return True


def active_sessions() -> Iterator[SessionItem]:
    """Every active session (sparse index: bounded by maxActiveSessions, not by history)."""
    for record in records(
        "query",
        {
            "TableName": config().sessions_table,
            "IndexName": ACTIVE_SESSIONS_INDEX.name,
            "KeyConditionExpression": "activeShard = :shard",
            "ExpressionAttributeValues": values(shard=ACTIVE_SHARD),
        },
    ):
        yield cast("SessionItem", record)


def swap_speaker(
    session_id: str, *, user_id: str, connection_id: str, now_ms: int, expires_at: int
) -> None:
    """Make ``connection_id`` the speaker of ``user_id``'s active session, in one transaction.

    The session must be active and belong to ``user_id``; its ``speakerConnectionId`` becomes
    the new connection and its TTL moves to ``expires_at`` (epoch seconds). The new connection
    must exist and have no role yet. Conflict reasons: ``session``, ``role``.
    """
    cfg = config()
    session = update_part(
        cfg.sessions_table,
        {"sessionId": session_id},
        "SET speakerConnectionId = :conn, expiresAt = :exp",
        "isActive = :true AND speakerUserId = :uid",
        {"conn": connection_id, "exp": expires_at, "true": True, "uid": user_id},
        old_item=True,
    )
    role = update_part(
        cfg.connections_table,
        {"connectionId": connection_id},
        "SET #role = :role, sessionId = :sid, #ttl = :ttl, lastSeenAt = :now",
        "attribute_exists(connectionId) AND attribute_not_exists(#role)",
        {"role": SPEAKER, "sid": session_id, "ttl": ttl_from_now(), "now": now_ms},
        names=_ROLE_TTL,
        old_item=True,
    )
    transact({"session": session, "role": role})


def add_refreshed_listener(
    session_id: str,
    *,
    connection_id: str,
    target_language: str,
    max_listeners: int,
    now_ms: int,
    connected_at_ms: int,
) -> None:
    """Count a refreshing listener's new connection and give it the role, in one transaction.

    ``max_listeners`` is the refresh bound (the cap plus the refresh slack): the old
    connection still counts until its ``$disconnect``. Conflict reasons:
    ``session`` (old item: None if no such session), ``role`` (old connection record).
    """
    cfg = config()
    session = update_part(
        cfg.sessions_table,
        {"sessionId": session_id},
        "ADD listenerCount :one",
        "isActive = :true AND (attribute_not_exists(listenerCount) OR listenerCount < :max)",
        {"one": 1, "true": True, "max": max_listeners},
        old_item=True,
    )
    role = update_part(
        cfg.connections_table,
        {"connectionId": connection_id},
        "SET #role = :role, sessionId = :sid, targetLanguage = :lang, #ttl = :ttl, "
        "lastSeenAt = :now, connectedAt = if_not_exists(connectedAt, :connected)",
        # Never creates a record: a refresh racing its connection's $disconnect must not
        # leave a counted listener behind.
        "attribute_exists(connectionId) AND attribute_not_exists(#role)",
        {
            "role": LISTENER,
            "sid": session_id,
            "lang": target_language,
            "ttl": ttl_from_now(),
            "now": now_ms,
            "connected": connected_at_ms,
        },
        names=_ROLE_TTL,
        old_item=True,
    )
    transact({"session": session, "role": role})
