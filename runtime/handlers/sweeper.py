"""``sweeper`` (every minute): close silent connections, end dead sessions, repair counts.

Each pass, in this order:

1. Connections silent for more than ``heartbeatTimeoutSeconds`` (``lastSeenAt``) are closed
   through @connections; their ``$disconnect`` then cleans up as usual. One already gone
   (410) gets no ``$disconnect``, so its record is cleaned here exactly as ``$disconnect``
   would (a listener frees its place, a speaker ends its session and tells the listeners).
2. Every active session (sparse index) whose ``expiresAt`` has passed, or whose speaker
   record has been missing for ``MISSING_SPEAKER_GRACE_MS``, is ended with reason
   ``expired``; its listeners (and a still connected speaker) get ``sessionEnded`` and the
   listeners lose their role. A missing speaker is first only noted on the session: its
   ``$disconnect`` deletes the record before it ends the session, and one still under way
   must end it itself (``speakerDisconnected``). The end is conditional on the speaker the
   pass saw, so a speaker that refreshed onto a new connection meanwhile is left alone.
3. Counts are reconciled with the records, so a crash between two writes cannot leave a
   wrong count for longer than a sweep: each active session's ``listenerCount`` against its
   listener records (GSI query, ``Select=COUNT``) and the active-sessions counter against
   the active sessions. A difference is confirmed after a short pause (a join is two
   writes, and GSIs lag by a moment) and corrected with a conditional write that loses to
   any concurrent change; what it loses to is looked at again next minute.
4. Orphans are told and removed: a connection record holding a role in a session that has
   ended (its speaker's ``$disconnect`` failed before telling the listeners, or a join's
   role claim landed just after that ``$disconnect`` read the listener list). Such a
   listener heartbeats, so step 1 never closes it, and nobody else would ever tell it. The
   Scan of step 1 already returned every role-holding record; one whose session is not in
   the active-sessions index is checked with a consistent read of its session (an index
   lags, a session may have just been created) and is an orphan only if the session is
   gone, or ended more than ``ORPHAN_GRACE_MS`` ago (its ``$disconnect`` may still be
   telling the listeners). Orphans get ``sessionEnded`` (the session's ``endReason``, else
   ``expired``) — except a speaker record that is its ended session's speaker, which was
   told when the sweeper ended the session — and lose their role (their records, with
   their liveness, stay: the sockets are open and may join another session).

Cost is proportional to live state: one Scan of the Connections table (which holds only
live connections), one query of the active-sessions index (≤ maxActiveSessions items), one
BatchGetItem per 100 sessions, one COUNT query per active session; writes only for what is
wrong (a session whose speaker is missing: one conditional UpdateItem a pass until it ends).
Orphans add one BatchGetItem per 100 of their sessions, their posts and one BatchWriteItem
per 25 records; with no orphan, nothing. A failure on one item is counted as
a degradation and the pass goes on; a failure of the pass itself (the index unreadable)
raises, so Lambda's Errors metric and alarm see it.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from runtime import clock, fanout, lifecycle, store
from runtime.config import config
from runtime.invocation import Invocation, scheduled_job
from runtime.messages import EXPIRED
from runtime.metric_names import DEPENDENCY_FAILURES
from runtime.observability.logs import log
from runtime.protocol import now_ms

# Pause before confirming a count difference: long enough for a join's second write and
# GSI propagation, short enough to correct within the same pass.
DRIFT_RECHECK_S = 1.0
# How long after a session ended its leftover records count as orphans: longer than a
# $disconnect (10 s timeout) that is still telling the listeners.
ORPHAN_GRACE_MS = 30_000
# How long a session's speaker record must have been missing before the sweeper ends the
# session: the same bound, for a $disconnect between deleting the record and ending it.
MISSING_SPEAKER_GRACE_MS = ORPHAN_GRACE_MS
# Stop starting new work when less than this is left of the function's time.
TIME_MARGIN_MS = 5_000
_DEFAULT_REMAINING_MS = 60_000


@dataclass
class _Drift:
    session_id: str
    seen: int | None
    records: int


@dataclass
class Sweep:
    inv: Invocation
    counts: Counter[str] = field(default_factory=Counter)
    truncated: bool = False
    # Records of the Scan that hold a role and are not silent: the orphan candidates.
    role_holders: list[store.ConnectionItem] = field(default_factory=list)
    # Sessions this pass ended (it told their listeners itself).
    ended_here: set[str] = field(default_factory=set)

    # --- time and failures -----------------------------------------------------------------------

    def out_of_time(self) -> bool:
        remaining = getattr(self.inv.context, "get_remaining_time_in_millis", None)
        left = remaining() if callable(remaining) else _DEFAULT_REMAINING_MS
        if left < TIME_MARGIN_MS:
            self.truncated = True
        return self.truncated

    def degraded(self, step: str, error: BaseException) -> None:
        """One item failed; the pass goes on. Logged by code only: @connections error texts
        can embed the URL, i.e. a raw connection ID."""
        self.counts["failures"] += 1
        log.bind(errorMessage=fanout.describe(error), details={"step": step}).warning(
            f"sweeper step {step} failed; continuing"
        )
        self.inv.metrics.add(DEPENDENCY_FAILURES, 1, Operation=f"sweeper.{step}")

    # --- 1. silent connections -------------------------------------------------------------------

    def close_silent_connections(self) -> None:
        cutoff = now_ms() - config().heartbeatTimeoutSeconds * 1000
        for record in store.sweep_connections(cutoff):
            if not store.is_silent(record, cutoff):
                if record.get("sessionId") and record.get("role") in store.ROLES:
                    self.role_holders.append(record)
                continue
            if self.out_of_time():
                return
            try:
                if fanout.close(record["connectionId"]):
                    self.counts["closed"] += 1  # its $disconnect cleans up
                else:
                    self.counts["gone"] += 1
                    self.clean_gone(record["connectionId"])
            except Exception as error:
                self.degraded("closeConnection", error)

    def clean_gone(self, connection_id: str) -> None:
        """What ``$disconnect`` would have done for a connection that will never send one."""
        record = store.delete_connection(connection_id)
        if record is None:
            return  # its $disconnect got there first
        session_id = record.get("sessionId") or ""
        released = lifecycle.release_connection(
            self.inv, record, on_ended=lambda: self.mark_ended(session_id)
        )
        if released.ended is not None:
            self.counts["notified"] += len(released.ended.told.result.delivered)

    # --- 2. dead sessions ------------------------------------------------------------------------

    def end_session(self, session: store.SessionItem, speaker_present: bool) -> bool:
        """End a session whose speaker is gone or whose time is up; False if it was not ours
        to end (ended meanwhile, or its speaker refreshed onto a new connection)."""
        session_id = session["sessionId"]

        def ended_here() -> None:
            self.mark_ended(session_id)
            log.bind(
                sessionId=session_id,
                details={"speakerPresent": speaker_present, "expiresAt": session.get("expiresAt")},
            ).info("session ended by the sweeper")

        # The speaker condition makes a concurrent refresh (new speaker, new TTL) win.
        # The index does not project the speaker's user: one read, only for a session to end.
        user_id = (store.get_session(session_id) or {}).get("speakerUserId")
        ended = lifecycle.end_session(
            self.inv,
            session_id,
            EXPIRED,
            speaker_connection_id=session.get("speakerConnectionId"),
            user_id=user_id,
            tell_speaker=speaker_present,
            on_ended=ended_here,
        )
        if ended is None:
            return False
        self.counts["notified"] += len(ended.told.result.delivered)
        return True

    def mark_ended(self, session_id: str) -> None:
        """This pass ended the session (and tells its listeners itself)."""
        self.counts["sessionsEnded"] += 1
        self.ended_here.add(session_id)

    def speaker_long_gone(self, session: store.SessionItem) -> bool:
        """Whether the session's speaker record has been missing for the grace: noted on the
        session by the first pass that finds it missing, ended by a pass after the grace."""
        speaker = session.get("speakerConnectionId")
        if not speaker:
            return True  # no speaker connection at all: no $disconnect can be under way
        now = now_ms()
        since = store.note_missing_speaker(
            session["sessionId"], speaker_connection_id=speaker, now_ms=now
        )
        if since is None:
            return False  # ended or refreshed meanwhile
        self.counts["speakersMissing"] += 1
        return now - since >= MISSING_SPEAKER_GRACE_MS

    # --- 3. counts -------------------------------------------------------------------------------

    def check_listener_count(self, session: store.SessionItem) -> _Drift | None:
        records = store.count_listeners(session["sessionId"])
        seen = session.get("listenerCount")
        return None if seen == records else _Drift(session["sessionId"], seen, records)

    def confirm_listener_count(self, drift: _Drift) -> None:
        current = store.get_session(drift.session_id)
        if not current or not current.get("isActive"):
            return
        seen = current.get("listenerCount")
        records = store.count_listeners(drift.session_id)
        if seen == records or records != drift.records:
            return  # settled, or still moving: look again next minute
        if store.set_listener_count(drift.session_id, seen=seen, actual=records):
            self.counts["listenerCountsCorrected"] += 1
            log.bind(
                sessionId=drift.session_id, details={"listenerCount": seen, "records": records}
            ).warning("listenerCount drifted from the listener records; corrected")

    def confirm_active_counter(self, first_active: int, ended: set[str]) -> None:
        counter = store.get_session(store.COUNTERS_KEY)
        seen = counter.get("activeSessions") if counter else None
        active = sum(1 for s in store.active_sessions() if _is_active(s, ended))
        if (seen or 0) == active or active != first_active:
            return
        if store.set_active_sessions(seen=seen, actual=active):
            self.counts["activeCounterCorrected"] += 1
            log.bind(details={"activeSessions": seen, "sessions": active}).warning(
                "active-sessions counter drifted from the active sessions; corrected"
            )

    # --- 4. orphans ------------------------------------------------------------------------------

    def end_orphans(self, active: set[str]) -> None:
        """Tell and remove the role holders of sessions that ended without telling them."""
        candidates = [
            r
            for r in self.role_holders
            if r["sessionId"] not in active and r["sessionId"] not in self.ended_here
        ]
        if not candidates or self.out_of_time():
            return
        try:
            sessions = store.sessions_by_id(r["sessionId"] for r in candidates)
        except Exception as error:
            self.degraded("orphans", error)
            return
        now = now_ms()
        orphans: dict[str, list[store.ConnectionItem]] = {}
        for record in candidates:
            session = sessions.get(record["sessionId"])
            if session and session.get("isActive"):
                continue  # created or joined just now: the index had not caught up
            if session and now - int(session.get("endedAt") or 0) < ORPHAN_GRACE_MS:
                continue  # its $disconnect may still be telling them: next minute
            orphans.setdefault(record["sessionId"], []).append(record)
        for session_id, records in orphans.items():
            if self.out_of_time():
                return
            try:
                self.end_orphans_of(session_id, records, sessions.get(session_id))
            except Exception as error:
                self.degraded("orphans", error)

    def end_orphans_of(
        self,
        session_id: str,
        records: list[store.ConnectionItem],
        session: store.SessionItem | None,
    ) -> None:
        reason = (session or {}).get("endReason") or EXPIRED
        told_already = (session or {}).get("speakerConnectionId")
        # The ended session's own speaker got sessionEnded when the sweeper ended it (the
        # only way a session ends with its speaker's record left): remove, do not repeat.
        ids = [r["connectionId"] for r in records]
        # They heartbeat, so their sockets are open: take the role, keep the record (unless
        # the push found them gone).
        told = lifecycle.tell_and_release(
            self.inv,
            session_id,
            reason,
            recipients=[cid for cid in ids if cid != told_already],
            records=records,
        )
        self.counts["notified"] += len(told.result.delivered)
        self.counts["orphans"] += len(ids)
        log.bind(
            sessionId=session_id,
            details={"orphans": len(ids), "reason": reason, **told.result.counts()},
        ).info("orphaned connections of an ended session told and removed")

    # --- the pass --------------------------------------------------------------------------------

    def run(self) -> dict[str, Any]:
        self.close_silent_connections()
        counter = store.get_session(store.COUNTERS_KEY)
        counter_seen = (counter or {}).get("activeSessions")
        sessions = [s for s in store.active_sessions() if _is_active(s, set())]
        speakers = store.existing_connections(
            [s["speakerConnectionId"] for s in sessions if s.get("speakerConnectionId")]
        )
        now_s = int(clock.now())
        ended: set[str] = set()
        drifts: list[_Drift] = []
        for session in sessions:
            if self.out_of_time():
                break
            self.counts["sessionsChecked"] += 1
            try:
                present = session.get("speakerConnectionId") in speakers
                expired = int(session.get("expiresAt") or now_s + 1) <= now_s
                if expired or not present:
                    if (expired or self.speaker_long_gone(session)) and self.end_session(
                        session, present
                    ):
                        ended.add(session["sessionId"])
                    continue
                drift = self.check_listener_count(session)
                if drift:
                    drifts.append(drift)
            except Exception as error:
                self.degraded("session", error)
        counter_drift = (counter_seen or 0) != len(sessions)
        if (drifts or counter_drift) and not self.out_of_time():
            time.sleep(DRIFT_RECHECK_S)
            for drift in drifts:
                try:
                    self.confirm_listener_count(drift)
                except Exception as error:
                    self.degraded("listenerCount", error)
            if counter_drift and not self.truncated:
                try:
                    self.confirm_active_counter(len(sessions) - len(ended), ended)
                except Exception as error:
                    self.degraded("activeCounter", error)
        self.end_orphans({s["sessionId"] for s in sessions})
        return {
            "activeSessions": len(sessions) - len(ended),
            "truncated": self.truncated,
            **{k: self.counts.get(k, 0) for k in _SUMMARY},
        }


_SUMMARY = (
    "closed",
    "gone",
    "sessionsChecked",
    "speakersMissing",
    "sessionsEnded",
    "notified",
    "listenerCountsCorrected",
    "activeCounterCorrected",
    "orphans",
    "failures",
)


def _is_active(session: store.SessionItem, ended: set[str]) -> bool:
    # The index entry of a session that just ended may linger for a moment.
    return session.get("isActive") is not False and session["sessionId"] not in ended


@scheduled_job()
def handler(inv: Invocation) -> dict[str, Any]:
    return Sweep(inv).run()
