"""The shapes of the records the service keeps (the data contract, docs/architecture.md#data).

TypedDicts: at run time they are the plain dicts ``dynamo.from_item`` returns, so typing them
costs nothing at a cold start. ``total=False``: an item carries only what was written to it
(a connection has no role until it takes one; only an active session has ``activeShard``).
"""

from __future__ import annotations

from typing import TypedDict


class SessionItem(TypedDict, total=False):
    """An item of the Sessions table (key ``sessionId``)."""

    sessionId: str
    speakerConnectionId: str
    speakerUserId: str
    sourceLanguage: str
    qualityTier: str
    createdAt: int  # epoch ms
    isActive: bool
    listenerCount: int
    expiresAt: int  # epoch seconds: the TTL
    activeShard: str  # only while active: the sparse active-sessions index
    endReason: str
    endedAt: int  # epoch ms
    speakerSince: int  # epoch ms: when a refresh last moved the speaker
    missingSpeaker: str  # the speaker connection a sweep found without a record ...
    missingSpeakerSince: int  # ... and since when (epoch ms)
    activeSessions: int  # only on the counter item (sessionId "#counters")


class ConnectionItem(TypedDict, total=False):
    """An item of the Connections table (key ``connectionId``).

    Besides these, the heartbeat's per-minute counter lives in an attribute named after its
    window (``hb{minute}``), so it has no fixed name here.
    """

    connectionId: str
    role: str  # speaker | listener, taken once
    sessionId: str
    targetLanguage: str
    userId: str  # a verified speaker's user
    connectedAt: int  # epoch ms
    lastSeenAt: int  # epoch ms
    ipHash: str  # keyed hash, never the raw IP
    ttl: int  # epoch seconds: the TTL
    claimedBy: str  # the request ID that claimed the role
    replacedAt: int  # epoch ms: a listener refresh (with this connection's token) replaced it
    refreshNotifiedAt: int  # epoch ms
    warningNotifiedAt: int  # epoch ms
