"""Live sessions as the console lists them, read from the embedded DynamoDB.

Through the same store functions the handlers use: the sparse active-sessions index, then
per session its record and the listeners GSI. Bounded by maxActiveSessions (local use only:
the deployed service never needs this view). No connection ID leaves this module: the
console has no use for one.
"""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

from runtime import store


def live_sessions(now_ms: int | None = None) -> list[dict[str, Any]]:
    """Active sessions, newest first: languages, listener counts by target language, age."""
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    ids = [record["sessionId"] for record in store.active_sessions()]
    sessions: list[dict[str, Any]] = []
    for session_id in ids:
        record = store.get_session(session_id)
        if record is None or not record.get("isActive"):
            continue  # ended between the two reads
        by_language = Counter(
            listener.get("targetLanguage") or "?"
            for listener in store.listener_connections(session_id)
        )
        created = int(record.get("createdAt") or now_ms)
        sessions.append(
            {
                "sessionId": session_id,
                "sourceLanguage": record.get("sourceLanguage"),
                "qualityTier": record.get("qualityTier"),
                "speakerUserId": record.get("speakerUserId"),
                "createdAt": created,
                "ageSeconds": max(0, (now_ms - created) // 1000),
                "expiresAt": record.get("expiresAt"),
                "listenerCount": sum(by_language.values()),
                "recordedListenerCount": int(record.get("listenerCount") or 0),
                "listenersByLanguage": dict(sorted(by_language.items())),
            }
        )
    sessions.sort(key=lambda s: s["createdAt"], reverse=True)
    return sessions
