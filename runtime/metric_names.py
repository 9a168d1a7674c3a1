"""The custom metrics (docs/architecture.md): names, units and the exact dimension sets emitted.

``runtime.metrics`` emits only what is declared here, and ``components`` builds alarms and
the dashboard from the same declarations, so an alarm can never watch a metric or a
dimension set that is not published.
"""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_NAMESPACE = "SessionManagement"
STAGE = "Stage"
ERROR_CODE = "ErrorCode"
OPERATION = "Operation"


@dataclass(frozen=True)
class MetricSpec:
    name: str
    unit: str
    # Each datum is published once per dimension set; every set starts with Stage.
    dimension_sets: tuple[tuple[str, ...], ...] = ((STAGE,),)


SESSION_CREATION_LATENCY = MetricSpec("SessionCreationLatency", "Milliseconds")
LISTENER_JOIN_LATENCY = MetricSpec("ListenerJoinLatency", "Milliseconds")
HEARTBEAT_LATENCY = MetricSpec("HeartbeatLatency", "Milliseconds")
DISCONNECT_LATENCY = MetricSpec("DisconnectLatency", "Milliseconds")
CONNECTION_ERRORS = MetricSpec("ConnectionErrors", "Count", ((STAGE,), (STAGE, ERROR_CODE)))
# Error replies the service caused (INTERNAL_ERROR, SERVICE_UNAVAILABLE): what pages the
# on-call, unlike ConnectionErrors, which any client can drive up alone.
SERVER_ERRORS = MetricSpec("ServerErrors", "Count", ((STAGE,), (STAGE, ERROR_CODE)))
RATE_LIMIT_EXCEEDED = MetricSpec("RateLimitExceeded", "Count", ((STAGE,), (STAGE, OPERATION)))
ACTIVE_SESSIONS = MetricSpec("ActiveSessions", "Count")
TOTAL_LISTENERS = MetricSpec("TotalListeners", "Count")
# Degradations that requests survive (issue 5): published so operators can see and alarm
# on them; Operation says which dependency or step degraded.
DEPENDENCY_FAILURES = MetricSpec("DependencyFailures", "Count", ((STAGE,), (STAGE, OPERATION)))

METRICS: tuple[MetricSpec, ...] = (
    SESSION_CREATION_LATENCY,
    LISTENER_JOIN_LATENCY,
    HEARTBEAT_LATENCY,
    DISCONNECT_LATENCY,
    CONNECTION_ERRORS,
    SERVER_ERRORS,
    RATE_LIMIT_EXCEEDED,
    ACTIVE_SESSIONS,
    TOTAL_LISTENERS,
    DEPENDENCY_FAILURES,
)
BY_NAME: dict[str, MetricSpec] = {m.name: m for m in METRICS}
