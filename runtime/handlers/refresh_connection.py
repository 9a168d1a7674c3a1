"""``refreshConnection``: move a speaker or a listener onto a new connection, same session.

API Gateway closes every WebSocket after two hours, so a session outlives its connections:
at ``connectionRefreshMinutes`` the client opens a new connection, sends ``refreshConnection``
on it, gets ``connectionRefreshComplete`` and then closes the old one.

- Speaker: the new connection carries the speaker's token (its record has ``userId``). One
  transaction moves ``speakerConnectionId`` to it (only if the session is active and the
  user is its speaker), extends the session's TTL, and gives it the speaker role. The old
  connection's ``$disconnect`` then no longer matches the speaker and leaves the session be.
- Listener: one transaction counts the new connection and gives it the listener role. The
  old connection still counts until its ``$disconnect``, so the count may pass
  ``maxListenersPerSession`` for that moment, but never by more than ``refresh_slack``:
  refresh cannot be used to grow a session much past its cap.

Budget: speaker 3 calls (GetItem, the failed-lookup budget's GetItem, TransactWriteItems),
listener 2 (the join limit's UpdateItem, TransactWriteItems); EMF carries the metrics
(``metricsTransport: api`` adds one PutMetricData). A lookup that finds no session adds one
UpdateItem (``session_lookups.record_failure``).
Redelivery is idempotent: a connection that already holds the requested role in that
session is answered with success and nothing is counted twice.
"""

from __future__ import annotations

import math
from typing import Any

from runtime import session_lookups, store
from runtime.config import config
from runtime.errors import ErrorCode, ServiceError
from runtime.invocation import Invocation, message_route
from runtime.languages import validate_target_language
from runtime.observability import logs
from runtime.observability.logs import log
from runtime.protocol import now_ms, server_message
from runtime.session_ids import require_session_id

# In-flight listener refreshes allowed above the cap, as a share of it (at least one).
REFRESH_SLACK_RATIO = 0.1
# When the slack is used up, other listeners' old connections are closing within seconds.
RETRY_AFTER_S = 2


def refresh_slack(max_listeners: int) -> int:
    """How far a session's count may exceed its cap while listeners swap connections."""
    return max(1, math.ceil(max_listeners * REFRESH_SLACK_RATIO))


@message_route()
def handler(inv: Invocation, message: dict[str, Any]) -> dict[str, Any]:
    logs.bind(userContext={"ipHash": inv.ip_hash})
    session_id = require_session_id(message)
    role = _role(message)
    # Validated before any AWS call, so a bad request costs nothing.
    target_language = (
        validate_target_language(message.get("targetLanguage")) if role == store.LISTENER else None
    )
    inv.bind(session_id=session_id)
    try:
        if role == store.SPEAKER:
            _refresh_speaker(inv, session_id)
        else:
            assert target_language is not None
            # A listener refresh is a join onto a new connection: it counts against the join
            # limit (and the failed-lookup budget) in the same conditional write.
            session_lookups.admit(inv, counts_as_join=True)
            _refresh_listener(inv, session_id, target_language)
    except ServiceError as error:
        if error.code is ErrorCode.SESSION_NOT_FOUND:
            session_lookups.record_failure(inv)
        raise
    return server_message("connectionRefreshComplete", sessionId=session_id, role=role)


def _role(message: dict[str, Any]) -> str:
    role = message.get("role")
    if role not in store.ROLES:
        raise ServiceError(
            ErrorCode.INVALID_PARAMETERS,
            "'role' must be one of " + ", ".join(store.ROLES) + "; "
            "send the role of the connection being replaced.",
            field="role",
            allowed=list(store.ROLES),
        )
    return str(role)


def _not_found(session_id: str) -> ServiceError:
    return ServiceError(
        ErrorCode.SESSION_NOT_FOUND,
        f"Session '{session_id}' does not exist or has ended; "
        "check the ID, or ask the speaker for the current one.",
        sessionId=session_id,
    )


def _has_role(role: str | None) -> ServiceError:
    return ServiceError(
        ErrorCode.FORBIDDEN,
        f"This connection is already a {role or 'participant'}; "
        "open a new connection and refresh on that one.",
        role=role,
    )


