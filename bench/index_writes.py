"""Which DynamoDB writes also write a global secondary index, from the requests themselves.

DynamoDB charges a write to each GSI a write changes: an item put into or deleted from an
index, or an update of an attribute the index projects (its keys, the table's key, and its
projected attributes: all of them for ``ALL``). An update that touches only attributes the
index does not hold writes the table alone. (An update that moves an item's index key is a
delete and a put in the index, two writes; the model counts one, which is what a listener's
claim does: the item enters the index.)

The model reads each measured request (``bench.call_counter``): the attributes an
UpdateItem's expression writes, the item a PutItem writes, and for UpdateItem / DeleteItem
it assumes the item is in the index while it is written: in a listener-hour that is true (a
joined listener's connection record, an active session), and it is the upper bound.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from runtime.tables import TABLES, Index, Table

_CLAUSE = re.compile(r"\b(SET|ADD|REMOVE|DELETE)\b")


def table_of(physical_name: str, tables: Iterable[Table] = TABLES) -> Table | None:
    """The table definition of a physical name (``session-management-dev-Connections``)."""
    return next((t for t in tables if physical_name.endswith("-" + t.logical_name)), None)


def _split_top(text: str) -> list[str]:
    """Split on commas outside parentheses (``if_not_exists(a, :b)`` stays whole)."""
    parts, depth, current = [], 0, ""
    for char in text:
        if char == "," and depth == 0:
            parts.append(current)
            current = ""
            continue
        depth += (char == "(") - (char == ")")
        current += char
    parts.append(current)
    return [p.strip() for p in parts if p.strip()]


def written_attributes(expression: str, names: Mapping[str, str] | None = None) -> set[str]:
    """The top-level attributes an UpdateExpression writes (SET / ADD / REMOVE / DELETE)."""
    names = names or {}
    pieces = _CLAUSE.split(expression)
    written: set[str] = set()
    for clause, body in zip(pieces[1::2], pieces[2::2], strict=False):
        for part in _split_top(body):
            target = part.split("=", 1)[0] if clause == "SET" else part.split()[0]
            path = target.strip().split(".")[0].split("[")[0]
            written.add(names.get(path, path))
    return written


def index_writes(api: str, params: Mapping[str, Any], tables: Iterable[Table] = TABLES) -> int:
    """The index write units one DynamoDB request adds to its table write(s)."""
    if api == "dynamodb:TransactWriteItems":
        total = 0
        for item in params.get("TransactItems", []):
            for kind, request in item.items():
                if kind != "ConditionCheck":
                    total += index_writes(f"dynamodb:{kind}Item", request, tables)
        return total
    if api == "dynamodb:BatchWriteItem":
        total = 0
        for table_name, writes in (params.get("RequestItems") or {}).items():
            for write in writes:
                for kind, request in write.items():
                    api_name = "dynamodb:PutItem" if kind == "PutRequest" else "dynamodb:DeleteItem"
                    total += index_writes(api_name, {"TableName": table_name, **request}, tables)
        return total
    table = table_of(str(params.get("TableName", "")), tables)
    if table is None or not table.indexes:
        return 0
    return sum(_writes_index(api, params, table.hash_key, index) for index in table.indexes)


def _writes_index(api: str, params: Mapping[str, Any], table_key: str, index: Index) -> int:
    if api == "dynamodb:PutItem":
        item = params.get("Item") or {}
        return int(all(key in item for key in index.key_names()))
    if api == "dynamodb:DeleteItem":
        return 1
    if api == "dynamodb:UpdateItem":
        touched = written_attributes(
            str(params.get("UpdateExpression", "")), params.get("ExpressionAttributeNames")
        )
        return int(any(index.projects(attribute, table_key) for attribute in touched))
    return 0
