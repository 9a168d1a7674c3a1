"""The route table: every function of the service, what triggers it and what it may touch.

``components`` renders each entry into a MonitoredFunction (with the IAM policy
``runtime.iam.policy`` builds from ``tables``, ``indexes``, ``manages_connections``,
``closes_connections`` and ``reads_hash_key``), an integration, a route and a route response;
``local`` dispatches WebSocket frames and timers to the same handlers, and the local stack
and the runtime tests check every AWS call a function makes against that same policy
(``runtime.iam``).

A route's name is written once, as its ``route_key``: the operation (log field, metric
dimension, rate-limit key) is the route key without its ``$``, the function name is the
operation in kebab case, the handler is ``runtime.handlers.<name in snake case>.handler``,
the handler's decorator looks its operation up here (``for_module``), and the actions
the protocol advertises (``ACTIONS``) are the route keys that are not ``$`` routes.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from runtime.tables import CONNECTIONS, RATE_LIMITS, SESSIONS

# DynamoDB actions, grouped so each function's grant reads as what it does. Each one is
# needed by a call the handler really makes: the IAM mutation test
# (tests/runtime/test_iam_mutations.py) removes them one at a time and a test must then fail
# with AccessDenied.
READ = ("dynamodb:GetItem",)
QUERY = ("dynamodb:Query",)
UPDATE = ("dynamodb:UpdateItem",)
BATCH_DELETE = ("dynamodb:BatchWriteItem",)
# TransactWriteItems is authorised per item action (PutItem/UpdateItem/DeleteItem/
# ConditionCheckItem) on each item's table, so transactional writers list those.

SCHEDULE_EVERY_MINUTE = "rate(1 minute)"
_RATE = re.compile(r"rate\((\d+) (minute|minutes|hour|hours|day|days)\)")
_UNIT_SECONDS = {"minute": 60, "hour": 3600, "day": 86400}


def _kebab(camel: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "-", camel).lower()


@dataclass(frozen=True)
class Function:
    """One Lambda function: a WebSocket route handler or a scheduled job.

    Give a WebSocket route its ``route_key`` and a scheduled job its ``operation``; the other
    names follow from that one (see the module docstring) unless given.
    """

    name: str = ""
    handler: str = ""
    operation: str = ""
    memory_mb: int = 256
    timeout_s: int = 10
    # Table logical name → DynamoDB actions the handler calls on the table itself
    # (granted on the table's ARN only).
    tables: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    # Table logical name → DynamoDB actions the handler calls on the table's indexes
    # (a Query with IndexName; granted on ``<table arn>/index/*`` only).
    indexes: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    # True when the function posts to connections through the @connections API (POST).
    manages_connections: bool = False
    # True when it also closes connections through the @connections API (DELETE).
    closes_connections: bool = False
    # False for a function that never hashes an IP or a connection ID, so never reads the
    # stack's HMAC key from SSM (no ssm:GetParameter).
    reads_hash_key: bool = True
    route_key: str | None = None
    # Two-way route: the handler's return body is sent back to the caller as the reply.
    replies: bool = False
    schedule: str | None = None

    def __post_init__(self) -> None:
        if (self.route_key is None) == (self.schedule is None):
            raise ValueError("a function has either a route_key or a schedule")
        operation = self.operation or (self.route_key or "").removeprefix("$")
        if not operation:
            raise ValueError("a scheduled function needs its operation")
        name = self.name or _kebab(operation)
        # frozen: the derived names are set once, here.
        object.__setattr__(self, "operation", operation)
        object.__setattr__(self, "name", name)
        if not self.handler:
            object.__setattr__(
                self, "handler", f"runtime.handlers.{name.replace('-', '_')}.handler"
            )

    @property
    def module(self) -> str:
        return self.handler.rsplit(".", 1)[0]

    @property
    def is_action(self) -> bool:
        """A route a client selects by ``action`` (not one of API Gateway's ``$`` routes)."""
        return self.route_key is not None and not self.route_key.startswith("$")

    @property
    def schedule_seconds(self) -> int | None:
        """Seconds between two scheduled runs (``rate(…)`` expressions), None if unscheduled."""
        if self.schedule is None:
            return None
        match = _RATE.fullmatch(self.schedule)
        if match is None:
            raise ValueError(f"{self.name}: unsupported schedule {self.schedule!r}")
        return int(match.group(1)) * _UNIT_SECONDS[match.group(2).rstrip("s")]


ROUTES: tuple[Function, ...] = (
    Function(
        route_key="$connect",
        tables={RATE_LIMITS.logical_name: UPDATE, CONNECTIONS.logical_name: ("dynamodb:PutItem",)},
    ),
    Function(
        route_key="$disconnect",
        memory_mb=512,
        timeout_s=29,
        tables={
            # BatchGetItem: a leaving speaker's listeners' whole records, 100 per call (the
            # listener index projects only keys and role; releasing rewrites whole records).
            CONNECTIONS.logical_name: (
                "dynamodb:DeleteItem",
                *BATCH_DELETE,
                "dynamodb:BatchGetItem",
            ),
            SESSIONS.logical_name: UPDATE,
        },
        # The session's listeners, when the speaker leaves.
        indexes={CONNECTIONS.logical_name: QUERY},
        manages_connections=True,
    ),
    Function(
        route_key="$default",
        memory_mb=128,
        replies=True,
    ),
    Function(
        route_key="createSession",
        tables={
            CONNECTIONS.logical_name: (*READ, *UPDATE),
            RATE_LIMITS.logical_name: UPDATE,
            # BatchGetItem: whether the sessions a user at its limit holds are still active.
            SESSIONS.logical_name: ("dynamodb:PutItem", *UPDATE, "dynamodb:BatchGetItem"),
        },
        replies=True,
    ),
    Function(
        route_key="joinSession",
        tables={
            CONNECTIONS.logical_name: UPDATE,
            RATE_LIMITS.logical_name: UPDATE,
            SESSIONS.logical_name: UPDATE,
        },
        replies=True,
    ),
    Function(
        route_key="heartbeat",
        tables={CONNECTIONS.logical_name: UPDATE},
        manages_connections=True,
        replies=True,
    ),
    Function(
        route_key="refreshConnection",
        tables={
            CONNECTIONS.logical_name: (*READ, *UPDATE),
            # The refresh limits (runtime.session_lookups): GetItem reads the failed-lookup
            # count on a speaker refresh, UpdateItem counts a listener refresh and a failed
            # lookup. Without them AWS denies both, the limits fail open and every refresh
            # counts a DependencyFailure (issue 19).
            RATE_LIMITS.logical_name: (*READ, *UPDATE),
            SESSIONS.logical_name: (*READ, *UPDATE),
        },
        replies=True,
    ),
    Function(
        schedule=SCHEDULE_EVERY_MINUTE,
        operation="metricsReporter",
        # Shorter than the schedule: a run never overlaps the next (at most one runs at once).
        timeout_s=50,
        indexes={SESSIONS.logical_name: QUERY},
        # Hashes nothing: no IP, no connection.
        reads_hash_key=False,
    ),
    Function(
        schedule=SCHEDULE_EVERY_MINUTE,
        operation="sweeper",
        memory_mb=512,
        # Shorter than the schedule: a run never overlaps the next (at most one runs at once).
        timeout_s=50,
        tables={
            # GetItem: the active-sessions counter and a drifting session, read consistently;
            # BatchGetItem: the sessions of possibly orphaned connection records, 100 per call.
            SESSIONS.logical_name: (*READ, *UPDATE, "dynamodb:BatchGetItem"),
            CONNECTIONS.logical_name: (
                # Scan: the table itself (silent connections and role holders).
                "dynamodb:Scan",
                "dynamodb:DeleteItem",
                *BATCH_DELETE,
                # BatchGetItem: which speakers still have a record, 100 per call.
                "dynamodb:BatchGetItem",
            ),
        },
        # Active sessions (Sessions) and a session's listeners (Connections).
        indexes={SESSIONS.logical_name: QUERY, CONNECTIONS.logical_name: QUERY},
        manages_connections=True,
        # It closes silent connections.
        closes_connections=True,
    ),
)

WEBSOCKET_ROUTES: tuple[Function, ...] = tuple(f for f in ROUTES if f.route_key)
SCHEDULED: tuple[Function, ...] = tuple(f for f in ROUTES if f.schedule)
BY_ROUTE_KEY: dict[str, Function] = {f.route_key: f for f in WEBSOCKET_ROUTES if f.route_key}
BY_NAME: dict[str, Function] = {f.name: f for f in ROUTES}
BY_OPERATION: dict[str, Function] = {f.operation: f for f in ROUTES}
BY_MODULE: dict[str, Function] = {f.module: f for f in ROUTES}
# What clients may send as ``action``, in route-table order (``supportedActions``).
ACTIONS: tuple[str, ...] = tuple(f.route_key for f in ROUTES if f.is_action and f.route_key)


def for_module(module: str) -> Function:
    """The route-table entry whose handler lives in ``module`` (a handler's own ``__name__``)."""
    try:
        return BY_MODULE[module]
    except KeyError:
        raise LookupError(f"{module} has no entry in runtime.routes.ROUTES") from None
