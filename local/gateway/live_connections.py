"""The open connections of a local stack, with each one's role and session.

For client developers trying ``post_to_connection``: logs only carry keyed hashes of
connection IDs, so the local stack lists the real ones here (served on this machine only,
at ``/_local/connections``; ``python -m local connections`` prints them). The gateway
knows which connections are open; their role, session and language are in the embedded
DynamoDB, read through the same store function the handlers use.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from local.gateway.websocket import Gateway

# Bounds the DynamoDB reads of one listing (a laptop rarely holds more).
MAX_LISTED = 1000


async def live_connections(gateway: Gateway) -> list[dict[str, Any]]:
    """Open connections, oldest first; DynamoDB is read off the event loop."""
    now = time.time()
    opened = sorted(
        (record for record in gateway.connections.values() if record.connected),
        key=lambda record: record.peer.connected_at,
    )[:MAX_LISTED]
    snapshot = [(record.connection_id, record.peer.connected_at) for record in opened]
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(None, _describe, snapshot, now)


def _describe(snapshot: list[tuple[str, int]], now: float) -> list[dict[str, Any]]:
    from runtime import store  # imported once the functions' environment is set

    listed = []
    for connection_id, connected_at_ms in snapshot:
        record = store.get_connection(connection_id) or {}
        listed.append(
            {
                "connectionId": connection_id,
                "role": record.get("role"),
                "sessionId": record.get("sessionId"),
                "targetLanguage": record.get("targetLanguage"),
                "userId": record.get("userId"),
                "connectedAt": connected_at_ms,
                "ageSeconds": max(0, int(now - connected_at_ms / 1000)),
            }
        )
    return listed
