"""``createSession``: a verified speaker's connection creates a session and becomes its speaker.

Input is validated before any AWS call. Then one read (who is this connection?), one rate-limit
count and one transaction that checks the active-sessions limit, claims the new ID and gives
the connection its role, all atomically; only an ID collision is retried.
"""

from __future__ import annotations

from typing import Any

from runtime import rate_limits, refresh_tokens, store
from runtime.config import config
from runtime.errors import ErrorCode, ServiceError
from runtime.invocation import Invocation, message_route
from runtime.languages import validate_source_language
from runtime.messages import SessionCreated
from runtime.metric_names import SESSION_CREATION_LATENCY
from runtime.observability import logs
from runtime.observability.logs import log
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
    """Write the session under a fresh ID; returns the ID. Retries on ID collisions, and once
    when the user's set of active sessions held sessions that have ended."""
    max_active = config().maxActiveSessions
    max_per_user = config().maxActiveSessionsPerUser
    checked_user_sessions = False
    for _ in range(MAX_ID_ATTEMPTS):
        session_id = generate_session_id()
        try:
            store.create_session(
                {**session, "sessionId": session_id},
                max_active=max_active,
                max_per_user=max_per_user,
            )
        except store.Conflict as failed:
            if "role" in failed.reasons:
                # A concurrent createSession/joinSession on this connection won the role.
                raise ServiceError(
                    ErrorCode.FORBIDDEN,
                    "This connection already has a role; "
                    "open a new connection to create a session.",
                ) from None
            if "user" in failed.reasons:
                held = set((failed.items.get("user") or {}).get("sessions") or ())
                if not checked_user_sessions:
                    checked_user_sessions = True
                    ended = _ended(held)
                    if ended:
                        # Sessions that ended without leaving the set (a drift): forget them
                        # and try again; the set is right from now on.
                        store.forget_user_sessions(session["speakerUserId"], ended)
                        log.bind(details={"forgotten": len(ended)}).warning(
                            "user's active-session set held ended sessions; corrected"
                        )
                        continue
                raise ServiceError(
                    ErrorCode.USER_SESSION_LIMIT_REACHED,
                    f"You already have {len(held)} active sessions open, the most one speaker "
                    f"may hold at once ({max_per_user}); end one of them (close its speaker "
                    "connection) and try again.",
                    activeSessions=len(held),
                    maxActiveSessionsPerUser=max_per_user,
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


def _ended(session_ids: set[str]) -> set[str]:
    """Which of these sessions are no longer active (one consistent BatchGetItem)."""
    if not session_ids:
        return set()
    sessions = store.sessions_by_id(session_ids)
    return {sid for sid in session_ids if not (sessions.get(sid) or {}).get("isActive")}


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
        refreshToken=refresh_tokens.issue(session_id, store.SPEAKER, inv.connection_id),
        timestamp=now_ms(),
    )
