"""What the sweeper reads and corrects: the Scan of live connections, batched lookups of
sessions and speakers, listener counts from the records, and the conditional corrections."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any, cast

from runtime.config import config
from runtime.store.connections import LISTENER
from runtime.store.dynamo import (
    Conflict,
    batch_get,
    conditional_set,
    from_item,
    pages,
    records,
    to_item,
    update_or_conflict,
    values,
)
from runtime.store.records import ConnectionItem, SessionItem
from runtime.store.sessions import COUNTERS_KEY
from runtime.tables import LISTENERS_INDEX


def count_listeners(session_id: str) -> int:
    """How many listener records a session has: GSI Query with Select=COUNT (no items read back)."""
    request = {
        "TableName": config().connections_table,
        "IndexName": LISTENERS_INDEX.name,
        "KeyConditionExpression": "sessionId = :sid",
        "FilterExpression": "#role = :listener",
        "ExpressionAttributeNames": {"#role": "role"},
        "ExpressionAttributeValues": values(sid=session_id, listener=LISTENER),
        "Select": "COUNT",
    }
    return sum(int(page.get("Count", 0)) for page in pages("query", request))


def set_listener_count(session_id: str, *, seen: int | None, actual: int) -> bool:
    """Correct an active session's ``listenerCount`` to ``actual`` if it is still ``seen``.

    The condition makes the correction lose against any join or leave that happened since
    the count was read; False when it did (the next sweep looks again).
    """
    return _correct({"sessionId": session_id}, "listenerCount", seen, actual, active_only=True)


def set_active_sessions(*, seen: int | None, actual: int) -> bool:
    """Correct the active-sessions counter to ``actual`` if it is still ``seen`` (None: absent)."""
    return _correct({"sessionId": COUNTERS_KEY}, "activeSessions", seen, actual)


def _correct(
    key: dict[str, str], attribute: str, seen: int | None, actual: int, *, active_only: bool = False
) -> bool:
    """Set a count in the Sessions table to ``actual`` only while it is still ``seen``."""
    condition = f"attribute_not_exists({attribute})" if seen is None else f"{attribute} = :seen"
    named: dict[str, Any] = {"actual": actual}
    if seen is not None:
        named["seen"] = seen
    if active_only:
        condition = "isActive = :true AND " + condition
        named["true"] = True
    return conditional_set(
        config().sessions_table, key, f"SET {attribute} = :actual", condition, named
    )


def note_missing_speaker(session_id: str, *, speaker_connection_id: str, now_ms: int) -> int | None:
    """Note on an active session that its speaker's record was found missing; since when
    (epoch ms) it has been noted for that speaker, or None if the session ended or has
    another speaker now.

    One conditional UpdateItem: it writes only the first time a speaker is found missing, and
    a failed condition returns the item, so a later pass learns how long it has been.
    """
    try:
        update_or_conflict(
            TableName=config().sessions_table,
            Key=to_item({"sessionId": session_id}),
            UpdateExpression="SET missingSpeaker = :speaker, missingSpeakerSince = :now",
            ConditionExpression=(
                "isActive = :true AND speakerConnectionId = :speaker AND "
                "(attribute_not_exists(missingSpeaker) OR missingSpeaker <> :speaker)"
            ),
            ExpressionAttributeValues=values(true=True, speaker=speaker_connection_id, now=now_ms),
            ReturnValuesOnConditionCheckFailure="ALL_OLD",
        )
    except Conflict as conflict:
        old = conflict.item or {}
        still_missing = (
            old.get("isActive") is True
            and old.get("speakerConnectionId") == speaker_connection_id
            and old.get("missingSpeaker") == speaker_connection_id
        )
        return int(old.get("missingSpeakerSince") or 0) if still_missing else None
    return now_ms


def existing_connections(connection_ids: list[str]) -> set[str]:
    """Which of these connections still have a record: BatchGetItem, 100 keys per call."""
    items = batch_get(config().connections_table, "connectionId", connection_ids, "connectionId")
    return {item["connectionId"]["S"] for item in items}


def sessions_by_id(session_ids: Iterable[str]) -> dict[str, SessionItem]:
    """These sessions' state as it is now (consistent BatchGetItem, 100 per call); a session
    that no longer exists is absent."""
    items = batch_get(
        config().sessions_table,
        "sessionId",
        session_ids,
        "sessionId, isActive, endReason, endedAt, speakerConnectionId",
    )
    sessions = (cast("SessionItem | None", from_item(item)) for item in items)
    return {s["sessionId"]: s for s in sessions if s}


def sweep_connections(silent_since_ms: int) -> Iterator[ConnectionItem]:
    """The records the sweeper looks at, in one Scan (the table holds only live connections;
    leftovers expire by TTL): the silent ones (``is_silent``) and every one holding a role.
    The filter costs no reads: a Scan is charged for what it reads, not what it returns."""
    for record in records(
        "scan",
        {
            "TableName": config().connections_table,
            "FilterExpression": (
                "lastSeenAt < :cutoff OR (attribute_not_exists(lastSeenAt) AND "
                "(attribute_not_exists(connectedAt) OR connectedAt < :cutoff)) OR "
                "attribute_exists(sessionId)"
            ),
            # Whole records: an orphan's role is released by writing its record back.
            "ExpressionAttributeValues": values(cutoff=silent_since_ms),
        },
    ):
        yield cast("ConnectionItem", record)


def is_silent(record: ConnectionItem, silent_since_ms: int) -> bool:
    """Whether a record was last seen before ``silent_since_ms`` (``sweep_connections``' filter:
    without ``lastSeenAt``, ``connectedAt`` counts; without either, it is silent)."""
    seen = record.get("lastSeenAt", record.get("connectedAt"))
    return seen is None or int(seen) < silent_since_ms
