"""Ending a session and releasing a connection, written once.

``$disconnect`` and the sweeper both end sessions (a speaker leaving, a session expiring or
orphaned) and release connections (a client closing, or one the sweeper found gone); the
steps — end the session, tell the listeners ``sessionEnded``, take their role, count a
failed fan-out as a degradation — are these functions. Callers log what happened from the
returned outcome.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from runtime import fanout, store
from runtime.messages import SPEAKER_DISCONNECTED, session_ended
from runtime.metric_names import DEPENDENCY_FAILURES

if TYPE_CHECKING:
    from runtime.invocation import Invocation

# The DependencyFailures Operation of a sessionEnded fan-out that failed for some recipients.
FAN_OUT_OPERATION = "sessionEndedFanOut"


@dataclass(frozen=True)
class Told:
    """What telling a session's connections that it ended did."""

    result: fanout.FanOutResult
    released: int  # connection records that lost their role
    write_calls: int  # BatchWriteItem calls that took


@dataclass(frozen=True)
class SessionEnd:
    """A session this call ended: its listeners, told and released."""

    listeners: int
    told: Told


@dataclass(frozen=True)
class Release:
    """What releasing a closed connection did, by its role."""

    role: str | None
    session_id: str | None
    # A listener: the session's listener count after it left (None: none was counted).
    listener_count: int | None = None
    # A speaker: the session it ended; None if it had ended already or has another speaker.
    ended: SessionEnd | None = None


def tell_and_release(
    inv: Invocation,
    session_id: str,
    reason: str,
    *,
    recipients: Sequence[str],
    records: Sequence[store.ConnectionItem],
) -> Told:
    """Take their role from the connection ``records`` of the ended session, then push
    ``sessionEnded`` to ``recipients`` (concurrently).

    The role goes first: a client that answers ``sessionEnded`` with a ``joinSession`` on the
    same socket (the README allows it) must find its connection free, not still a listener of
    the ended session. Gone or not, they lose the role: the session is over either way. Their
    records (and liveness) stay, since the sockets are open and may join another session; the
    records of connections the push found gone (410) are deleted afterwards. A failed push is
    a degradation (DependencyFailures), never retried forever.
    """
    calls = store.release_roles(list(records))
    result = fanout.fan_out(list(recipients), session_ended(session_id, reason))
    if result.failed:
        inv.metrics.add(DEPENDENCY_FAILURES, 1, Operation=FAN_OUT_OPERATION)
    released = {record["connectionId"] for record in records}
    gone = [cid for cid in result.gone if cid in released]
    if gone:
        calls += store.delete_connections(gone)
    return Told(result, released=len(records), write_calls=calls)


def end_session(
    inv: Invocation,
    session_id: str,
    reason: str,
    *,
    speaker_connection_id: str | None,
    user_id: str | None = None,
    tell_speaker: bool = False,
    on_ended: Callable[[], None] | None = None,
) -> SessionEnd | None:
    """End a session, tell its listeners (and its speaker with ``tell_speaker``), remove them.

    With ``speaker_connection_id`` it ends only if that connection is still the speaker, so a
    concurrent refresh wins; with ``user_id`` (its speaker) the session also leaves the user's
    set of active sessions (maxActiveSessionsPerUser). None when it was not this call's to
    end (ended already, or another speaker): then nobody is told twice. ``on_ended`` runs
    once the session is ended, before anyone is told (so it counts even if telling fails).
    """
    if not store.end_session(
        session_id, speaker_connection_id=speaker_connection_id, reason=reason, user_id=user_id
    ):
        return None
    if on_ended is not None:
        on_ended()
    # The index holds keys and role only; releasing rewrites whole records, read by key.
    records = store.whole_records(store.listener_connections(session_id), session_id=session_id)
    listeners = [r["connectionId"] for r in records]
    speaker = [speaker_connection_id] if tell_speaker and speaker_connection_id else []
    told = tell_and_release(
        inv, session_id, reason, recipients=listeners + speaker, records=records
    )
    return SessionEnd(listeners=len(listeners), told=told)


def release_connection(
    inv: Invocation, record: store.ConnectionItem, on_ended: Callable[[], None] | None = None
) -> Release:
    """What a closed connection leaves behind, once its record is deleted: a listener frees
    its place; a speaker ends its session for everyone (``speakerDisconnected``)."""
    session_id, role = record.get("sessionId"), record.get("role")
    if not session_id or role not in store.ROLES:
        return Release(role=None, session_id=session_id)
    if role == store.LISTENER:
        count = store.remove_listener(session_id)
        return Release(role=role, session_id=session_id, listener_count=count)
    ended = end_session(
        inv,
        session_id,
        SPEAKER_DISCONNECTED,
        speaker_connection_id=record["connectionId"],
        user_id=record.get("userId"),
        on_ended=on_ended,
    )
    return Release(role=role, session_id=session_id, ended=ended)
