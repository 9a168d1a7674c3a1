"""Session IDs cannot be guessed: every route that looks up a session ID counts failed lookups
against a per-IP budget (``sessionLookupFailuresPerMinute``), and a listener refresh counts
against the join limit (issue 9, item 2). Lookups are counted as the DynamoDB calls that read
or write the Sessions table."""

from __future__ import annotations

import random

import pytest

from runtime import store
from runtime.handlers import join_session, refresh_connection
from runtime.session_ids import generate_session_id
from tests.runtime.helpers_entry import (
    Issuer,
    assert_error,
    aws_calls,
    listener,
    new_session,
    send,
    speaker,
)
from tests.runtime.helpers_lifecycle import set_env
from tests.support.clock import FrozenClock
from tests.support.runtime_env import STAGE

PREFIX = f"session-management-{STAGE}-"  # physical table names

BUDGET = 5
GUESSER_IP = "203.0.113.66"
# Every call that can tell whether a session exists.
LOOKUPS = {
    f"dynamodb.UpdateItem({PREFIX}Sessions)",
    f"dynamodb.GetItem({PREFIX}Sessions)",
    "dynamodb.TransactWriteItems",
}


def unknown_ids(n: int, live: set[str]) -> list[str]:
    rng = random.Random(9)
    ids: list[str] = []
    while len(ids) < n:
        candidate = generate_session_id(rng)
        if candidate not in live and candidate not in ids:
            ids.append(candidate)
    return ids


def lookups(names: list[str]) -> int:
    return sum(1 for name in names if name in LOOKUPS)


@pytest.fixture
def budget(monkeypatch: pytest.MonkeyPatch, frozen_clock: FrozenClock) -> int:
    # The join limit is far above the budget, so only the budget can stop the guesser.
    set_env(
        monkeypatch,
        SESSION_LOOKUP_FAILURES_PER_MINUTE=BUDGET,
        LISTENER_JOINS_PER_MINUTE=1000,
        CONNECTION_ATTEMPTS_PER_MINUTE=1000,
    )
    return BUDGET


def guess(cid: str, session_id: str, n: int) -> dict:
    if n % 2:
        body = {"action": "joinSession", "sessionId": session_id, "targetLanguage": "es"}
        return send(join_session.handler, cid, body, ip=GUESSER_IP)
    body = {
        "action": "refreshConnection",
        "sessionId": session_id,
        "role": "listener",
        "targetLanguage": "es",
    }
    return send(refresh_connection.handler, cid, body, ip=GUESSER_IP)


def test_100_guesses_from_one_ip_look_up_no_more_than_the_budget(
    issuer: Issuer, budget: int
) -> None:
    _, live = new_session(issuer)
    guesser = listener(ip=GUESSER_IP)
    guesses = [*unknown_ids(99, {live}), live]  # the live one comes last

    with aws_calls() as calls:
        replies = [guess(guesser, session_id, n) for n, session_id in enumerate(guesses)]

    assert lookups(calls.names) <= budget
    codes = [r.get("code") for r in replies]
    assert codes[:budget] == ["SESSION_NOT_FOUND"] * budget
    for refused in replies[budget:]:
        details = assert_error(refused, "RATE_LIMIT_EXCEEDED", 429)
        assert 1 <= details["retryAfter"] <= 60
        assert details["limit"] == budget
    # The guesser never learned of the live session, and holds no place in it.
    assert store.get_session(live)["listenerCount"] == 0
    assert store.get_connection(guesser).get("role") is None
    assert calls.metric_sum("RateLimitExceeded", Operation="joinSession") == 50 - budget // 2
    assert calls.metric_sum("RateLimitExceeded", Operation="refreshConnection") == 50 - (
        budget - budget // 2
    )


def test_a_speaker_refresh_with_a_guessed_id_counts_against_the_budget(
    issuer: Issuer, budget: int
) -> None:
    _, live = new_session(issuer, user="owner")
    replies = []
    with aws_calls() as calls:
        for session_id in [*unknown_ids(8, {live}), live]:
            cid = speaker(issuer, user="guesser", ip=GUESSER_IP)
            body = {"action": "refreshConnection", "sessionId": session_id, "role": "speaker"}
            replies.append(send(refresh_connection.handler, cid, body, ip=GUESSER_IP))

    assert lookups(calls.names) <= budget
    assert [r.get("code") for r in replies[:budget]] == ["SESSION_NOT_FOUND"] * budget
    for refused in replies[budget:]:
        assert assert_error(refused, "RATE_LIMIT_EXCEEDED", 429)["retryAfter"] >= 1


def test_a_listener_refresh_counts_against_the_join_limit(
    issuer: Issuer, monkeypatch: pytest.MonkeyPatch, frozen_clock: FrozenClock
) -> None:
    set_env(monkeypatch, LISTENER_JOINS_PER_MINUTE=2)
    _, session_id = new_session(issuer)
    body = {
        "action": "refreshConnection",
        "sessionId": session_id,
        "role": "listener",
        "targetLanguage": "es",
    }
    replies = [
        send(refresh_connection.handler, listener(ip=GUESSER_IP), body, ip=GUESSER_IP)
        for _ in range(3)
    ]
    assert [r["type"] for r in replies[:2]] == ["connectionRefreshComplete"] * 2
    details = assert_error(replies[2], "RATE_LIMIT_EXCEEDED", 429)
    assert details["limit"] == 2 and details["retryAfter"] >= 1


def test_a_failed_lookup_costs_one_write_and_a_found_one_nothing_extra(
    issuer: Issuer, budget: int
) -> None:
    """The happy path keeps its 3 calls (test_call_budget); a failed join adds one write."""
    _, live = new_session(issuer)
    cid = listener(ip=GUESSER_IP)
    with aws_calls() as failed:
        reply = send(
            join_session.handler,
            cid,
            {
                "action": "joinSession",
                "sessionId": unknown_ids(1, {live})[0],
                "targetLanguage": "es",
            },
            ip=GUESSER_IP,
        )
    assert reply["code"] == "SESSION_NOT_FOUND"
    assert failed.names == [
        f"dynamodb.UpdateItem({PREFIX}RateLimits)",  # join limit + budget check
        f"dynamodb.UpdateItem({PREFIX}Sessions)",  # the lookup
        f"dynamodb.UpdateItem({PREFIX}RateLimits)",  # the failure counted
    ]
