"""Limits and counts under real concurrency: many handler invocations at once against a
thread-safe moto server (``aws_server``), as concurrent Lambda invocations would run them.

Capacity limits must hold exactly (conditional writes, never check-then-act), and storms of
disconnects — duplicates included — must leave the counts exact.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from runtime import aws as runtime_aws
from runtime import refresh_tokens, store
from runtime.config import config
from runtime.handlers import disconnect, refresh_connection
from tests.runtime.helpers_lifecycle import set_env
from tests.support.lambda_events import LambdaContext, disconnect_event, message_event, reply

# Timing is not under test here: see the ``unhurried`` fixture.
pytestmark = pytest.mark.usefixtures("unhurried")

WORKERS = 32
TIMEOUT_S = 120


def concurrently(fn: Callable[[Any], Any], items: Iterable[Any]) -> list[Any]:
    """``fn`` over ``items`` on a bounded pool; results in order; fails on any timeout."""
    with ThreadPoolExecutor(max_workers=WORKERS) as pool:
        futures = [pool.submit(fn, item) for item in items]
        return [future.result(timeout=TIMEOUT_S) for future in futures]


def leave(connection_id: str) -> dict:
    return disconnect.handler(disconnect_event(connection_id), LambdaContext())


def kinds(replies: list[dict]) -> Counter:
    return Counter(r["code"] if r["type"] == "error" else r["type"] for r in replies)


def test_200_concurrent_joins_fill_a_session_to_exactly_its_cap_then_drain_to_zero(
    aws_server, service, connections, monkeypatch
) -> None:
    set_env(monkeypatch, MAX_LISTENERS_PER_SESSION=150)
    _, session_id = service.start_session()
    listeners = concurrently(lambda _: service.connect(), range(200))

    replies = concurrently(lambda cid: service.join(cid, session_id), listeners)

    assert kinds(replies) == {"sessionJoined": 150, "SESSION_FULL": 50}
    counts = sorted(r["listenerCount"] for r in replies if r["type"] == "sessionJoined")
    assert counts == list(range(1, 151))  # every join saw its own, unique count
    assert store.get_session(session_id)["listenerCount"] == 150
    assert len(list(store.listener_connections(session_id))) == 150

    # Disconnect storm: every connection, joined or refused, leaves at once.
    assert all(r == {"statusCode": 200} for r in concurrently(leave, listeners))

    session = store.get_session(session_id)
    assert session["listenerCount"] == 0
    assert session["isActive"] is True
    assert list(store.listener_connections(session_id)) == []
    assert all(store.get_connection(cid) is None for cid in listeners)


def test_duplicate_disconnects_delivered_concurrently_count_once(
    aws_server, service, connections
) -> None:
    _, session_id = service.start_session()
    stay = service.listener(session_id)
    leaving = concurrently(lambda _: service.listener(session_id), range(20))
    assert store.get_session(session_id)["listenerCount"] == 21

    # Each listener's $disconnect delivered three times, all at once.
    concurrently(leave, [cid for cid in leaving for _ in range(3)])

    assert store.get_session(session_id)["listenerCount"] == 1
    assert store.get_connection(stay)["role"] == "listener"


def test_duplicate_speaker_disconnects_end_the_session_and_notify_once(
    aws_server, service, connections
) -> None:
    speaker, session_id = service.start_session()
    _, other = service.start_session()
    listeners = concurrently(lambda _: service.listener(session_id), range(30))

    concurrently(leave, [speaker] * 8)

    assert store.get_session(session_id)["isActive"] is False
    assert store.get_session(store.COUNTERS_KEY)["activeSessions"] == 1  # released once
    assert store.get_session(other)["isActive"] is True
    for cid in listeners:
        assert [m["type"] for m in connections.messages(cid)] == ["sessionEnded"]
    assert list(store.listener_connections(session_id)) == []


def test_concurrent_creates_never_exceed_max_active_sessions(
    aws_server, service, connections, monkeypatch
) -> None:
    set_env(monkeypatch, MAX_ACTIVE_SESSIONS=5)
    speakers = concurrently(lambda n: service.connect(user=f"speaker-{n}"), range(24))

    replies = concurrently(service.create, speakers)

    assert kinds(replies) == {"sessionCreated": 5, "SESSION_LIMIT_REACHED": 19}
    assert store.get_session(store.COUNTERS_KEY)["activeSessions"] == 5
    created = {r["sessionId"] for r in replies if r["type"] == "sessionCreated"}
    assert {s["sessionId"] for s in store.active_sessions()} == created

    # Slots freed by speakers leaving are taken again, still never beyond the limit.
    winners = [cid for cid, r in zip(speakers, replies, strict=True) if r["type"] != "error"]
    concurrently(leave, winners[:2])
    latecomers = concurrently(lambda n: service.connect(user=f"late-{n}"), range(6))
    again = concurrently(service.create, latecomers)
    assert kinds(again) == {"sessionCreated": 2, "SESSION_LIMIT_REACHED": 4}
    assert store.get_session(store.COUNTERS_KEY)["activeSessions"] == 5
    assert len(list(store.active_sessions())) == 5


def test_concurrent_creates_of_one_user_never_exceed_its_limit(
    aws_server, service, connections
) -> None:
    # maxActiveSessionsPerUser (default 5) is a condition inside the create transaction.
    speakers = concurrently(lambda _: service.connect(user="one-user"), range(16))

    replies = concurrently(service.create, speakers)

    assert kinds(replies) == {"sessionCreated": 5, "USER_SESSION_LIMIT_REACHED": 11}
    created = {r["sessionId"] for r in replies if r["type"] == "sessionCreated"}
    assert store.get_session(store.user_key("one-user"))["sessions"] == created
    assert store.get_session(store.COUNTERS_KEY)["activeSessions"] == 5


REFRESHERS = 7


def _speaker_refreshes(service, session_id: str, token: str | None) -> tuple[list[str], list]:
    """``REFRESHERS`` new connections of the session's speaker, refreshing all at once."""
    user = service.speakers[session_id]
    news = concurrently(lambda _: service.connect(user=user), range(REFRESHERS))

    def refresh(cid: str) -> dict:
        body = {"action": "refreshConnection", "sessionId": session_id, "role": "speaker"}
        if token is not None:
            body["refreshToken"] = token
        event = message_event(cid, body, ip=service.next_ip())
        return reply(refresh_connection.handler(event, LambdaContext()))

    return news, concurrently(refresh, news)


