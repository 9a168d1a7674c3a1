"""The server's messages, typed: what each reply and push carries (docs/architecture.md#protocol).

TypedDicts are plain dicts at run time (no cold-start cost); the builders put ``type`` first
and ``timestamp`` (epoch ms) last, as every server message does.
"""

from __future__ import annotations

from typing import Any, Literal, NotRequired, TypedDict

from runtime.protocol import now_ms

# Why a session ended (``sessionEnded.reason``).
SPEAKER_DISCONNECTED = "speakerDisconnected"
EXPIRED = "expired"


class SessionCreated(TypedDict):
    type: Literal["sessionCreated"]
    sessionId: str
    sourceLanguage: str
    qualityTier: str
    expiresAt: int  # epoch ms
    refreshToken: str  # runtime.refresh_tokens: proof for this connection's refresh
    timestamp: int


class SessionJoined(TypedDict):
    type: Literal["sessionJoined"]
    sessionId: str
    sourceLanguage: str | None
    targetLanguage: str
    listenerCount: int | None
    refreshToken: str
    timestamp: int


class HeartbeatAck(TypedDict):
    type: Literal["heartbeatAck"]
    timestamp: int


class ConnectionRefreshComplete(TypedDict):
    type: Literal["connectionRefreshComplete"]
    sessionId: str
    role: str
    refreshToken: str  # the new connection's, for its own refresh
    timestamp: int


class SessionEnded(TypedDict):
    type: Literal["sessionEnded"]
    sessionId: str
    reason: str  # SPEAKER_DISCONNECTED | EXPIRED
    timestamp: int


class ConnectionRefreshRequired(TypedDict):
    type: Literal["connectionRefreshRequired"]
    sessionId: str
    role: str
    targetLanguage: NotRequired[str]  # listeners
    refreshToken: str
    timestamp: int


class ConnectionWarning(TypedDict):
    type: Literal["connectionWarning"]
    remainingMinutes: int
    timestamp: int


class ErrorReply(TypedDict):
    type: Literal["error"]
    code: str
    status: int
    message: str
    requestId: str
    timestamp: int
    details: dict[str, Any]


Reply = SessionCreated | SessionJoined | HeartbeatAck | ConnectionRefreshComplete
Push = SessionEnded | ConnectionRefreshRequired | ConnectionWarning


def session_ended(session_id: str, reason: str) -> SessionEnded:
    """The push every connection of a session gets when it ends."""
    return {
        "type": "sessionEnded",
        "sessionId": session_id,
        "reason": reason,
        "timestamp": now_ms(),
    }


def heartbeat_ack(timestamp: int) -> HeartbeatAck:
    return {"type": "heartbeatAck", "timestamp": timestamp}


def connection_warning(remaining_minutes: int, timestamp: int) -> ConnectionWarning:
    return {
        "type": "connectionWarning",
        "remainingMinutes": remaining_minutes,
        "timestamp": timestamp,
    }
