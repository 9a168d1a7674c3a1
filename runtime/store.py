"""Every read and write of the Sessions and Connections tables, one function per operation.

Each function is one DynamoDB round trip (the fan-out's batched deletes excepted), and every
capacity limit is a condition inside a write, never a read followed by a write. Attribute
names here are the data contract (docs/architecture.md#data).
"""

from __future__ import annotations

import time
from collections.abc import Collection, Iterable, Iterator
from typing import Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import ClientError

from runtime import aws
from runtime.config import config
from runtime.tables import ACTIVE_SESSIONS_INDEX, LISTENERS_INDEX

SPEAKER = "speaker"
LISTENER = "listener"
ROLES = (SPEAKER, LISTENER)
# Only active sessions carry this attribute, so only they appear in the sparse index.
ACTIVE_SHARD = "active"
# The item in the Sessions table that counts active sessions (its key can never be a
# valid session ID, so no client can address it).
COUNTERS_KEY = "#counters"
_BATCH = 25  # BatchWriteItem's limit
_BATCH_ROUNDS = 5  # bounded retries of UnprocessedItems

_serializer = TypeSerializer()
_deserializer = TypeDeserializer()


class ConditionFailed(Exception):
    """A conditional write said no; ``item`` is the item as it was, when DynamoDB returned it."""

    def __init__(
        self, item: dict[str, Any] | None = None, reasons: list[str] | None = None
    ) -> None:
        super().__init__("condition failed")
        self.item = item
        self.reasons = reasons or []


def to_item(values: dict[str, Any]) -> dict[str, Any]:
    return {k: _serializer.serialize(v) for k, v in values.items() if v is not None}


def from_item(item: dict[str, Any] | None) -> dict[str, Any] | None:
    if not item:
        return None
    return {k: _plain(_deserializer.deserialize(v)) for k, v in item.items()}


def _plain(value: Any) -> Any:
    # DynamoDB numbers arrive as Decimal; everything this service stores is an integer.
    if hasattr(value, "to_integral_value"):
        return int(value)
    return value


def _values(**values: Any) -> dict[str, Any]:
    return {f":{k}": _serializer.serialize(v) for k, v in values.items()}


def _condition_failed(error: ClientError) -> bool:
    return error.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException"


def _condition_failed_with_old_item(error: ClientError) -> ConditionFailed | None:
    """ConditionFailed carrying the item as it was, if ``error`` is a failed condition."""
    if _condition_failed(error):
        return ConditionFailed(from_item(error.response.get("Item")))
    return None


def _failed_parts(
    error: ClientError, names: Iterable[str]
) -> dict[str, dict[str, Any] | None] | None:
    """The parts of a cancelled TransactWriteItems whose condition said no.

    Parts are named in order by ``names``; each maps to its old item (None unless the part
    asked for it). None when ``error`` is not a cancelled transaction at all.
    """
    if error.response.get("Error", {}).get("Code") != "TransactionCanceledException":
        return None
    reasons = error.response.get("CancellationReasons", [])
    return {
        name: from_item(reason.get("Item"))
        for name, reason in zip(names, reasons, strict=False)
        if reason.get("Code") == "ConditionalCheckFailed"
    }


