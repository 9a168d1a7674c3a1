"""``refreshConnection``: move a speaker or a listener onto a new connection, same session.

API Gateway closes every WebSocket after two hours, so a session outlives its connections:
at ``connectionRefreshMinutes`` the client opens a new connection, sends ``refreshConnection``
on it with the ``refreshToken`` of the connection it replaces (``runtime.refresh_tokens``),
gets ``connectionRefreshComplete`` (with the new connection's token) and then closes the old
one.

- Speaker: the new connection carries the speaker's token (its record has ``userId``). One
  transaction moves ``speakerConnectionId`` from the replaced connection to the new one (only
  if the session is active, the user is its speaker and the replaced connection still is),
  extends the session's TTL, and gives the new connection the speaker role. The replaced
  connection is the one the ``refreshToken`` names; without a valid token, the speaker the
  session has now (one more GetItem), and only if no refresh moved it in the last
  ``UNPROVEN_SPEAKER_SETTLE_MS``. Of concurrent refreshes exactly one wins; the others get
  FORBIDDEN (``details.reason: speakerChanged``). The old
  connection's ``$disconnect`` then no longer matches the speaker and leaves the session be.
- Listener: one transaction counts the new connection, gives it the listener role and, with
  a valid ``refreshToken``, marks the connection it replaces (which must still be a listener
  of the session, not replaced before). The old connection still counts until its
  ``$disconnect``, so the count may pass ``maxListenersPerSession`` for that moment, but never
  by more than ``refresh_slack``. A refresh without that proof (no token, a token that does
  not verify, or one whose connection is gone or was replaced already) is held to the cap
  like a join: a connection that never joined cannot use refresh to get into a full session.

Budget: speaker 3 calls with a token (GetItem, the failed-lookup budget's GetItem,
TransactWriteItems), 4 without (the session's GetItem); listener 2 (the join limit's
UpdateItem, TransactWriteItems), plus one TransactWriteItems when a token's connection turns
out to be gone or replaced (the retry at the cap). EMF carries the metrics
(``metricsTransport: api`` adds one PutMetricData). A lookup that finds no session adds one
UpdateItem (``session_lookups.record_failure``).
Redelivery is idempotent: a connection that already holds the requested role in that
session is answered with success and nothing is counted twice.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, cast

from runtime import refresh_tokens, session_lookups, store
from runtime.config import config
from runtime.errors import ErrorCode, ServiceError
from runtime.invocation import Invocation, message_route
from runtime.languages import validate_target_language
from runtime.messages import ConnectionRefreshComplete
from runtime.observability import logs
from runtime.observability.logs import log
from runtime.protocol import now_ms
from runtime.session_ids import require_session_id

# In-flight listener refreshes allowed above the cap, as a share of it (at least one).
REFRESH_SLACK_RATIO = 0.1
# When the slack is used up, other listeners' old connections are closing within seconds.
RETRY_AFTER_S = 2
# A speaker refresh without a refreshToken replaces the session's current speaker only if no
# refresh moved it in this long: of a burst of unproven refreshes, one wins.
UNPROVEN_SPEAKER_SETTLE_MS = 60_000


def refresh_slack(max_listeners: int) -> int:
    """How far a session's count may exceed its cap while listeners swap connections."""
    return max(1, math.ceil(max_listeners * REFRESH_SLACK_RATIO))


@message_route()
def handler(inv: Invocation, message: dict[str, Any]) -> ConnectionRefreshComplete:
    logs.set_invocation_fields(userContext={"ipHash": inv.ip_hash})
    session_id = require_session_id(message)
    role = _role(message)
    # Validated before any AWS call, so a bad request costs nothing.
    target_language = (
        validate_target_language(message.get("targetLanguage")) if role == store.LISTENER else None
    )
    replaces = refresh_tokens.replaced_connection(
        message.get(refresh_tokens.FIELD), session_id, role
    )
    if replaces is None and message.get(refresh_tokens.FIELD) is not None:
        log.info("refresh token did not verify; the refresh has no proof")
    inv.identify(session_id=session_id)
    try:
        if role == store.SPEAKER:
            _refresh_speaker(inv, session_id, replaces)
        else:
            assert target_language is not None
            # A listener refresh is a join onto a new connection: it counts against the join
            # limit (and the failed-lookup budget) in the same conditional write.
            session_lookups.admit(inv, counts_as_join=True)
            _refresh_listener(inv, session_id, target_language, replaces)
    except ServiceError as error:
        if error.code is ErrorCode.SESSION_NOT_FOUND:
            session_lookups.record_failure(inv)
        raise
    return ConnectionRefreshComplete(
        type="connectionRefreshComplete",
        sessionId=session_id,
        role=role,
        refreshToken=refresh_tokens.issue(session_id, role, inv.connection_id),
        timestamp=now_ms(),
    )


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