def _speaker_records(session_id: str) -> set[str]:
    ddb = runtime_aws.dynamodb()
    items = ddb.scan(TableName=config().connections_table, ConsistentRead=True)["Items"]
    return {
        i["connectionId"]["S"]
        for i in items
        if i.get("sessionId", {}).get("S") == session_id and i.get("role", {}).get("S") == "speaker"
    }


@pytest.mark.parametrize("with_token", [True, False], ids=["refreshToken", "no token"])
def test_concurrent_speaker_refreshes_have_exactly_one_winner(
    aws_server, service, connections, with_token
) -> None:
    # Issue 21.3: seven concurrent speaker refreshes each got connectionRefreshComplete and
    # three records held role=speaker; the demoted ones heard nothing for a minute.
    old, session_id = service.start_session()
    token = refresh_tokens.issue(session_id, "speaker", old) if with_token else None

    news, replies = _speaker_refreshes(service, session_id, token)

    assert kinds(replies) == {"connectionRefreshComplete": 1, "FORBIDDEN": REFRESHERS - 1}
    assert all(r["details"]["reason"] == "speakerChanged" for r in replies if r["type"] == "error")
    (winner,) = [cid for cid, r in zip(news, replies, strict=True) if r["type"] != "error"]
    session = store.get_session(session_id)
    assert (session["speakerConnectionId"], session["isActive"]) == (winner, True)
    # The old connection (about to be closed by its client) and the winner: nobody else.
    assert _speaker_records(session_id) == {old, winner}
    assert leave(old) == {"statusCode": 200}
    assert store.get_session(session_id)["isActive"] is True
