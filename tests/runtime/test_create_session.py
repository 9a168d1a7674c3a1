"""``createSession``: validation first, a verified speaker, one atomic transaction, 4 AWS calls."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import boto3
import pytest

from runtime import aws as runtime_aws
from runtime import refresh_tokens, store
from runtime.config import config
from runtime.handlers import create_session, disconnect
from runtime.session_ids import MAX_ID_ATTEMPTS, is_valid_session_id
from tests.runtime.helpers_entry import (
    Issuer,
    assert_error,
    aws_calls,
    closed_port,
    join,
    listener,
    new_session,
    send,
    speaker,
)
from tests.support.lambda_events import LambdaContext, disconnect_event
from tests.support.runtime_env import STAGE


def _create(connection_id: str, **fields: object) -> dict:
    return send(create_session.handler, connection_id, {"action": "createSession", **fields})


def _active_count() -> int:
    return (store.get_session(store.COUNTERS_KEY) or {}).get("activeSessions", 0)


def test_creates_the_session_in_four_aws_calls(issuer: Issuer) -> None:
    cid = speaker(issuer, "alice")
    before_ms = int(time.time() * 1000)
    with aws_calls() as calls:
        created = _create(cid, sourceLanguage="en")
    assert set(created) == {
        "type",
        "sessionId",
        "sourceLanguage",
        "qualityTier",
        "expiresAt",
        "refreshToken",
        "timestamp",
    }
    assert created["type"] == "sessionCreated"
    assert created["refreshToken"] == refresh_tokens.issue(created["sessionId"], "speaker", cid)
    assert is_valid_session_id(created["sessionId"])
    assert (created["sourceLanguage"], created["qualityTier"]) == ("en", "standard")
    assert before_ms <= created["timestamp"] <= int(time.time() * 1000)
    # expiresAt in messages is epoch MILLISECONDS, dataRetentionHours (12) from now.
    assert abs(created["expiresAt"] - (before_ms + 12 * 3600 * 1000)) < 60_000

    assert calls.names == [
        f"dynamodb.GetItem(session-management-{STAGE}-Connections)",
        f"dynamodb.UpdateItem(session-management-{STAGE}-RateLimits)",
        "dynamodb.TransactWriteItems",
    ]
    assert calls.metric_sum("SessionCreationLatency") > 0

    session = store.get_session(created["sessionId"])
    assert session["speakerConnectionId"] == cid
    assert session["speakerUserId"] == "alice"
    assert session["isActive"] is True and session["listenerCount"] == 0
    assert session["expiresAt"] * 1000 == created["expiresAt"]  # the TTL is epoch SECONDS
    assert abs(session["createdAt"] - before_ms) < 60_000  # epoch ms
    connection = store.get_connection(cid)
    assert (connection["role"], connection["sessionId"]) == ("speaker", created["sessionId"])
    assert _active_count() == 1


def test_premium_tier_and_language_normalisation(issuer: Issuer) -> None:
    created = _create(speaker(issuer), sourceLanguage=" FR ", qualityTier="premium")
    assert (created["sourceLanguage"], created["qualityTier"]) == ("fr", "premium")
    assert store.get_session(created["sessionId"])["qualityTier"] == "premium"


INVALID = [
    ({}, "INVALID_PARAMETERS", "sourceLanguage"),
    ({"sourceLanguage": None}, "INVALID_PARAMETERS", "sourceLanguage"),
    ({"sourceLanguage": 12}, "INVALID_PARAMETERS", "sourceLanguage"),
    ({"sourceLanguage": "en-US"}, "INVALID_PARAMETERS", "sourceLanguage"),
    ({"sourceLanguage": "english"}, "INVALID_PARAMETERS", "sourceLanguage"),
    ({"sourceLanguage": "xx"}, "UNSUPPORTED_LANGUAGE", "sourceLanguage"),
    ({"sourceLanguage": "en", "qualityTier": "gold"}, "INVALID_PARAMETERS", "qualityTier"),
    ({"sourceLanguage": "en", "qualityTier": ["premium"]}, "INVALID_PARAMETERS", "qualityTier"),
]


@pytest.mark.parametrize(("fields", "code", "field"), INVALID)
def test_bad_input_is_rejected_before_any_aws_call(
    issuer: Issuer, fields: dict, code: str, field: str
) -> None:
    cid = speaker(issuer)
    with aws_calls() as calls:
        message = _create(cid, **fields)
    details = assert_error(message, code, 400)
    assert details["field"] == field
    assert calls.names == []
    assert store.get_connection(cid).get("role") is None


def test_without_a_verified_token_is_unauthorized(issuer: Issuer) -> None:
    cid = listener()
    with aws_calls() as calls:
        message = _create(cid, sourceLanguage="en")
    assert_error(message, "UNAUTHORIZED", 401)
    assert "token" in message["message"]
    assert len(calls) == 1  # the connection read (metrics ride in the EMF log line)
    assert _active_count() == 0


def test_a_connection_with_no_record_is_unauthorized(issuer: Issuer) -> None:
    assert_error(_create("NeverConnected=", sourceLanguage="en"), "UNAUTHORIZED", 401)


def test_second_create_on_the_same_connection_is_forbidden(issuer: Issuer) -> None:
    cid, session_id = new_session(issuer)
    details = assert_error(_create(cid, sourceLanguage="en"), "FORBIDDEN", 403)
    assert details["role"] == "speaker"
    assert store.get_connection(cid)["sessionId"] == session_id
    assert _active_count() == 1


def test_a_listener_connection_cannot_become_a_speaker(issuer: Issuer) -> None:
    _, session_id = new_session(issuer, "host")
    cid = speaker(issuer, "guest")  # verified, but joins as a listener first
    assert join(cid, session_id)["type"] == "sessionJoined"
    details = assert_error(_create(cid, sourceLanguage="en"), "FORBIDDEN", 403)
    assert details["role"] == "listener"


def test_sessions_per_hour_are_limited_per_user(
    issuer: Issuer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SESSIONS_PER_HOUR", "2")
    config.cache_clear()
    new_session(issuer, "busy")
    new_session(issuer, "busy")
    cid = speaker(issuer, "busy")
    message = _create(cid, sourceLanguage="en")
    details = assert_error(message, "RATE_LIMIT_EXCEEDED", 429)
    assert 1 <= details["retryAfter"] <= 3600
    assert store.get_connection(cid).get("role") is None
    assert _active_count() == 2
    new_session(issuer, "calm")  # another user has their own budget


def test_active_session_limit(issuer: Issuer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAX_ACTIVE_SESSIONS", "1")
    config.cache_clear()
    new_session(issuer, "first")
    cid = speaker(issuer, "second")
    details = assert_error(_create(cid, sourceLanguage="en"), "SESSION_LIMIT_REACHED", 503)
    assert details["maxActiveSessions"] == 1
    assert store.get_connection(cid).get("role") is None
    assert _active_count() == 1


def test_one_user_holds_at_most_max_active_sessions_per_user(issuer: Issuer) -> None:
    # Issue 21.4: two users with 50 sessions each held the whole service (maxActiveSessions).
    assert config().maxActiveSessionsPerUser == 5  # the default
    hogs = [new_session(issuer, "hog", ip=f"198.51.100.{30 + n}") for n in range(5)]
    cid = speaker(issuer, "hog", ip="198.51.100.40")
    message = _create(cid, sourceLanguage="en")
    details = assert_error(message, "USER_SESSION_LIMIT_REACHED", 429)
    assert details == {"activeSessions": 5, "maxActiveSessionsPerUser": 5}
    assert "You already have 5 active sessions" in message["message"]
    assert store.get_connection(cid).get("role") is None  # nothing half-written
    assert _active_count() == 5
    new_session(issuer, "someone-else", ip="198.51.100.41")  # other users are not held
    assert _active_count() == 6

    # Ending one of the user's sessions (its speaker leaves) frees its place at once.
    disconnect.handler(disconnect_event(hogs[0][0]), LambdaContext())
    assert _create(cid, sourceLanguage="en")["type"] == "sessionCreated"
    user_item = store.get_session(store.user_key("hog"))
    assert len(user_item["sessions"]) == 5
    assert hogs[0][1] not in user_item["sessions"]


def test_a_user_set_holding_ended_sessions_is_corrected_at_the_limit(
    issuer: Issuer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MAX_ACTIVE_SESSIONS_PER_USER", "2")
    config.cache_clear()
    _, first = new_session(issuer, "drifty", ip="198.51.100.50")
    new_session(issuer, "drifty", ip="198.51.100.51")
    # A session that ended without leaving the user's set (an end that knew no user).
    assert store.end_session(first, speaker_connection_id=None, reason="expired")
    assert first in store.get_session(store.user_key("drifty"))["sessions"]

    cid = speaker(issuer, "drifty", ip="198.51.100.52")
    assert _create(cid, sourceLanguage="en")["type"] == "sessionCreated"
    assert first not in store.get_session(store.user_key("drifty"))["sessions"]
    # Still exact: the user now holds 2 active sessions, and a third is refused.
    details = assert_error(
        _create(speaker(issuer, "drifty", ip="198.51.100.53"), sourceLanguage="en"),
        "USER_SESSION_LIMIT_REACHED",
        429,
    )
    assert details["activeSessions"] == 2


def test_an_id_collision_is_retried_with_a_new_id(
    issuer: Issuer, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, taken = new_session(issuer, "first")
    ids = iter([taken, taken, "fresh-meadow-321"])
    monkeypatch.setattr(create_session, "generate_session_id", lambda: next(ids))
    cid = speaker(issuer, "second")
    with aws_calls() as calls:
        created = _create(cid, sourceLanguage="de")
    assert created["sessionId"] == "fresh-meadow-321"
    assert calls.names.count("dynamodb.TransactWriteItems") == 3
    assert store.get_session(taken)["speakerUserId"] == "first"  # untouched
    assert _active_count() == 2


def test_ids_exhausted_is_service_unavailable(
    issuer: Issuer, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, taken = new_session(issuer, "first")
    monkeypatch.setattr(create_session, "generate_session_id", lambda: taken)
    cid = speaker(issuer, "second")
    with aws_calls() as calls:
        message = _create(cid, sourceLanguage="en")
    assert_error(message, "SERVICE_UNAVAILABLE", 503)
    assert "session ID" in message["message"]
    assert calls.names.count("dynamodb.TransactWriteItems") == MAX_ID_ATTEMPTS
    assert store.get_connection(cid).get("role") is None
    assert _active_count() == 1


def test_dynamodb_unavailable_is_service_unavailable(issuer: Issuer) -> None:
    cid = speaker(issuer)
    boto3.client("dynamodb").delete_table(TableName=f"session-management-{STAGE}-Sessions")
    with aws_calls() as calls:
        message = _create(cid, sourceLanguage="en")
    details = assert_error(message, "SERVICE_UNAVAILABLE", 503)
    assert details["retryable"] is True
    assert calls.metric_sum("DependencyFailures", Operation="createSession") == 1


def test_dynamodb_unreachable_is_service_unavailable(
    issuer: Issuer, monkeypatch: pytest.MonkeyPatch
) -> None:
    cid = speaker(issuer)
    monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", f"http://127.0.0.1:{closed_port()}")
    config.cache_clear()
    runtime_aws.reset_clients()
    assert_error(_create(cid, sourceLanguage="en"), "SERVICE_UNAVAILABLE", 503)


def test_unexpected_failure_is_internal_error(
    issuer: Issuer, monkeypatch: pytest.MonkeyPatch
) -> None:
    cid = speaker(issuer)

    def broken(*args: object, **kwargs: object) -> None:
        raise KeyError("bug")

    monkeypatch.setattr(store, "create_session", broken)
    message = _create(cid, sourceLanguage="en")
    assert_error(message, "INTERNAL_ERROR", 500)
    assert "bug" not in message["message"]  # internals stay in the logs


def test_concurrent_creates_on_one_connection_give_it_one_role(
    aws_server: str, race_prone: None, unhurried: None
) -> None:
    # Several may pass the role check on read; the transaction lets exactly one through.
    with ThreadPoolExecutor(max_workers=4) as pool:
        for round_ in range(5):
            cid = f"RacingSpeaker{round_}="
            store.put_connection(cid, connected_at_ms=1, ip_hash="h", user_id=f"racer{round_}")
            replies = list(pool.map(lambda _, c=cid: _create(c, sourceLanguage="en"), range(4)))
            outcomes = [r["type"] if r["type"] != "error" else r["code"] for r in replies]
            assert outcomes.count("sessionCreated") == 1, outcomes
            assert set(outcomes) <= {"sessionCreated", "FORBIDDEN"}
            assert _active_count() == round_ + 1