def _refresh_speaker(inv: Invocation, session_id: str, replaces: str | None) -> None:
    record = store.get_connection(inv.connection_id) or {}
    user_id = record.get("userId")
    if not user_id:
        raise ServiceError(
            ErrorCode.UNAUTHORIZED,
            "Refreshing as the speaker needs a verified token: "
            "open the new connection with ?token=<ID token>.",
        )
    inv.identify(user_id=user_id)
    session_lookups.admit(inv, counts_as_join=False)
    if record.get("role"):
        # Redelivery, or a connection that already has another role: no write needed.
        _already_speaker(inv, session_id, record)
        return
    swapped_before = None
    if replaces is None:
        # No proof of which connection this one replaces: the speaker the session has now,
        # unless a refresh moved it moments ago (a concurrent refresh that won).
        swapped_before = now_ms() - UNPROVEN_SPEAKER_SETTLE_MS
        session = store.get_session(session_id)
        refused = _speaker_refused(inv, session_id, session, user_id)
        if refused is not None:
            raise refused
        assert session is not None
        replaces = session.get("speakerConnectionId") or ""
    try:
        store.swap_speaker(
            session_id,
            user_id=user_id,
            replaces=replaces,
            connection_id=inv.connection_id,
            now_ms=now_ms(),
            expires_at=store.ttl_from_now(),
            swapped_before=swapped_before,
        )
    except store.Conflict as conflict:
        if "session" in conflict.items:
            refused = _speaker_refused(inv, session_id, conflict.items["session"], user_id)
            raise refused or _speaker_changed(session_id) from None
        # A concurrent request on this connection took a role between our read and write.
        _already_speaker(
            inv, session_id, cast("store.ConnectionItem", conflict.items.get("role") or {})
        )
        return
    log.info("speaker moved to a new connection")


def _speaker_refused(
    inv: Invocation, session_id: str, session: Mapping[str, Any] | None, user_id: str
) -> ServiceError | None:
    """Why ``user_id`` may not refresh as the session's speaker at all (None: it may)."""
    if not session or not session.get("isActive"):
        return _not_found(session_id)
    if session.get("speakerUserId") != user_id:
        # "Not yours" tells a guesser the session exists: a failed lookup too.
        session_lookups.record_failure(inv)
        return ServiceError(
            ErrorCode.FORBIDDEN,
            f"Only the speaker who created session '{session_id}' can refresh as its speaker; "
            "connect with that speaker's token.",
            sessionId=session_id,
        )
    return None


def _speaker_changed(session_id: str) -> ServiceError:
    """The connection this refresh replaces is no longer the speaker: another refresh won."""
    return ServiceError(
        ErrorCode.FORBIDDEN,
        f"The connection this refresh replaces is no longer the speaker of session "
        f"'{session_id}': another refresh took over first. Close this connection and keep "
        "using the one that won, or send the 'refreshToken' of the current speaker's connection.",
        sessionId=session_id,
        reason="speakerChanged",
    )


def _already_speaker(inv: Invocation, session_id: str, record: store.ConnectionItem) -> None:
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


def _refresh_listener(
    inv: Invocation, session_id: str, target_language: str, replaces: str | None
) -> None:
    cap = config().maxListenersPerSession
    try:
        store.add_refreshed_listener(
            session_id,
            connection_id=inv.connection_id,
            target_language=target_language,
            # With proof, the replaced connection still counts until it leaves: the slack.
            max_listeners=cap + refresh_slack(cap) if replaces else cap,
            now_ms=now_ms(),
            connected_at_ms=inv.connected_at_ms or now_ms(),
            replaces=replaces,
        )
    except store.Conflict as conflict:
        items = conflict.items
        if "role" in items and _is_listener_of(items["role"], session_id):
            # A repeat of a refresh that happened (maybe the one that took the last place).
            log.info("listener refresh redelivered; already done")
            return
        if "replaced" in items and "role" not in items:
            # The token's connection is gone or was replaced already: no proof after all.
            log.info("refresh token's connection is no longer a listener; held to the cap")
            _refresh_listener(inv, session_id, target_language, None)
            return
        if "session" in items:
            session = items["session"]
            if not session or not session.get("isActive"):
                raise _not_found(session_id) from None
            if "role" not in items and _already_listener(inv.connection_id, session_id):
                log.info("listener refresh redelivered; already done")
                return
            raise _full(session_id, cap, proven=replaces is not None) from None
        raise _has_role((items.get("role") or {}).get("role")) from None
    log.info("listener moved to a new connection")


def _full(session_id: str, cap: int, *, proven: bool) -> ServiceError:
    if proven:
        return ServiceError(
            ErrorCode.SESSION_FULL,
            f"Session '{session_id}' has too many listeners changing connections right now; "
            f"keep the current connection and retry in {RETRY_AFTER_S} s.",
            sessionId=session_id,
            maxListeners=cap,
            retryAfter=RETRY_AFTER_S,
        )
    return ServiceError(
        ErrorCode.SESSION_FULL,
        f"Session '{session_id}' is full ({cap} listeners). A refresh without the "
        f"'{refresh_tokens.FIELD}' of a connection it replaces counts like a join; send the "
        "token the service gave that connection, or try again later.",
        sessionId=session_id,
        maxListeners=cap,
    )


def _is_listener_of(record: Mapping[str, Any] | None, session_id: str) -> bool:
    record = record or {}
    return record.get("role") == store.LISTENER and record.get("sessionId") == session_id


def _already_listener(connection_id: str, session_id: str) -> bool:
    """Whether this connection already is a listener of the session (a redelivery), when the
    cancelled transaction did not report its record: one GetItem, only on the way to a
    SESSION_FULL answer."""
    return _is_listener_of(store.get_connection(connection_id), session_id)