# --- speaker -------------------------------------------------------------------------------------


def _refresh_speaker(inv: Invocation, session_id: str) -> None:
    record = store.get_connection(inv.connection_id) or {}
    user_id = record.get("userId")
    if not user_id:
        raise ServiceError(
            ErrorCode.UNAUTHORIZED,
            "Refreshing as the speaker needs a verified token: "
            "open the new connection with ?token=<ID token>.",
        )
    inv.bind(user_id=user_id)
    session_lookups.admit(inv, counts_as_join=False)
    if record.get("role"):
        # Redelivery, or a connection that already has another role: no write needed.
        _already_speaker(inv, session_id, record)
        return
    try:
        store.swap_speaker(
            session_id,
            user_id=user_id,
            connection_id=inv.connection_id,
            now_ms=now_ms(),
            expires_at=store.ttl_from_now(),
        )
    except store.TransactionConflict as conflict:
        if "session" in conflict.items:
            refused = _speaker_refused(session_id, conflict.items["session"])
            if refused.code is ErrorCode.FORBIDDEN:
                # "Not yours" tells a guesser the session exists: a failed lookup too.
                session_lookups.record_failure(inv)
            raise refused from None
        # A concurrent request on this connection took a role between our read and write.
        _already_speaker(inv, session_id, conflict.items.get("role") or {})
        return
    log.info("speaker moved to a new connection")


def _speaker_refused(session_id: str, session: dict[str, Any] | None) -> ServiceError:
    if not session or not session.get("isActive"):
        return _not_found(session_id)
    return ServiceError(
        ErrorCode.FORBIDDEN,
        f"Only the speaker who created session '{session_id}' can refresh as its speaker; "
        "connect with that speaker's token.",
        sessionId=session_id,
    )


def _already_speaker(inv: Invocation, session_id: str, record: dict[str, Any]) -> None:
    """Succeed only if this connection already is this session's current speaker."""
    if record.get("role") == store.SPEAKER and record.get("sessionId") == session_id:
        session = store.get_session(session_id)
        if session and session.get("isActive"):
            if session.get("speakerConnectionId") == inv.connection_id:
                log.info("speaker refresh redelivered; already done")
                return
        else:
            raise _not_found(session_id)
    raise _has_role(record.get("role"))


# --- listener ------------------------------------------------------------------------------------


def _refresh_listener(inv: Invocation, session_id: str, target_language: str) -> None:
    cap = config().maxListenersPerSession
    bound = cap + refresh_slack(cap)
    try:
        store.add_refreshed_listener(
            session_id,
            connection_id=inv.connection_id,
            target_language=target_language,
            max_listeners=bound,
            now_ms=now_ms(),
            connected_at_ms=inv.connected_at_ms or now_ms(),
        )
    except store.TransactionConflict as conflict:
        if "session" in conflict.items:
            session = conflict.items["session"]
            if not session or not session.get("isActive"):
                raise _not_found(session_id) from None
            if _already_listener(conflict.items.get("role"), inv.connection_id, session_id):
                # A repeat of the refresh that took the last place: done, not full.
                log.info("listener refresh redelivered; already done")
                return
            raise ServiceError(
                ErrorCode.SESSION_FULL,
                f"Session '{session_id}' has too many listeners changing connections right now; "
                f"keep the current connection and retry in {RETRY_AFTER_S} s.",
                sessionId=session_id,
                maxListeners=cap,
                retryAfter=RETRY_AFTER_S,
            ) from None
        old = conflict.items.get("role") or {}
        if old.get("role") == store.LISTENER and old.get("sessionId") == session_id:
            log.info("listener refresh redelivered; already done")
            return
        raise _has_role(old.get("role")) from None
    log.info("listener moved to a new connection")


def _already_listener(reported: dict[str, Any] | None, connection_id: str, session_id: str) -> bool:
    """Whether this connection already is a listener of the session (a redelivery).

    Uses the record the cancelled transaction reported when it did, else reads it: one
    GetItem, only on the way to a SESSION_FULL answer.
    """
    record = reported if reported is not None else store.get_connection(connection_id) or {}
    return record.get("role") == store.LISTENER and record.get("sessionId") == session_id
