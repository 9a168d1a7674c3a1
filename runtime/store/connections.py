"""Connection records (the Connections table): one per open WebSocket, holding at most one role."""

from __future__ import annotations

from collections.abc import Iterator
from typing import cast

from runtime import aws
from runtime.config import config
from runtime.store.dynamo import (
    batch_delete,
    from_item,
    get_item,
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
    """Give a connection its one role; Conflict (with the old item) if it has one.

    ``claimed_by`` (the request ID) is stored as ``claimedBy`` so a caller can recognise its
    own earlier write when botocore retried a call whose response was lost.
    """
    names = {"#role": "role", "#ttl": "ttl"}
    expression = "SET #role = :role, sessionId = :sid, #ttl = :ttl"
    named = {"role": role, "sid": session_id, "ttl": ttl_from_now()}
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
        ConditionExpression="attribute_not_exists(#role)",
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
    """Every listener connection record of a session, through the GSI, page by page."""
    request = {
        "TableName": config().connections_table,
        "IndexName": LISTENERS_INDEX.name,
        "KeyConditionExpression": "sessionId = :sid",
        "ExpressionAttributeValues": values(sid=session_id),
    }
    for record in records("query", request):
        if record.get("role") == LISTENER:
            yield cast("ConnectionItem", record)


def delete_connections(connection_ids: list[str]) -> int:
    """Delete many connection records, 25 per BatchWriteItem; returns the number of calls."""
    return batch_delete(config().connections_table, "connectionId", connection_ids)
