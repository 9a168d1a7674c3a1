"""``$disconnect``: forget the connection; a leaving listener frees its place, a leaving
speaker ends the session for everyone.

Idempotent under redelivery: deleting the record returns it only once, so a second delivery
finds nothing and changes nothing. A speaker's session ends only if this connection is still
its speaker (a refreshed speaker's old connection closing must not end it), and only the
delivery that ended it notifies the listeners.

Budget (metrics ride in the EMF log line): listener ≤ 2 calls (DeleteItem, UpdateItem); speaker
≤ 3 (DeleteItem, TransactWriteItems, Query) plus one BatchWriteItem per 25 listener records
(their roles released, before anyone is told) and one post per listener; listeners the push
found gone (410) add one BatchWriteItem per 25 (their records deleted).
``metricsTransport: api`` adds one PutMetricData to each.
"""

from __future__ import annotations

from runtime import lifecycle, store
from runtime.invocation import Invocation, connection_event
from runtime.metric_names import DISCONNECT_LATENCY
from runtime.observability.logs import log


@connection_event(latency=DISCONNECT_LATENCY)
def handler(inv: Invocation) -> None:
    record = store.delete_connection(inv.connection_id)
    if record is None:
        log.info("connection already removed; nothing to do")
        return
    inv.identify(session_id=record.get("sessionId"), user_id=record.get("userId"))
    released = lifecycle.release_connection(inv, record)
    if released.role is None:
        log.info("connection without a role closed")
    elif released.role == store.LISTENER:
        log.bind(details={"listenerCount": released.listener_count}).info("listener left")
    elif released.ended is None:
        log.info("session already ended or has another speaker; left as it is")
    else:
        told = released.ended.told
        details = {
            **told.result.counts(),
            "listeners": released.ended.listeners,
            "deleteCalls": told.write_calls,
        }
        log.bind(details=details).info("session ended by its speaker; listeners notified")
