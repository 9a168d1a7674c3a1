"""``createSession``: a verified speaker's connection creates a session and becomes its speaker.

Input is validated before any AWS call. Then one read (who is this connection?), one rate-limit
count and one transaction that checks the active-sessions limit, claims the new ID and gives
the connection its role, all atomically; only an ID collision is retried.
"""

from __future__ import annotations

from typing import Any

from runtime import rate_limits, store
from runtime.config import config
from runtime.errors import ErrorCode, ServiceError
from runtime.invocation import Invocation, message_route
from runtime.languages import validate_source_language
from runtime.messages import SessionCreated
from runtime.metric_names import SESSION_CREATION_LATENCY
from runtime.observability import logs
from runtime.protocol import now_ms, optional_choice
from runtime.session_ids import MAX_ID_ATTEMPTS, generate_session_id, load_word_lists

QUALITY_TIERS = ("standard", "premium")
WINDOW_S = 3600

# Every createSession draws from the word lists: read them in the cold start, as before.
load_word_lists()


def _speaker(inv: Invocation) -> str:
    """The connection's verified user ID, if it may still take a role."""
    connection = store.get_connection(inv.connection_id)
    user_id = (connection or {}).get("userId")
    if not user_id:
        raise ServiceError(
            ErrorCode.UNAUTHORIZED,
            "Creating a session needs a verified speaker: connect with ?token=<ID token>.",
        )
    inv.identify(user_id=user_id)
    role = (connection or {}).get("role")
    if role:
        raise ServiceError(
            ErrorCode.FORBIDDEN,
            f"This connection is already a {role}; open a new connection for another session.",
            role=role,
        )
    return user_id


def _create(session: store.SessionItem) -> str:
    """Write the session under a fresh ID; returns the ID. Retries only on ID collisions."""
    max_active = config().maxActiveSessions
    for _ in range(MAX_ID_ATTEMPTS):
        session_id = generate_session_id()
        try:
            store.create_session({**session, "sessionId": session_id}, max_active=max_active)
        except store.Conflict as failed:
            if "role" in failed.reasons:
                # A concurrent createSession/joinSession on this connection won the role.
                raise ServiceError(
                    ErrorCode.FORBIDDEN,
                    "This connection already has a role; "
                    "open a new connection to create a session.",
                ) from None
            if "limit" in failed.reasons:
                raise ServiceError(
                    ErrorCode.SESSION_LIMIT_REACHED,
                    f"The service is at its limit of {max_active} active sessions; "
                    "try again later.",
                    maxActiveSessions=max_active,
                ) from None
            continue  # "taken": another session has this ID
        return session_id
    raise ServiceError(
        ErrorCode.SERVICE_UNAVAILABLE,
        f"Could not find an unused session ID in {MAX_ID_ATTEMPTS} attempts; please retry.",
        retryable=True,
    )


@message_route(latency=SESSION_CREATION_LATENCY)
def handler(inv: Invocation, message: dict[str, Any]) -> SessionCreated:
    logs.set_invocation_fields(userContext={"ipHash": inv.ip_hash})
    source_language = validate_source_language(message.get("sourceLanguage"))
    quality_tier = optional_choice(message, "qualityTier", QUALITY_TIERS, "standard")

    user_id = _speaker(inv)
    rate_limits.enforce(inv, inv.operation, "user", user_id, config().sessionsPerHour, WINDOW_S)

    expires_at_s = store.ttl_from_now()
    session_id = _create(
        {
            "speakerConnectionId": inv.connection_id,
            "speakerUserId": user_id,
            "sourceLanguage": source_language,
            "qualityTier": quality_tier,
            "createdAt": now_ms(),
            "isActive": True,
            "listenerCount": 0,
            "expiresAt": expires_at_s,
        },
    )
    inv.identify(session_id=session_id, user_id=user_id)
    return SessionCreated(
        type="sessionCreated",
        sessionId=session_id,
        sourceLanguage=source_language,
        qualityTier=quality_tier,
        expiresAt=expires_at_s * 1000,  # messages carry epoch ms; the TTL is epoch seconds
        timestamp=now_ms(),
    )
