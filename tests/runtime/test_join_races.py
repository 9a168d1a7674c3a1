"""A join or refresh racing its own connection's ``$disconnect`` (a client that drops the TCP
connection right after sending) leaves no listener record and no counted place, in every
ordering and without the sweeper; and every record of a live connection carries its
liveness, so the sweeper never closes a connection that heartbeats (issue 9, items 1 and 3).
"""

from __future__ import annotations

import threading
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from botocore.exceptions import ReadTimeoutError

from runtime import aws as runtime_aws
from runtime import store
from runtime.handlers import disconnect, heartbeat, refresh_connection, sweeper
from tests.runtime.helpers_lifecycle import Service, heartbeat_event, set_env
from tests.support.lambda_events import LambdaContext, disconnect_event, message_event, reply


def leave(connection_id: str) -> dict:
    return disconnect.handler(disconnect_event(connection_id), LambdaContext())


def assert_no_trace(session_id: str, *connection_ids: str) -> None:
    assert store.get_session(session_id)["listenerCount"] == 0
    assert list(store.listener_connections(session_id)) == []
    assert store.count_listeners(session_id) == 0
    for cid in connection_ids:
        assert store.get_connection(cid) is None


def test_a_join_after_its_disconnect_gives_its_place_back(aws, service: Service) -> None:
    _, session_id = service.start_session()
    cid = service.connect()
    leave(cid)  # the $disconnect Lambda ran before the join's

    answer = service.join(cid, session_id)

    assert answer["code"] == "FORBIDDEN"
    assert answer["details"]["reason"] == "connectionClosed"
    assert_no_trace(session_id, cid)


