"""DynamoDB primitives the record modules share: the item codec, expression values, paging,
batches, named transactions and conditional writes, and the one ``Conflict`` they raise."""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import ClientError

from runtime import aws, clock
from runtime.config import config

BATCH_WRITE_ITEMS = 25  # BatchWriteItem's limit
BATCH_GET_KEYS = 100  # BatchGetItem's limit
_BATCH_ROUNDS = 5  # bounded retries of unprocessed items / keys
CONDITION_FAILED = "ConditionalCheckFailedException"
TRANSACTION_CANCELLED = "TransactionCanceledException"

_serializer = TypeSerializer()
_deserializer = TypeDeserializer()

Record = dict[str, Any]


class Conflict(Exception):
    """A conditional write (or a transaction's conditions) said no.

    ``items`` maps each failed part to its item as it was (None unless the write asked for it
    or there was none); ``reasons`` names the failed parts in order and ``item`` is the first
    one's old item. A single conditional write is one part named ``"item"``.
    """

    def __init__(self, items: Mapping[str, Record | None]) -> None:
        super().__init__("condition failed")
        self.items = dict(items)
        self.reasons = list(self.items)
        self.item = next(iter(self.items.values()), None)


# --- the codec -----------------------------------------------------------------------------------


def to_item(values: Mapping[str, Any]) -> dict[str, Any]:
    return {k: _serializer.serialize(v) for k, v in values.items() if v is not None}


def from_item(item: Mapping[str, Any] | None) -> Record | None:
    if not item:
        return None
    return {k: _plain(_deserializer.deserialize(v)) for k, v in item.items()}


def _plain(value: Any) -> Any:
    # DynamoDB numbers arrive as Decimal; everything this service stores is an integer.
    if hasattr(value, "to_integral_value"):
        return int(value)
    return value


def values(**named: Any) -> dict[str, Any]:
    """ExpressionAttributeValues: ``values(sid=…)`` binds ``:sid``."""
    return {f":{k}": _serializer.serialize(v) for k, v in named.items()}


def now_s() -> int:
    return int(clock.now())


def ttl_from_now() -> int:
    """Epoch seconds when a record expires: ``dataRetentionHours`` from now."""
    return now_s() + config().dataRetentionHours * 3600


def get_item(table: str, key: Mapping[str, Any]) -> Record | None:
    """One item by its key, read consistently (None when there is none)."""
    response = aws.dynamodb().get_item(TableName=table, Key=to_item(key), ConsistentRead=True)
    return from_item(response.get("Item"))


# --- conditions ----------------------------------------------------------------------------------


def condition_failed(error: BaseException) -> bool:
    return aws.error_code(error) == CONDITION_FAILED


def conflict_of(error: ClientError) -> Conflict | None:
    """The Conflict a failed conditional write means (carrying the old item), else None."""
    if not condition_failed(error):
        return None
    return Conflict({"item": from_item(error.response.get("Item"))})


def update_or_conflict(**request: Any) -> dict[str, Any]:
    """One UpdateItem; Conflict (with the old item when asked for) if its condition fails."""
    try:
        response: dict[str, Any] = aws.dynamodb().update_item(**request)
    except ClientError as error:
        conflict = conflict_of(error)
        if conflict is not None:
            raise conflict from None
        raise
    return response


def conditional_set(
    table: str, key: Mapping[str, Any], update: str, condition: str, named: Mapping[str, Any]
) -> bool:
    """An UpdateItem that only applies while ``condition`` holds; False when it did not."""
    try:
        update_or_conflict(
            TableName=table,
            Key=to_item(key),
            UpdateExpression=update,
            ConditionExpression=condition,
            ExpressionAttributeValues=values(**named),
        )
    except Conflict:
        return False
    return True


