"""Connection records (the Connections table): one per open WebSocket, holding at most one role."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import cast

from runtime import aws, clock
from runtime.config import config
from runtime.store.dynamo import (
    batch_get,
    batch_write,
    delete_request,
    from_item,
    get_item,
    put_request,
    records,
    to_item,
    ttl_from_now,
    update_or_conflict,
    values,
)
from runtime.store.records import ConnectionItem
from runtime.tables import LISTENERS_INDEX

SPEAKER = "speaker"
LISTENER = "listener"
ROLES = (SPEAKER, LISTENER)


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


def get_connection(connection_id: str) -> ConnectionItem | None:
    item = get_item(config().connections_table, {"connectionId": connection_id})
    return cast("ConnectionItem | None", item)


def claim_role(
    connection_id: str,
    *,
    role: str,
    session_id: str,
    target_language: str | None = None,
    claimed_by: str | None = None,
) -> None:
    """Give a connection its one role; Conflict (with the old item) if it has one, or with
    ``item`` None if the connection has no record: its ``$disconnect`` already ran.

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
    named = {
        "role": role,
        "sid": session_id,
        "ttl": ttl_from_now(),
        "now": clock.now_ms(),
    }
    if claimed_by:
        expression += ", claimedBy = :by"
        named["by"] = claimed_by
    if target_language:
        expression += ", targetLanguage = :lang"
        named["lang"] = target_language
    update_or_conflict(
        TableName=config().connections_table,
        Key=to_item({"connectionId": connection_id}),
        UpdateExpression=expression,
        ConditionExpression="attribute_exists(connectionId) AND attribute_not_exists(#role)",
        ExpressionAttributeNames=names,
        ExpressionAttributeValues=values(**named),
        ReturnValuesOnConditionCheckFailure="ALL_OLD",
    )


def delete_connection(connection_id: str) -> ConnectionItem | None:
    """Delete a connection record; returns it as it was (None if already gone: idempotent)."""
    response = aws.dynamodb().delete_item(
        TableName=config().connections_table,
        Key=to_item({"connectionId": connection_id}),
        ReturnValues="ALL_OLD",
    )
    return cast("ConnectionItem | None", from_item(response.get("Attributes")))


def listener_connections(session_id: str) -> Iterator[ConnectionItem]:
    """Every listener of a session, through the GSI, page by page: ``connectionId``,
    ``sessionId``, ``targetLanguage`` and ``role`` only (the index projects no more; see
    ``runtime.tables.LISTENERS_INDEX``). ``whole_records`` reads the rest."""
    request = {
        "TableName": config().connections_table,
        "IndexName": LISTENERS_INDEX.name,
        "KeyConditionExpression": "sessionId = :sid",
        "ExpressionAttributeValues": values(sid=session_id),
    }
    for record in records("query", request):
        if record.get("role") == LISTENER:
            yield cast("ConnectionItem", record)


def whole_records(partial: Iterable[ConnectionItem], *, session_id: str) -> list[ConnectionItem]:
    """The current whole records of these listeners that still are listeners of
    ``session_id`` (consistent BatchGetItem, 100 per call): a record deleted or released
    since the index was read is left out, so it is neither told nor rewritten."""
    ids = [record["connectionId"] for record in partial]
    current = (
        cast("ConnectionItem | None", from_item(item))
        for item in batch_get(config().connections_table, "connectionId", ids, None)
    )
    return [
        record
        for record in current
        if record and record.get("role") == LISTENER and record.get("sessionId") == session_id
    ]


# What a role adds to a connection record; releasing the role removes exactly these.
ROLE_ATTRIBUTES = ("role", "sessionId", "targetLanguage", "claimedBy", "replacedAt")


def release_roles(records: list[ConnectionItem]) -> int:
    """Take their role from connections whose session ended, 25 per BatchWriteItem; returns
    the number of calls.

    Each record is written back without its role attributes, keeping everything else
    (``connectedAt``, ``lastSeenAt``, ``userId``, …): the connection is still open, may join
    another session on the same socket, and the sweeper judges its liveness by those fields.
    ``records`` must be whole records (``whole_records``: the listener index projects only
    the keys and ``role``).
    A batch write cannot be conditional: a connection whose ``$disconnect`` ran between the
    caller's read and this write gets a role-less record back, which holds no place; the
    sweeper closes it (410) once it is silent.
    """
    writes = [
        put_request({k: v for k, v in record.items() if k not in ROLE_ATTRIBUTES})
        for record in records
    ]
    return batch_write(config().connections_table, writes)


def delete_connections(connection_ids: list[str]) -> int:
    """Delete many connection records, 25 per BatchWriteItem; returns the number of calls."""
    writes = [delete_request({"connectionId": cid}) for cid in connection_ids]
    return batch_write(config().connections_table, writes)
