"""The DynamoDB table definitions: the one place that says what tables exist and their keys.

``components`` renders these into ``aws.dynamodb.Table`` resources and ``local`` into
``create_table`` calls on the embedded moto server; handlers find the physical names in
the environment variable each table names.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from runtime.settings import PROJECT


@dataclass(frozen=True)
class Index:
    """A global secondary index (projection ALL unless ``projected`` names attributes)."""

    name: str
    hash_key: str
    range_key: str | None = None
    projected: tuple[str, ...] = ()

    def key_names(self) -> tuple[str, ...]:
        return (self.hash_key,) + ((self.range_key,) if self.range_key else ())

    def projects(self, attribute: str, table_key: str) -> bool:
        """Whether the index holds ``attribute`` (so a write that changes it writes the index
        too: one more write unit)."""
        if not self.projected:
            return True  # ALL
        return attribute in (*self.key_names(), table_key, *self.projected)

    def boto3_spec(self) -> dict[str, Any]:
        keys = [{"AttributeName": self.hash_key, "KeyType": "HASH"}]
        if self.range_key:
            keys.append({"AttributeName": self.range_key, "KeyType": "RANGE"})
        projection: dict[str, Any] = {"ProjectionType": "ALL"}
        if self.projected:
            projection = {"ProjectionType": "INCLUDE", "NonKeyAttributes": list(self.projected)}
        return {"IndexName": self.name, "KeySchema": keys, "Projection": projection}


@dataclass(frozen=True)
class Table:
    """One DynamoDB table. Attribute types are all strings (``S``) unless listed in ``numbers``."""

    logical_name: str
    hash_key: str
    ttl_attribute: str
    env: str
    indexes: tuple[Index, ...] = ()
    numbers: tuple[str, ...] = ()

    def physical_name(self, stage: str) -> str:
        """The table's name in AWS and in the local stack: project, stack, logical name
        (``session-management-dev-Sessions``), so it cannot collide with another
        application's tables in the same account."""
        return f"{PROJECT}-{stage}-{self.logical_name}"

    @property
    def key_attributes(self) -> dict[str, str]:
        """Every attribute used in a key schema, with its DynamoDB scalar type."""
        names = [self.hash_key]
        for index in self.indexes:
            names += [index.hash_key] + ([index.range_key] if index.range_key else [])
        return {n: ("N" if n in self.numbers else "S") for n in dict.fromkeys(names)}

    def create_table_kwargs(self, stage: str) -> dict[str, Any]:
        """This table as boto3 ``create_table`` arguments (on-demand billing)."""
        kwargs: dict[str, Any] = {
            "TableName": self.physical_name(stage),
            "BillingMode": "PAY_PER_REQUEST",
            "AttributeDefinitions": [
                {"AttributeName": n, "AttributeType": t} for n, t in self.key_attributes.items()
            ],
            "KeySchema": [{"AttributeName": self.hash_key, "KeyType": "HASH"}],
        }
        if self.indexes:
            kwargs["GlobalSecondaryIndexes"] = [index.boto3_spec() for index in self.indexes]
        return kwargs


# Sparse index over the sessions that are active: only active sessions carry ``activeShard``,
# so the metrics reporter and the sweeper read a set bounded by maxActiveSessions, never the
# table's history.
ACTIVE_SESSIONS_INDEX = Index(
    name="active-sessions-index",
    hash_key="activeShard",
    projected=("listenerCount", "speakerConnectionId", "createdAt", "expiresAt", "isActive"),
)
# A session's listeners. It projects only what its queries read besides the keys
# (connectionId, sessionId, targetLanguage): ``role``, which a claim or a release changes
# anyway. Everything a heartbeat writes (lastSeenAt, the minute's counter, the notice
# marks) stays out, so a heartbeat writes the table and not the index: one write unit, not
# two. Readers (checked by tests/runtime/test_store.py): ``store.listener_connections``
# (connectionId, role; ``lifecycle`` then reads the whole records it rewrites by key),
# ``store.count_listeners`` (COUNT, filtered on role), the local console (targetLanguage)
# and bench/load.py (connectionId, role).
LISTENERS_INDEX = Index(
    name="sessionId-targetLanguage-index",
    hash_key="sessionId",
    range_key="targetLanguage",
    projected=("role",),
)

SESSIONS = Table(
    logical_name="Sessions",
    hash_key="sessionId",
    ttl_attribute="expiresAt",
    env="SESSIONS_TABLE",
    indexes=(ACTIVE_SESSIONS_INDEX,),
)
CONNECTIONS = Table(
    logical_name="Connections",
    hash_key="connectionId",
    ttl_attribute="ttl",
    env="CONNECTIONS_TABLE",
    indexes=(LISTENERS_INDEX,),
)
RATE_LIMITS = Table(
    logical_name="RateLimits",
    hash_key="identifier",
    ttl_attribute="expiresAt",
    env="RATE_LIMITS_TABLE",
)

TABLES: tuple[Table, ...] = (SESSIONS, CONNECTIONS, RATE_LIMITS)
