"""The Connections index projects only what its readers need, so a heartbeat writes one unit.

A heartbeat updates ``lastSeenAt`` and its minute's counter on a listener's record, which is
in the ``sessionId-targetLanguage-index``; an index that projected those attributes (ALL,
as it once did) would be written by every heartbeat too: two write units instead of one.
"""

from __future__ import annotations

import dataclasses

from bench.call_counter import CallCounter
from bench.index_writes import index_writes, written_attributes
from runtime import aws, store
from runtime.handlers import heartbeat
from runtime.tables import CONNECTIONS, LISTENERS_INDEX, TABLES
from tests.runtime.helpers_lifecycle import heartbeat_event
from tests.support.lambda_events import LambdaContext

ALL_PROJECTED = tuple(
    dataclasses.replace(t, indexes=tuple(dataclasses.replace(i, projected=()) for i in t.indexes))
    for t in TABLES
)


def _heartbeat_requests(connection_id: str) -> list[tuple[str, dict]]:
    with CallCounter([aws.dynamodb()], default_session=False) as calls:
        heartbeat.handler(heartbeat_event(connection_id), LambdaContext())
    return calls.requests()


def test_a_heartbeat_writes_no_attribute_the_listener_index_holds(aws, service) -> None:
    _, session_id = service.start_session()
    listener = service.listener(session_id)
    ((api, params),) = _heartbeat_requests(listener)
    assert api == "dynamodb:UpdateItem"
    written = written_attributes(params["UpdateExpression"], params["ExpressionAttributeNames"])
    assert "lastSeenAt" in written
    assert not [a for a in written if LISTENERS_INDEX.projects(a, CONNECTIONS.hash_key)]
    # One write unit (the table); with the index projecting ALL it would be two.
    assert index_writes(api, params) == 0
    assert index_writes(api, params, ALL_PROJECTED) == 1


def test_the_index_holds_what_its_queries_read(aws, service) -> None:
    _, session_id = service.start_session()
    listeners = {service.listener(session_id, lang) for lang in ("es", "fr")}
    records = list(store.listener_connections(session_id))
    assert {r["connectionId"] for r in records} == listeners
    # Keys, the table key and role: what listener_connections, count_listeners, the local
    # console and bench/load.py read. Nothing a heartbeat writes.
    assert {frozenset(r) for r in records} == {
        frozenset({"connectionId", "sessionId", "targetLanguage", "role"})
    }
    assert store.count_listeners(session_id) == 2
    whole = store.whole_records(records, session_id=session_id)
    assert {"connectedAt", "lastSeenAt", "ipHash", "ttl"} <= set(whole[0])


def test_whole_records_leaves_out_listeners_that_left_or_moved_on(aws, service) -> None:
    _, session_id = service.start_session()
    stays, leaves = service.listener(session_id), service.listener(session_id)
    seen = list(store.listener_connections(session_id))
    store.delete_connection(leaves)
    assert [r["connectionId"] for r in store.whole_records(seen, session_id=session_id)] == [stays]
