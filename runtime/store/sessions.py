"""Session records (the Sessions table) and the active-sessions counter item.

Creating a session, joining it and moving it to a refreshed connection each touch the
session and a connection record in one transaction, so they live here, beside the session.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, cast

from runtime import aws, clock
from runtime.config import config
from runtime.hashing import keyed_hash
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
# Per speaker (user): the item whose ``sessions`` string set holds the user's active session
# IDs. A set, not a number: adding and removing an ID is idempotent, and a refusal can say
# (and check) which sessions the user holds. The key can never be a valid session ID.
USER_KEY_PREFIX = "#user:"
_SESSIONS = {"#sessions": "sessions"}
# "role" and "ttl" are DynamoDB reserved words.
_ROLE = {"#role": "role"}
_ROLE_TTL = {"#role": "role", "#ttl": "ttl"}


def user_key(user_id: str) -> str:
    """The per-user item's key: a keyed hash, so no user ID is spelled out in a key."""
    return USER_KEY_PREFIX + keyed_hash("user:" + user_id)


def _user_sessions_part(
    user_id: str, session_ids: set[str], *, adding: int | None
) -> dict[str, Any]:
    """Add (``adding``: the per-user limit) or remove ``session_ids`` in the user's set."""
    cfg = config()
    expires = ttl_from_now() + cfg.dataRetentionHours * 3600  # outlives a refreshed session
    if adding is None:
        # No condition: removing is idempotent, and must never stop a session from ending.
        return {
            "Update": {
                "TableName": cfg.sessions_table,
                "Key": to_item({"sessionId": user_key(user_id)}),
                "UpdateExpression": "DELETE #sessions :sid SET expiresAt = :exp",
                "ExpressionAttributeNames": _SESSIONS,
                "ExpressionAttributeValues": values(sid=session_ids, exp=expires),
            }
        }
    return update_part(
        cfg.sessions_table,
        {"sessionId": user_key(user_id)},
        "ADD #sessions :sid SET expiresAt = :exp",
        "attribute_not_exists(#sessions) OR size(#sessions) < :max",
        {"sid": session_ids, "exp": expires, "max": adding},
        names=_SESSIONS,
        old_item=True,
    )


def forget_user_sessions(user_id: str, session_ids: set[str]) -> None:
    """Remove ended sessions from the user's set (one UpdateItem)."""
    if session_ids:
        aws.dynamodb().update_item(
            **_user_sessions_part(user_id, session_ids, adding=None)["Update"]
        )


def get_session(session_id: str) -> SessionItem | None:
    return cast("SessionItem | None", get_item(config().sessions_table, {"sessionId": session_id}))


def create_session(session: SessionItem, *, max_active: int, max_per_user: int) -> None:
    """Create a session and make its connection the speaker, atomically, in one transaction.

    Four parts: the active-sessions counter (< ``max_active``), the speaker's set of active
    sessions (fewer than ``max_per_user``; it gets the new ID), the new session item (its ID
    must be unused) and the speaker's connection (must exist, without a role). Conflict
    ``reasons`` name the parts that failed: ``limit``, ``user`` (with the user's item as it
    was), ``taken``, ``role``.
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
    user = _user_sessions_part(
        session["speakerUserId"], {session["sessionId"]}, adding=max_per_user
    )
    transact({"limit": counter, "user": user, "taken": session_put, "role": role})


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


def end_session(
    session_id: str,
    *,
    speaker_connection_id: str | None,
    reason: str,
    user_id: str | None = None,
) -> bool:
    """Mark a session inactive and release its slot in the active-sessions counter (and, with
    ``user_id``, in its speaker's set of active sessions, in the same transaction).

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
    parts = {
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
    if user_id:
        parts["user"] = _user_sessions_part(user_id, {session_id}, adding=None)
    try:
        transact(parts)
    except Conflict as conflict:
        if "session" in conflict.reasons:
            return False
        # The counter was already 0 (drift): end the session anyway; the sweeper reconciles.
        ended = conditional_set(
            cfg.sessions_table, {"sessionId": session_id}, _END_SESSION, condition, named
        )
        if ended and user_id:
            forget_user_sessions(user_id, {session_id})
        return ended
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
    session_id: str,
    *,
    user_id: str,
    replaces: str,
    connection_id: str,
    now_ms: int,
    expires_at: int,
    swapped_before: int | None = None,
) -> None:
    """Make ``connection_id`` the speaker of ``user_id``'s active session in place of
    ``replaces``, in one transaction.

    The session must be active, belong to ``user_id`` and still have ``replaces`` as its
    speaker, so of concurrent refreshes replacing one connection exactly one wins; its
    ``speakerConnectionId`` becomes the new connection and its TTL moves to ``expires_at``
    (epoch seconds) and ``speakerSince`` to ``now_ms``. With ``swapped_before`` (epoch ms) the
    session's speaker must also not have changed since then. The new connection must exist
    and have no role yet. Conflict reasons: ``session`` (with the session as it was), ``role``.
    """
    condition = "isActive = :true AND speakerUserId = :uid AND speakerConnectionId = :old"
    named: dict[str, Any] = {
        "conn": connection_id,
        "exp": expires_at,
        "now": now_ms,
        "true": True,
        "uid": user_id,
        "old": replaces,
    }
    if swapped_before is not None:
        condition += " AND (attribute_not_exists(speakerSince) OR speakerSince < :settled)"
        named["settled"] = swapped_before
    cfg = config()
    session = update_part(
        cfg.sessions_table,
        {"sessionId": session_id},
        "SET speakerConnectionId = :conn, expiresAt = :exp, speakerSince = :now",
        condition,
        named,
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
    replaces: str | None = None,
) -> None:
    """Count a refreshing listener's new connection and give it the role, in one transaction.

    ``max_listeners`` is the bound: the cap plus the refresh slack when the refresh proved
    (``replaces``) which listener connection it replaces — that one still counts until its
    ``$disconnect`` — else the cap, as for a join. The replaced connection must still be a
    listener of the session and not replaced before; it is marked ``replacedAt``, so a proof
    is good for one refresh. Conflict reasons: ``session`` (old item: None if no such
    session), ``role`` (the new connection's record), ``replaced`` (the proof did not hold).
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
    parts = {"session": session, "role": role}
    if replaces is not None and replaces != connection_id:
        parts["replaced"] = update_part(
            cfg.connections_table,
            {"connectionId": replaces},
            "SET replacedAt = :now",
            "#role = :role AND sessionId = :sid AND attribute_not_exists(replacedAt)",
            {"role": LISTENER, "sid": session_id, "now": now_ms},
            names=_ROLE,
        )
    transact(parts)
