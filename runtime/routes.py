"""The route table: every function of the service, what triggers it and what it may touch.

``components`` renders each entry into a MonitoredFunction (with an IAM policy built from
``tables`` and ``manages_connections``), an integration, a route and a route response;
``local`` dispatches WebSocket frames and timers to the same handlers.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from runtime.tables import CONNECTIONS, RATE_LIMITS, SESSIONS

# DynamoDB actions, grouped so each function's grant reads as what it does.
READ = ("dynamodb:GetItem",)
QUERY = ("dynamodb:Query",)
WRITE = ("dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem")
UPDATE = ("dynamodb:UpdateItem",)
BATCH_DELETE = ("dynamodb:BatchWriteItem",)
# TransactWriteItems is authorised per item action (Put/Update/ConditionCheck) on each table,
# so transactional writers need no extra action beyond WRITE.

SCHEDULE_EVERY_MINUTE = "rate(1 minute)"


@dataclass(frozen=True)
class Function:
    """One Lambda function: a WebSocket route handler or a scheduled job."""

    name: str
    handler: str
    operation: str
    memory_mb: int = 256
    timeout_s: int = 10
    # Table logical name → DynamoDB actions the handler calls on it (and its indexes).
    tables: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    # True when the function posts to / deletes connections through the @connections API.
    manages_connections: bool = False
    route_key: str | None = None
    # Two-way route: the handler's return body is sent back to the caller as the reply.
    replies: bool = False
    schedule: str | None = None

    @property
    def module(self) -> str:
        return self.handler.rsplit(".", 1)[0]


ROUTES: tuple[Function, ...] = (
    Function(
        name="connect",
        route_key="$connect",
        handler="runtime.handlers.connect.handler",
        operation="connect",
        tables={RATE_LIMITS.logical_name: UPDATE, CONNECTIONS.logical_name: ("dynamodb:PutItem",)},
    ),
    Function(
        name="disconnect",
        route_key="$disconnect",
        handler="runtime.handlers.disconnect.handler",
        operation="disconnect",
        memory_mb=512,
        timeout_s=29,
        tables={
            CONNECTIONS.logical_name: ("dynamodb:DeleteItem", *QUERY, *BATCH_DELETE),
            SESSIONS.logical_name: UPDATE,
        },
        manages_connections=True,
    ),
    Function(
        name="default",
        route_key="$default",
        handler="runtime.handlers.default.handler",
        operation="default",
        memory_mb=128,
        replies=True,
    ),
    Function(
        name="create-session",
        route_key="createSession",
        handler="runtime.handlers.create_session.handler",
        operation="createSession",
        tables={
            CONNECTIONS.logical_name: (*READ, *UPDATE),
            RATE_LIMITS.logical_name: UPDATE,
            SESSIONS.logical_name: ("dynamodb:PutItem", *UPDATE),
        },
        replies=True,
    ),
    Function(
        name="join-session",
        route_key="joinSession",
        handler="runtime.handlers.join_session.handler",
        operation="joinSession",
        tables={
            CONNECTIONS.logical_name: UPDATE,
            RATE_LIMITS.logical_name: UPDATE,
            SESSIONS.logical_name: UPDATE,
        },
        replies=True,
    ),
    Function(
        name="heartbeat",
        route_key="heartbeat",
        handler="runtime.handlers.heartbeat.handler",
        operation="heartbeat",
        tables={CONNECTIONS.logical_name: UPDATE},
        manages_connections=True,
        replies=True,
    ),
    Function(
        name="refresh-connection",
        route_key="refreshConnection",
        handler="runtime.handlers.refresh_connection.handler",
        operation="refreshConnection",
        tables={
            CONNECTIONS.logical_name: (*READ, *UPDATE),
            SESSIONS.logical_name: (*READ, *UPDATE),
        },
        replies=True,
    ),
    Function(
        name="metrics-reporter",
        schedule=SCHEDULE_EVERY_MINUTE,
        handler="runtime.handlers.metrics_reporter.handler",
        operation="metricsReporter",
        timeout_s=60,
        tables={SESSIONS.logical_name: QUERY},
    ),
    Function(
        name="sweeper",
        schedule=SCHEDULE_EVERY_MINUTE,
        handler="runtime.handlers.sweeper.handler",
        operation="sweeper",
        memory_mb=512,
        timeout_s=60,
        tables={
            # GetItem: the active-sessions counter and a drifting session, read consistently;
            # BatchGetItem: the sessions of possibly orphaned connection records, 100 per call.
            SESSIONS.logical_name: (*READ, *QUERY, *UPDATE, "dynamodb:BatchGetItem"),
            CONNECTIONS.logical_name: (
                *QUERY,
                "dynamodb:Scan",
                "dynamodb:DeleteItem",
                *BATCH_DELETE,
                # BatchGetItem: which speakers still have a record, 100 per call.
                "dynamodb:BatchGetItem",
            ),
        },
        manages_connections=True,
    ),
)

WEBSOCKET_ROUTES: tuple[Function, ...] = tuple(f for f in ROUTES if f.route_key)
SCHEDULED: tuple[Function, ...] = tuple(f for f in ROUTES if f.schedule)
BY_ROUTE_KEY: dict[str, Function] = {f.route_key: f for f in WEBSOCKET_ROUTES if f.route_key}
BY_NAME: dict[str, Function] = {f.name: f for f in ROUTES}
