"""``joinSession``: a connection becomes a listener of an active session.

The listener count is taken atomically against ``maxListenersPerSession`` (ALL_NEW gives the
count this join produced); then the connection claims its one role. If it already had one,
the count is given back and the client told FORBIDDEN. The claim never creates a connection
record, so a join racing its own connection's ``$disconnect`` (a client that drops right after
sending) gives its place back in every ordering (see ``store.claim_role``).
"""

from __future__ import annotations

from typing import Any

from runtime import refresh_tokens, session_lookups, store
from runtime.config import config
from runtime.errors import ErrorCode, ServiceError
from runtime.invocation import Invocation, message_route
from runtime.languages import validate_target_language
from runtime.messages import SessionJoined
from runtime.metric_names import LISTENER_JOIN_LATENCY
from runtime.observability import logs
from runtime.observability.logs import log
from runtime.protocol import now_ms
from runtime.session_ids import require_session_id


def _count_listener(session_id: str) -> store.SessionItem:
    max_listeners = config().maxListenersPerSession
    try:
        return store.add_listener(session_id, max_listeners=max_listeners)
    except store.Conflict as failed:
        if failed.item is None or not failed.item.get("isActive"):
            raise ServiceError(
                ErrorCode.SESSION_NOT_FOUND,
                f"Session '{session_id}' does not exist or has ended; "
                "check the ID, or ask the speaker for the current one.",
                sessionId=session_id,
            ) from None
        raise ServiceError(
            ErrorCode.SESSION_FULL,
            f"Session '{session_id}' is full ({max_listeners} listeners); try again later.",
            sessionId=session_id,
            maxListeners=max_listeners,
        ) from None


def _claim_listener(inv: Invocation, session_id: str, target_language: str) -> None:
    try:
        store.claim_role(
            inv.connection_id,
            role=store.LISTENER,
            session_id=session_id,
            target_language=target_language,
            claimed_by=inv.request_id,
        )
    except store.Conflict as failed:
        if (failed.item or {}).get("claimedBy") == inv.request_id:
            # Our own write landed but its response was lost and botocore retried it: the
            # join happened; answering FORBIDDEN and giving the place back would undo it.
            return
        _give_back(inv, session_id)
        if failed.item is None:
            # The connection's $disconnect ran first: nobody will read this reply, and the
            # place is given back rather than left for the sweeper.
            log.info("connection closed during the join; its place was given back")
            raise ServiceError(
                ErrorCode.FORBIDDEN,
                "This connection is closed; open a new connection to join.",
                reason="connectionClosed",
            ) from None
        role = failed.item.get("role")
        raise ServiceError(
            ErrorCode.FORBIDDEN,
            f"This connection is already a {role or 'participant'}; "
            "open a new connection to join another session.",
            role=role,
        ) from None
    except Exception:
        _give_back(inv, session_id)
        raise


def _give_back(inv: Invocation, session_id: str) -> None:
    """Undo the count of a join that did not happen; a failure here only skews the count."""
    try:
        store.remove_listener(session_id)
    except Exception as error:
        inv.count_dependency_failure("listenerCountCompensation", error)


@message_route(latency=LISTENER_JOIN_LATENCY)
def handler(inv: Invocation, message: dict[str, Any]) -> SessionJoined:
    logs.set_invocation_fields(userContext={"ipHash": inv.ip_hash})
    session_id = require_session_id(message)
    target_language = validate_target_language(message.get("targetLanguage"))
    inv.identify(session_id=session_id)

    # The join limit and the failed-lookup budget, in the one conditional write.
    session_lookups.admit(inv, counts_as_join=True)
    try:
        session = _count_listener(session_id)
    except ServiceError as error:
        if error.code is ErrorCode.SESSION_NOT_FOUND:
            session_lookups.record_failure(inv)
        raise
    _claim_listener(inv, session_id, target_language)
    return SessionJoined(
        type="sessionJoined",
        sessionId=session_id,
        sourceLanguage=session.get("sourceLanguage"),
        targetLanguage=target_language,
        listenerCount=session.get("listenerCount"),
        refreshToken=refresh_tokens.issue(session_id, store.LISTENER, inv.connection_id),
        timestamp=now_ms(),
    )