def update_part(
    table: str,
    key: Mapping[str, Any],
    update: str,
    condition: str,
    named: Mapping[str, Any],
    *,
    names: Mapping[str, str] | None = None,
    old_item: bool = False,
) -> dict[str, Any]:
    """One conditional Update of a TransactWriteItems; ``old_item`` asks for the item as it
    was when the condition fails (it then rides in the Conflict)."""
    part: dict[str, Any] = {
        "TableName": table,
        "Key": to_item(key),
        "UpdateExpression": update,
        "ConditionExpression": condition,
        "ExpressionAttributeValues": values(**named),
    }
    if names:
        part["ExpressionAttributeNames"] = dict(names)
    if old_item:
        part["ReturnValuesOnConditionCheckFailure"] = "ALL_OLD"
    return {"Update": part}


def transact(parts: Mapping[str, dict[str, Any]]) -> None:
    """One TransactWriteItems of named parts; Conflict names the parts whose condition said no.

    A transaction cancelled for another reason (a conflict with another transaction,
    throttling) is raised as it is: the caller's SERVICE_UNAVAILABLE.
    """
    try:
        aws.dynamodb().transact_write_items(TransactItems=list(parts.values()))
    except ClientError as error:
        if aws.error_code(error) != TRANSACTION_CANCELLED:
            raise
        reasons = error.response.get("CancellationReasons", [])
        failed = {
            name: from_item(reason.get("Item"))
            for name, reason in zip(parts, reasons, strict=False)
            if reason.get("Code") == "ConditionalCheckFailed"
        }
        if not failed:
            raise
        raise Conflict(failed) from None


# --- reading many --------------------------------------------------------------------------------


def pages(operation: str, request: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    """Every page of a Query or Scan (``operation``: "query" / "scan"), one call a page."""
    pending = dict(request)
    while True:
        page: dict[str, Any] = getattr(aws.dynamodb(), operation)(**pending)
        yield page
        if "LastEvaluatedKey" not in page:
            return
        pending["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def records(operation: str, request: Mapping[str, Any]) -> Iterator[Record]:
    """Every item a Query or Scan returns, as a plain record, page by page."""
    for page in pages(operation, request):
        for item in page.get("Items", []):
            record = from_item(item)
            if record:
                yield record


def batch_get(
    table: str,
    key: str,
    ids: Iterable[str],
    projection: str | None,
    names: Mapping[str, str] | None = None,
) -> Iterator[dict[str, Any]]:
    """Every item of ``table`` whose ``key`` is one of ``ids`` (consistent BatchGetItem, 100 keys
    per call), as DynamoDB returns it (whole items when ``projection`` is None); raises when
    keys stay unprocessed after bounded retries."""
    unique = list(dict.fromkeys(ids))
    for start in range(0, len(unique), BATCH_GET_KEYS):
        request: dict[str, Any] = {
            "Keys": [to_item({key: value}) for value in unique[start : start + BATCH_GET_KEYS]],
            "ConsistentRead": True,
        }
        if projection is not None:
            request["ProjectionExpression"] = projection
        if names:
            request["ExpressionAttributeNames"] = dict(names)
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


# --- writing many --------------------------------------------------------------------------------


def delete_request(key: Mapping[str, Any]) -> dict[str, Any]:
    return {"DeleteRequest": {"Key": to_item(key)}}


def put_request(item: Mapping[str, Any]) -> dict[str, Any]:
    return {"PutRequest": {"Item": to_item(item)}}


def batch_write(table: str, writes: list[dict[str, Any]]) -> int:
    """Many puts and deletes (``put_request`` / ``delete_request``), 25 per BatchWriteItem,
    unprocessed ones retried a bounded number of times; returns the number of calls."""
    calls = 0
    for start in range(0, len(writes), BATCH_WRITE_ITEMS):
        pending: dict[str, Any] = {table: writes[start : start + BATCH_WRITE_ITEMS]}
        for _ in range(_BATCH_ROUNDS):
            calls += 1
            response = aws.dynamodb().batch_write_item(RequestItems=pending)
            pending = response.get("UnprocessedItems") or {}
            if not pending:
                break
            time.sleep(0.05 * calls)
    return calls
