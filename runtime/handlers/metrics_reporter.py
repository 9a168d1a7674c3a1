"""``metricsReporter`` (every minute): the ActiveSessions and TotalListeners gauges.

Reads the sparse active-sessions index, so the work is bounded by maxActiveSessions, never by
the table's history. Zeros are published too: dashboards and the ActiveSessions alarm then see
data points rather than gaps.
"""

from __future__ import annotations

from typing import Any

from runtime import store
from runtime.invocation import Invocation, scheduled_job
from runtime.metric_names import ACTIVE_SESSIONS, TOTAL_LISTENERS


@scheduled_job()
def handler(inv: Invocation) -> dict[str, Any]:
    sessions = 0
    listeners = 0
    for session in store.active_sessions():
        if session.get("isActive") is False:
            continue  # ending right now; the index entry is on its way out
        sessions += 1
        listeners += max(0, int(session.get("listenerCount") or 0))
    inv.metrics.add(ACTIVE_SESSIONS, sessions)
    inv.metrics.add(TOTAL_LISTENERS, listeners)
    return {"activeSessions": sessions, "totalListeners": listeners}