def _pages(operation: str, request: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every page of a Query or Scan (``operation``: "query" / "scan"), one call a page."""
    request = dict(request)
    while True:
        page = getattr(aws.dynamodb(), operation)(**request)
        yield page
        if "LastEvaluatedKey" not in page:
            return
        request["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def _records(operation: str, request: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every item a Query or Scan returns, as a plain record, page by page."""
    for page in _pages(operation, request):
        for item in page.get("Items", []):
            record = from_item(item)
            if record:
                yield record


def now_s() -> int:
    return int(time.time())


def ttl_from_now() -> int:
    """Epoch seconds when a record expires: ``dataRetentionHours`` from now."""
    return now_s() + config().dataRetentionHours * 3600


# ---------------------------------------------------------------------------- connections


def put_connection(
    connection_id: str, *, connected_at_ms: int, ip_hash: str, user_id: str | None
) -> None:
    aws.dynamodb().put_item(
        TableName=config().connections_table,
        Item=to_item(
            {
                "connectionId": connection_id,
                "connectedAt": connected_at_ms,
                "lastSeenAt": connected_at_ms,
                "ipHash": ip_hash,
                "userId": user_id,
                "ttl": ttl_from_now(),
            }
        ),
    )


def get_connection(connection_id: str) -> dict[str, Any] | None:
    response = aws.dynamodb().get_item(
        TableName=config().connections_table,
        Key=to_item({"connectionId": connection_id}),
        ConsistentRead=True,
    )
    return from_item(response.get("Item"))


def claim_role(
    connection_id: str,
    *,
    role: str,
    session_id: str,
    target_language: str | None = None,
    claimed_by: str | None = None,
) -> None:
    """Give a connection its one role; ConditionFailed (with the old item) if it has one, or
    with ``item`` None if the connection has no record: its ``$disconnect`` already ran.

    The claim never creates a record. ``$disconnect`` deletes the record first, so a join
    racing its own connection's disconnect either lands before the delete (and the
    disconnect sees the role and gives the place back) or fails here (and the join gives it
    back): no ordering leaves a listener record or a count behind. The claim is activity, so
    it refreshes ``lastSeenAt``.

    ``claimed_by`` (the request ID) is stored as ``claimedBy`` so a caller can recognise its
    own earlier write when botocore retried a call whose response was lost.
    """
    names = {"#role": "role", "#ttl": "ttl"}
    expression = "SET #role = :role, sessionId = :sid, #ttl = :ttl, lastSeenAt = :now"
    values = {
        "role": role,
        "sid": session_id,
        "ttl": ttl_from_now(),
        "now": int(time.time() * 1000),
    }
    if claimed_by:
        expression += ", claimedBy = :by"
        values["by"] = claimed_by
    if target_language:
        expression += ", targetLanguage = :lang"
        values["lang"] = target_language
    try:
        aws.dynamodb().update_item(
            TableName=config().connections_table,
            Key=to_item({"connectionId": connection_id}),
            UpdateExpression=expression,
            ConditionExpression="attribute_exists(connectionId) AND attribute_not_exists(#role)",
            ExpressionAttributeNames=names,
            ExpressionAttributeValues=_values(**values),
            ReturnValuesOnConditionCheckFailure="ALL_OLD",
        )
    except ClientError as error:
        failed = _condition_failed_with_old_item(error)
        if failed is not None:
            raise failed from None
        raise


def delete_connection(connection_id: str) -> dict[str, Any] | None:
    """Delete a connection record; returns it as it was (None if already gone: idempotent)."""
    response = aws.dynamodb().delete_item(
        TableName=config().connections_table,
        Key=to_item({"connectionId": connection_id}),
        ReturnValues="ALL_OLD",
    )
    return from_item(response.get("Attributes"))


def listener_connections(session_id: str) -> Iterator[dict[str, Any]]:
    """Every listener connection record of a session, through the GSI, page by page."""
    request = {
        "TableName": config().connections_table,
        "IndexName": LISTENERS_INDEX.name,
        "KeyConditionExpression": "sessionId = :sid",
        "ExpressionAttributeValues": _values(sid=session_id),
    }
    for record in _records("query", request):
        if record.get("role") == LISTENER:
            yield record


# What a role adds to a connection record; releasing the role removes exactly these.
ROLE_ATTRIBUTES = ("role", "sessionId", "targetLanguage", "claimedBy")


def release_roles(records: list[dict[str, Any]], *, gone: Collection[str] = ()) -> int:
    """Take their role from connections whose session ended, 25 per BatchWriteItem; returns
    the number of calls.

    Each record is written back without its role attributes, keeping everything else
    (``connectedAt``, ``lastSeenAt``, ``userId``, …): the connection is still open, may join
    another session on the same socket, and the sweeper judges its liveness by those fields.
    ``records`` must be whole records (the listener index projects every attribute). The
    records of connections known to be ``gone`` (410 on the push) are deleted instead.
    A batch write cannot be conditional: a connection whose ``$disconnect`` ran between the
    caller's read and this write gets a role-less record back, which holds no place; the
    sweeper closes it (410) once it is silent.
    """
    writes: list[dict[str, Any]] = []
    for record in records:
        if record["connectionId"] in gone:
            writes.append(
                {"DeleteRequest": {"Key": to_item({"connectionId": record["connectionId"]})}}
            )
        else:
            kept = {k: v for k, v in record.items() if k not in ROLE_ATTRIBUTES}
            writes.append({"PutRequest": {"Item": to_item(kept)}})
    return _batch_write(writes)


def delete_connections(connection_ids: list[str]) -> int:
    """Delete many connection records, 25 per BatchWriteItem; returns the number of calls."""
    return _batch_write(
        [{"DeleteRequest": {"Key": to_item({"connectionId": cid})}} for cid in connection_ids]
    )


def _batch_write(writes: list[dict[str, Any]]) -> int:
    calls = 0
    table = config().connections_table
    for start in range(0, len(writes), _BATCH):
        requests = writes[start : start + _BATCH]
        pending: dict[str, Any] = {table: requests}
        for _ in range(_BATCH_ROUNDS):
            calls += 1
            response = aws.dynamodb().batch_write_item(RequestItems=pending)
            pending = response.get("UnprocessedItems") or {}
            if not pending:
                break
            time.sleep(0.05 * calls)
    return calls


# ---------------------------------------------------------------------------- sessions


def get_session(session_id: str) -> dict[str, Any] | None:
    response = aws.dynamodb().get_item(
        TableName=config().sessions_table,
        Key=to_item({"sessionId": session_id}),
        ConsistentRead=True,
    )
    return from_item(response.get("Item"))


def create_session(session: dict[str, Any], *, max_active: int) -> None:
    """Create a session and make its connection the speaker, atomically, in one transaction.

    Three parts: the active-sessions counter (< ``max_active``), the new session item (its ID
    must be unused) and the speaker's connection (must exist, without a role). ConditionFailed
    ``reasons`` name the parts that failed: ``limit``, ``taken``, ``role``.
    """
    cfg = config()
    connection_update = {
        "Update": {
            "TableName": cfg.connections_table,
            "Key": to_item({"connectionId": session["speakerConnectionId"]}),
            "UpdateExpression": "SET #role = :role, sessionId = :sid",
            "ConditionExpression": "attribute_exists(connectionId) AND attribute_not_exists(#role)",
            "ExpressionAttributeNames": {"#role": "role"},
            "ExpressionAttributeValues": _values(role=SPEAKER, sid=session["sessionId"]),
        }
    }
    counter_update = {
        "Update": {
            "TableName": cfg.sessions_table,
            "Key": to_item({"sessionId": COUNTERS_KEY}),
            "UpdateExpression": "ADD activeSessions :one",
            "ConditionExpression": "attribute_not_exists(activeSessions) OR activeSessions < :max",
            "ExpressionAttributeValues": _values(one=1, max=max_active),
        }
    }
    session_put = {
        "Put": {
            "TableName": cfg.sessions_table,
            "Item": to_item({**session, "activeShard": ACTIVE_SHARD}),
            "ConditionExpression": "attribute_not_exists(sessionId)",
        }
    }
    try:
        aws.dynamodb().transact_write_items(
            TransactItems=[counter_update, session_put, connection_update]
        )
    except ClientError as error:
        failed = _failed_parts(error, ("limit", "taken", "role"))
        if not failed:
            raise
        raise ConditionFailed(reasons=list(failed)) from None


def add_listener(session_id: str, *, max_listeners: int) -> dict[str, Any]:
    """Count one more listener if the session is active and not full; returns the new item.

    ConditionFailed carries the old item (None when the session does not exist).
    """
    try:
        response = aws.dynamodb().update_item(
            TableName=config().sessions_table,
            Key=to_item({"sessionId": session_id}),
            UpdateExpression="ADD listenerCount :one",
            ConditionExpression="isActive = :true AND listenerCount < :max",
            ExpressionAttributeValues=_values(one=1, true=True, max=max_listeners),
            ReturnValues="ALL_NEW",
            ReturnValuesOnConditionCheckFailure="ALL_OLD",
        )
    except ClientError as error:
        failed = _condition_failed_with_old_item(error)
        if failed is not None:
            raise failed from None
        raise
    item = from_item(response.get("Attributes"))
    assert item is not None
    return item


def remove_listener(session_id: str) -> int | None:
    """Count one listener fewer, never below zero; returns the new count (None if none left)."""
    try:
        response = aws.dynamodb().update_item(
            TableName=config().sessions_table,
            Key=to_item({"sessionId": session_id}),
            UpdateExpression="ADD listenerCount :minus",
            ConditionExpression="listenerCount > :zero",
            ExpressionAttributeValues=_values(minus=-1, zero=0),
            ReturnValues="UPDATED_NEW",
        )
    except ClientError as error:
        if _condition_failed(error):
            return None
        raise
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
    values: dict[str, Any] = {
        "true": True,
        "false": False,
        "reason": reason,
        "now": int(time.time() * 1000),
    }
    if speaker_connection_id:
        condition += " AND speakerConnectionId = :speaker"
        values["speaker"] = speaker_connection_id
    try:
        aws.dynamodb().transact_write_items(
            TransactItems=[
                {
                    "Update": {
                        "TableName": cfg.sessions_table,
                        "Key": to_item({"sessionId": session_id}),
                        "UpdateExpression": _END_SESSION,
                        "ConditionExpression": condition,
                        "ExpressionAttributeValues": _values(**values),
                    }
                },
                {
                    "Update": {
                        "TableName": cfg.sessions_table,
                        "Key": to_item({"sessionId": COUNTERS_KEY}),
                        "UpdateExpression": "ADD activeSessions :minus",
                        "ConditionExpression": "activeSessions > :zero",
                        "ExpressionAttributeValues": _values(minus=-1, zero=0),
                    }
                },
            ]
        )
    except ClientError as error:
        failed = _failed_parts(error, ("session", "counter"))
        if failed is None:
            raise
        if "session" in failed:
            return False
        # The counter was already 0 (drift): end the session anyway; the sweeper reconciles.
        return _conditional_set(
            cfg.sessions_table, {"sessionId": session_id}, _END_SESSION, condition, values
        )
    return True


def active_sessions() -> Iterator[dict[str, Any]]:
    """Every active session (sparse index: bounded by maxActiveSessions, not by history)."""
    yield from _records(
        "query",
        {
            "TableName": config().sessions_table,
            "IndexName": ACTIVE_SESSIONS_INDEX.name,
            "KeyConditionExpression": "activeShard = :shard",
            "ExpressionAttributeValues": _values(shard=ACTIVE_SHARD),
        },
    )


# ---------------------------------------------------------------------------- heartbeats

HEARTBEAT_WINDOW_MS = 60_000
REFRESH_NOTIFIED = "refreshNotifiedAt"
WARNING_NOTIFIED = "warningNotifiedAt"


def heartbeat_window(now_ms: int) -> int:
    """The index of the per-minute rate-limit window ``now_ms`` falls in."""
    return now_ms // HEARTBEAT_WINDOW_MS


def record_heartbeat(
    connection_id: str,
    *,
    now_ms: int,
    per_minute: int,
    refresh_due: bool = False,
    warning_due: bool = False,
) -> dict[str, Any] | None:
    """A heartbeat's whole bookkeeping in one UpdateItem; returns the record as it now is.

    Sets ``lastSeenAt``, counts the heartbeat in this minute's counter (an attribute named
    after the window; the previous window's is removed) only while under ``per_minute``, and
    when due sets ``refreshNotifiedAt`` / ``warningNotifiedAt`` to ``now_ms`` unless already
    set — so a returned value equal to ``now_ms`` means this call is the one that must push.
    None when the connection has no record (never recreated). ConditionFailed (with the
    record) when the limit is reached.
    """
    window = heartbeat_window(now_ms)
    names = {"#cur": f"hb{window}", "#prev": f"hb{window - 1}"}
    sets = ["lastSeenAt = :now"]
    for due, attribute, alias in (
        (refresh_due, REFRESH_NOTIFIED, "#refresh"),
        (warning_due, WARNING_NOTIFIED, "#warning"),
    ):
        if due:
            names[alias] = attribute
            sets.append(f"{alias} = if_not_exists({alias}, :now)")
    try:
        response = aws.dynamodb().update_item(
            TableName=config().connections_table,
            Key=to_item({"connectionId": connection_id}),
            UpdateExpression=f"SET {', '.join(sets)} ADD #cur :one REMOVE #prev",
            ConditionExpression=(
                "attribute_exists(connectionId) AND (attribute_not_exists(#cur) OR #cur < :limit)"
            ),
            ExpressionAttributeNames=names,
            ExpressionAttributeValues=_values(now=now_ms, one=1, limit=per_minute),
            ReturnValues="ALL_NEW",
            ReturnValuesOnConditionCheckFailure="ALL_OLD",
        )
    except ClientError as error:
        if not _condition_failed(error):
            raise
        old = from_item(error.response.get("Item"))
        if old is None:
            return None
        raise ConditionFailed(old) from None
    return from_item(response.get("Attributes"))


# ---------------------------------------------------------------------------- refresh & sweeper

_PAGE_KEYS = 100  # BatchGetItem's limit


class TransactionConflict(ConditionFailed):
    """A transaction's conditions said no; ``items`` maps each failed part to its old item.

    ``reasons`` lists the failed parts by name; ``item`` is the first one's old item.
    """

    def __init__(self, items: dict[str, dict[str, Any] | None]) -> None:
        super().__init__(next(iter(items.values()), None), list(items))
        self.items = items


def _transact(parts: dict[str, dict[str, Any]]) -> None:
    """One TransactWriteItems of named parts; TransactionConflict names the parts that said no."""
    try:
        aws.dynamodb().transact_write_items(TransactItems=list(parts.values()))
    except ClientError as error:
        failed = _failed_parts(error, parts)
        if not failed:
            raise  # cancelled for another reason (conflict, throttling): the caller's 503
        raise TransactionConflict(failed) from None


def swap_speaker(
    session_id: str, *, user_id: str, connection_id: str, now_ms: int, expires_at: int
) -> None:
    """Make ``connection_id`` the speaker of ``user_id``'s active session, in one transaction.

    The session must be active and belong to ``user_id``; its ``speakerConnectionId`` becomes
    the new connection and its TTL moves to ``expires_at`` (epoch seconds). The new connection
    must exist and have no role yet. TransactionConflict reasons: ``session``, ``role``.
    """
    cfg = config()
    _transact(
        {
            "session": {
                "Update": {
                    "TableName": cfg.sessions_table,
                    "Key": to_item({"sessionId": session_id}),
                    "UpdateExpression": "SET speakerConnectionId = :conn, expiresAt = :exp",
                    "ConditionExpression": "isActive = :true AND speakerUserId = :uid",
                    "ExpressionAttributeValues": _values(
                        conn=connection_id, exp=expires_at, true=True, uid=user_id
                    ),
                    "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
                }
            },
            "role": {
                "Update": {
                    "TableName": cfg.connections_table,
                    "Key": to_item({"connectionId": connection_id}),
                    "UpdateExpression": (
                        "SET #role = :role, sessionId = :sid, #ttl = :ttl, lastSeenAt = :now"
                    ),
                    "ConditionExpression": (
                        "attribute_exists(connectionId) AND attribute_not_exists(#role)"
                    ),
                    "ExpressionAttributeNames": {"#role": "role", "#ttl": "ttl"},
                    "ExpressionAttributeValues": _values(
                        role=SPEAKER, sid=session_id, ttl=ttl_from_now(), now=now_ms
                    ),
                    "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
                }
            },
        }
    )


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
    connection still counts until its ``$disconnect``. TransactionConflict reasons:
    ``session`` (old item: None if no such session), ``role`` (old connection record).
    """
    cfg = config()
    _transact(
        {
            "session": {
                "Update": {
                    "TableName": cfg.sessions_table,
                    "Key": to_item({"sessionId": session_id}),
                    "UpdateExpression": "ADD listenerCount :one",
                    "ConditionExpression": (
                        "isActive = :true AND "
                        "(attribute_not_exists(listenerCount) OR listenerCount < :max)"
                    ),
                    "ExpressionAttributeValues": _values(one=1, true=True, max=max_listeners),
                    "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
                }
            },
            "role": {
                "Update": {
                    "TableName": cfg.connections_table,
                    "Key": to_item({"connectionId": connection_id}),
                    "UpdateExpression": (
                        "SET #role = :role, sessionId = :sid, targetLanguage = :lang, "
                        "#ttl = :ttl, lastSeenAt = :now, "
                        "connectedAt = if_not_exists(connectedAt, :connected)"
                    ),
                    # Never creates a record: a refresh racing its connection's
                    # $disconnect must not leave a counted listener behind.
                    "ConditionExpression": (
                        "attribute_exists(connectionId) AND attribute_not_exists(#role)"
                    ),
                    "ExpressionAttributeNames": {"#role": "role", "#ttl": "ttl"},
                    "ExpressionAttributeValues": _values(
                        role=LISTENER,
                        sid=session_id,
                        lang=target_language,
                        ttl=ttl_from_now(),
                        now=now_ms,
                        connected=connected_at_ms,
                    ),
                    "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
                }
            },
        }
    )


def count_listeners(session_id: str) -> int:
    """How many listener records a session has: GSI Query with Select=COUNT (no items read back)."""
    request = {
        "TableName": config().connections_table,
        "IndexName": LISTENERS_INDEX.name,
        "KeyConditionExpression": "sessionId = :sid",
        "FilterExpression": "#role = :listener",
        "ExpressionAttributeNames": {"#role": "role"},
        "ExpressionAttributeValues": _values(sid=session_id, listener=LISTENER),
        "Select": "COUNT",
    }
    return sum(int(page.get("Count", 0)) for page in _pages("query", request))


def set_listener_count(session_id: str, *, seen: int | None, actual: int) -> bool:
    """Correct an active session's ``listenerCount`` to ``actual`` if it is still ``seen``.

    The condition makes the correction lose against any join or leave that happened since
    the count was read; False when it did (the next sweep looks again).
    """
    condition = "isActive = :true AND " + (
        "attribute_not_exists(listenerCount)" if seen is None else "listenerCount = :seen"
    )
    values: dict[str, Any] = {"true": True, "actual": actual}
    if seen is not None:
        values["seen"] = seen
    return _conditional_set(
        config().sessions_table,
        {"sessionId": session_id},
        "SET listenerCount = :actual",
        condition,
        values,
    )


def set_active_sessions(*, seen: int | None, actual: int) -> bool:
    """Correct the active-sessions counter to ``actual`` if it is still ``seen`` (None: absent)."""
    condition = "attribute_not_exists(activeSessions)" if seen is None else "activeSessions = :seen"
    values: dict[str, Any] = {"actual": actual}
    if seen is not None:
        values["seen"] = seen
    return _conditional_set(
        config().sessions_table,
        {"sessionId": COUNTERS_KEY},
        "SET activeSessions = :actual",
        condition,
        values,
    )


def _conditional_set(
    table: str, key: dict[str, Any], update: str, condition: str, values: dict[str, Any]
) -> bool:
    try:
        aws.dynamodb().update_item(
            TableName=table,
            Key=to_item(key),
            UpdateExpression=update,
            ConditionExpression=condition,
            ExpressionAttributeValues=_values(**values),
        )
    except ClientError as error:
        if _condition_failed(error):
            return False
        raise
    return True


def _batch_get(
    table: str, key: str, ids: Iterable[str], projection: str, names: dict[str, str] | None = None
) -> Iterator[dict[str, Any]]:
    """Every item of ``table`` whose ``key`` is one of ``ids`` (consistent BatchGetItem, 100 keys
    per call); raises when keys stay unprocessed after bounded retries."""
    unique = list(dict.fromkeys(ids))
    for start in range(0, len(unique), _PAGE_KEYS):
        request: dict[str, Any] = {
            "Keys": [to_item({key: value}) for value in unique[start : start + _PAGE_KEYS]],
            "ProjectionExpression": projection,
            "ConsistentRead": True,
        }
        if names:
            request["ExpressionAttributeNames"] = names
        pending: dict[str, Any] = {table: request}
        for attempt in range(1, _BATCH_ROUNDS + 1):
            response = aws.dynamodb().batch_get_item(RequestItems=pending)
            yield from response.get("Responses", {}).get(table, [])
            pending = response.get("UnprocessedKeys") or {}
            if not pending:
                break
            time.sleep(0.05 * attempt)
        if pending:
            # Unknown is not missing: never act on a read that did not happen.
            raise RuntimeError("BatchGetItem left keys unprocessed after bounded retries")


def existing_connections(connection_ids: list[str]) -> set[str]:
    """Which of these connections still have a record: BatchGetItem, 100 keys per call."""
    items = _batch_get(config().connections_table, "connectionId", connection_ids, "connectionId")
    return {item["connectionId"]["S"] for item in items}


def sessions_by_id(session_ids: Iterable[str]) -> dict[str, dict[str, Any]]:
    """These sessions' state as it is now (consistent BatchGetItem, 100 per call); a session
    that no longer exists is absent."""
    items = _batch_get(
        config().sessions_table,
        "sessionId",
        session_ids,
        "sessionId, isActive, endReason, endedAt, speakerConnectionId",
    )
    return {s["sessionId"]: s for s in map(from_item, items) if s}


def sweep_connections(silent_since_ms: int) -> Iterator[dict[str, Any]]:
    """The records the sweeper looks at, in one Scan (the table holds only live connections;
    leftovers expire by TTL): the silent ones (``is_silent``) and every one holding a role.
    The filter costs no reads: a Scan is charged for what it reads, not what it returns."""
    yield from _records(
        "scan",
        {
            "TableName": config().connections_table,
            "FilterExpression": (
                "lastSeenAt < :cutoff OR (attribute_not_exists(lastSeenAt) AND "
                "(attribute_not_exists(connectedAt) OR connectedAt < :cutoff)) OR "
                "attribute_exists(sessionId)"
            ),
            # Whole records: an orphan's role is released by writing its record back.
            "ExpressionAttributeValues": _values(cutoff=silent_since_ms),
        },
    )


def is_silent(record: dict[str, Any], silent_since_ms: int) -> bool:
    """Whether a record was last seen before ``silent_since_ms`` (``sweep_connections``' filter:
    without ``lastSeenAt``, ``connectedAt`` counts; without either, it is silent)."""
    seen = record.get("lastSeenAt", record.get("connectedAt"))
    return seen is None or int(seen) < silent_since_ms
