"""``$disconnect``: forget the connection; a leaving listener frees its place, a leaving
speaker ends the session for everyone.

Idempotent under redelivery: deleting the record returns it only once, so a second delivery
finds nothing and changes nothing. A speaker's session ends only if this connection is still
its speaker (a refreshed speaker's old connection closing must not end it), and only the
delivery that ended it notifies the listeners.

Budget (metrics ride in the EMF log line): listener ≤ 2 calls (DeleteItem, UpdateItem); speaker
≤ 3 (DeleteItem, TransactWriteItems, Query) plus one post per listener and one BatchWriteItem
per 25 listener records (their roles released). ``metricsTransport: api`` adds one
PutMetricData to each.
"""

from __future__ import annotations

from runtime import fanout, store
from runtime.invocation import Invocation, connection_event
from runtime.metric_names import DEPENDENCY_FAILURES, DISCONNECT_LATENCY
from runtime.observability.logs import log
from runtime.protocol import server_message

SPEAKER_DISCONNECTED = "speakerDisconnected"


@connection_event(latency=DISCONNECT_LATENCY)
def handler(inv: Invocation) -> None:
    record = store.delete_connection(inv.connection_id)
    if record is None:
        log.info("connection already removed; nothing to do")
        return
    session_id = record.get("sessionId")
    role = record.get("role")
    inv.bind(session_id=session_id, user_id=record.get("userId"))
    if not session_id or role not in store.ROLES:
        log.info("connection without a role closed")
        return
    if role == store.LISTENER:
        count = store.remove_listener(session_id)
        log.bind(details={"listenerCount": count}).info("listener left")
        return
    _end_session(inv, session_id)


def _end_session(inv: Invocation, session_id: str) -> None:
    if not store.end_session(
        session_id, speaker_connection_id=inv.connection_id, reason=SPEAKER_DISCONNECTED
    ):
        log.info("session already ended or has another speaker; left as it is")
        return
    records = list(store.listener_connections(session_id))
    listeners = [r["connectionId"] for r in records]
    result = fanout.fan_out(
        listeners,
        server_message("sessionEnded", sessionId=session_id, reason=SPEAKER_DISCONNECTED),
    )
    if result.failed:
        # Visible as a degradation; their roles go too, since the session is over either way.
        inv.metrics.add(DEPENDENCY_FAILURES, 1, Operation="sessionEndedFanOut")
    # The listeners' sockets stay open and may join another session: they lose the role, not
    # the record (and its liveness), so a rejoin can claim a role and the sweeper sees them;
    # the records of those already gone (410) are deleted.
    batches = store.release_roles(records, gone=set(result.gone))
    log.bind(details={**result.counts(), "listeners": len(listeners), "deleteCalls": batches}).info(
        "session ended by its speaker; listeners notified"
    )