def test_a_disconnect_between_the_joins_two_writes_leaves_nothing(
    aws, service: Service, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, session_id = service.start_session()
    cid = service.connect()
    counted = store.add_listener

    def count_then_disconnect(*args, **kwargs):
        item = counted(*args, **kwargs)
        assert leave(cid) == {"statusCode": 200}  # lands between the count and the claim
        return item

    monkeypatch.setattr(store, "add_listener", count_then_disconnect)
    answer = service.join(cid, session_id)

    assert answer["code"] == "FORBIDDEN"
    assert_no_trace(session_id, cid)


def test_a_disconnect_after_the_join_frees_the_place(aws, service: Service) -> None:
    _, session_id = service.start_session()
    cid = service.connect()
    assert service.join(cid, session_id)["type"] == "sessionJoined"
    leave(cid)
    assert_no_trace(session_id, cid)


def test_a_listener_refresh_after_its_disconnect_counts_nothing(aws, service: Service) -> None:
    _, session_id = service.start_session()
    cid = service.connect()
    leave(cid)
    body = {
        "action": "refreshConnection",
        "sessionId": session_id,
        "role": "listener",
        "targetLanguage": "es",
    }
    answer = reply(refresh_connection.handler(message_event(cid, body), LambdaContext()))
    assert answer["type"] == "error"
    assert_no_trace(session_id, cid)


def test_joins_racing_their_disconnects_concurrently_leave_no_count_and_no_record(
    aws_server, service: Service, unhurried: None
) -> None:
    """30 clients each send joinSession and drop at once: the join and the $disconnect run
    as concurrent Lambdas, in whatever order the threads fall.

    ``unhurried`` keeps an overloaded test machine out of the picture: a timed-out ``ADD``
    that botocore retries is applied twice (by design until the next sweep: the lost-response
    test), and a slow invocation's budget refuses its give-back; neither is the ordering
    under test.
    """
    _, session_id = service.start_session()
    clients = [service.connect() for _ in range(30)]
    start = threading.Barrier(len(clients) * 2)

    def join(cid: str) -> dict:
        start.wait()
        return service.join(cid, session_id)

    def drop(cid: str) -> dict:
        start.wait()
        return leave(cid)

    with ThreadPoolExecutor(max_workers=len(clients) * 2) as pool:
        futures = [pool.submit(fn, cid) for cid in clients for fn in (join, drop)]
        results = [f.result(timeout=120) for f in futures]

    assert all("statusCode" in r or r["type"] in ("sessionJoined", "error") for r in results)
    assert_no_trace(session_id, *clients)


def _lose_the_first_response(operation_marker: bytes) -> tuple[Callable[..., Any], list[int]]:
    """A ``before-send`` hook: the first request whose body holds ``operation_marker`` reaches
    the server and is applied, then its response is lost (a read timeout, as on an overloaded
    network); botocore retries it like any timeout."""
    lost: list[int] = []

    def hook(request: Any, **_kwargs: Any) -> None:
        body = request.body if isinstance(request.body, bytes) else (request.body or b"")
        if lost or operation_marker not in body:
            return None
        forwarded = urllib.request.Request(
            request.url, data=body, headers=dict(request.headers), method=request.method
        )
        urllib.request.urlopen(forwarded, timeout=30).read()  # applied on the server
        lost.append(1)
        raise ReadTimeoutError(endpoint_url=request.url)

    return hook, lost


def test_a_join_whose_count_response_is_lost_is_counted_twice_until_one_sweeper_pass(
    aws_server, service: Service, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The decision (docs/architecture.md, "Listener counts"): ``listenerCount`` is an ``ADD``,
    which is not idempotent, and botocore retries a write whose response was lost, so such a
    join is counted twice. The sweeper's reconciliation is the guarantee: until its next pass
    the phantom holds exactly one place (no real listener is refused by more than that one),
    and one pass sets the count back to the listener records.
    """
    set_env(monkeypatch, MAX_LISTENERS_PER_SESSION=3)
    _, session_id = service.start_session()
    cid = service.connect()
    hook, lost = _lose_the_first_response(b"ADD listenerCount :one")
    runtime_aws.dynamodb().meta.events.register_first("before-send", hook)

    answer = service.join(cid, session_id)

    assert lost == [1]  # the response was lost, and botocore retried the applied write
    assert answer["type"] == "sessionJoined"
    assert store.count_listeners(session_id) == 1
    assert store.get_session(session_id)["listenerCount"] == 2  # counted twice

    # Meanwhile the phantom costs one place, no more: of 3 places, 2 real listeners fit.
    second = service.listener(session_id)
    refused = service.join(service.connect(), session_id)
    assert (refused["type"], refused["code"]) == ("error", "SESSION_FULL"), refused
    assert store.count_listeners(session_id) == 2
    leave(second)  # its place is given back as usual: still one listener, counted twice
    assert store.get_session(session_id)["listenerCount"] == 2

    summary = sweeper.handler({"source": "aws.events"}, LambdaContext())

    assert summary["listenerCountsCorrected"] == 1
    assert store.get_session(session_id)["listenerCount"] == 1 == store.count_listeners(session_id)
    # All 3 places are real again.
    service.listener(session_id)
    service.listener(session_id)
    assert service.join(service.connect(), session_id)["code"] == "SESSION_FULL"
    assert store.get_session(session_id)["listenerCount"] == 3 == store.count_listeners(session_id)


# ---------------------------------------------------------------------------- item 3: liveness


def _rejoined_listener(service: Service) -> tuple[str, str]:
    """A listener whose session ended (speaker left) and who joined another on the same socket."""
    speaker, first = service.start_session()
    cid = service.listener(first)
    assert reply(heartbeat.handler(heartbeat_event(cid), LambdaContext()))["type"] == "heartbeatAck"
    leave(speaker)  # sessionEnded to the listener; its role is released
    _, second = service.start_session()
    assert service.join(cid, second)["type"] == "sessionJoined"
    return cid, second


def test_a_listener_keeps_its_liveness_after_rejoining_on_the_same_socket(
    aws, service: Service
) -> None:
    cid, second = _rejoined_listener(service)
    record = store.get_connection(cid)
    assert (record["role"], record["sessionId"]) == ("listener", second)
    assert isinstance(record.get("connectedAt"), int)
    assert isinstance(record.get("lastSeenAt"), int)
    assert store.get_session(second)["listenerCount"] == 1


def test_the_sweeper_leaves_a_rejoined_listener_that_heartbeats_alone(
    aws, service: Service, monkeypatch: pytest.MonkeyPatch
) -> None:
    """It heartbeated just before its session ended and rejoined at once: well within
    heartbeatTimeoutSeconds, so the sweeper must leave it be."""
    set_env(monkeypatch, HEARTBEAT_TIMEOUT_SECONDS=90)
    cid, second = _rejoined_listener(service)

    summary = sweeper.handler({}, LambdaContext())

    assert summary["closed"] == 0 and summary["gone"] == 0
    assert cid not in service.connections.deletes
    assert store.get_connection(cid)["role"] == "listener"
    assert store.get_session(second)["listenerCount"] == 1


def test_a_refreshed_listener_record_carries_its_liveness(aws, service: Service) -> None:
    _, session_id = service.start_session()
    service.listener(session_id)
    new = service.refresh(session_id, "listener", "es")
    record = store.get_connection(new)
    assert isinstance(record.get("connectedAt"), int)
    assert isinstance(record.get("lastSeenAt"), int)
