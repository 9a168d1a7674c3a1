"""``joinSession``: validation, per-IP limit, atomic listener cap, one role per connection."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import boto3
import pytest
from botocore.exceptions import ClientError

from runtime import refresh_tokens, store
from runtime.config import config
from runtime.handlers import join_session
from tests.runtime.helpers_entry import (
    Issuer,
    assert_error,
    aws_calls,
    join,
    listener,
    new_session,
    send,
)
from tests.support.clock import FrozenClock
from tests.support.runtime_env import STAGE


def _count(session_id: str) -> int:
    return store.get_session(session_id)["listenerCount"]


def test_joins_in_three_aws_calls_and_reports_the_count_it_produced(issuer: Issuer) -> None:
    _, session_id = new_session(issuer, source="de")
    first = listener()
    before_ms = int(time.time() * 1000)
    with aws_calls() as calls:
        joined = join(first, session_id, "fr")
    assert joined == {
        "type": "sessionJoined",
        "sessionId": session_id,
        "sourceLanguage": "de",
        "targetLanguage": "fr",
        "listenerCount": 1,
        "refreshToken": refresh_tokens.issue(session_id, "listener", first),
        "timestamp": joined["timestamp"],
    }
    assert before_ms <= joined["timestamp"] <= int(time.time() * 1000)
    assert calls.names == [
        f"dynamodb.UpdateItem(session-management-{STAGE}-RateLimits)",
        f"dynamodb.UpdateItem(session-management-{STAGE}-Sessions)",
        f"dynamodb.UpdateItem(session-management-{STAGE}-Connections)",
    ]
    assert calls.metric_sum("ListenerJoinLatency") > 0
    record = store.get_connection(first)
    assert (record["role"], record["sessionId"], record["targetLanguage"]) == (
        "listener",
        session_id,
        "fr",
    )
    assert join(listener(), session_id, "es")["listenerCount"] == 2
    assert _count(session_id) == 2


MISSING = object()
OK_ID, OK_LANG = "golden-eagle-427", "es"
PARAMS, BAD_ID, UNSUPPORTED = "INVALID_PARAMETERS", "INVALID_SESSION_ID", "UNSUPPORTED_LANGUAGE"
# (sessionId, targetLanguage, expected code, details.field)
INVALID = [
    (MISSING, OK_LANG, PARAMS, "sessionId"),
    (None, OK_LANG, PARAMS, "sessionId"),
    (427, OK_LANG, PARAMS, "sessionId"),
    ([OK_ID], OK_LANG, PARAMS, "sessionId"),
    ("", OK_LANG, PARAMS, "sessionId"),
    ("Golden-Eagle-427", OK_LANG, BAD_ID, "sessionId"),
    ("golden-eagle-42", OK_LANG, BAD_ID, "sessionId"),
    ("golden-eagle-427\n", OK_LANG, BAD_ID, "sessionId"),
    ("#counters", OK_LANG, BAD_ID, "sessionId"),
    ("a" * 70 + "-b-123", OK_LANG, BAD_ID, "sessionId"),
    (OK_ID, MISSING, PARAMS, "targetLanguage"),
    (OK_ID, 3, PARAMS, "targetLanguage"),
    (OK_ID, "es-MX", PARAMS, "targetLanguage"),
    (OK_ID, "qq", UNSUPPORTED, "targetLanguage"),
]


@pytest.mark.parametrize(("session_id", "language", "code", "field"), INVALID)
def test_bad_input_is_rejected_before_any_aws_call(
    aws: None, session_id: object, language: object, code: str, field: str
) -> None:
    body = {"action": "joinSession", "sessionId": session_id, "targetLanguage": language}
    body = {k: v for k, v in body.items() if v is not MISSING}
    with aws_calls() as calls:
        message = send(join_session.handler, "Validating=", body)
    details = assert_error(message, code, 400)
    assert details["field"] == field
    assert calls.names == []


def test_unknown_session_is_not_found(issuer: Issuer) -> None:
    cid = listener()
    details = assert_error(join(cid, "quiet-lake-555"), "SESSION_NOT_FOUND", 404)
    assert details["sessionId"] == "quiet-lake-555"
    assert store.get_connection(cid).get("role") is None
    assert store.get_session("quiet-lake-555") is None  # no item conjured up


def test_ended_session_is_not_found(issuer: Issuer) -> None:
    speaker_id, session_id = new_session(issuer)
    assert join(listener(), session_id)["listenerCount"] == 1
    assert store.end_session(session_id, speaker_connection_id=speaker_id, reason="test")
    cid = listener()
    assert_error(join(cid, session_id), "SESSION_NOT_FOUND", 404)
    assert _count(session_id) == 1
    assert store.get_connection(cid).get("role") is None


def test_full_session(issuer: Issuer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAX_LISTENERS_PER_SESSION", "2")
    config.cache_clear()
    _, session_id = new_session(issuer)
    assert join(listener(), session_id)["listenerCount"] == 1
    assert join(listener(), session_id)["listenerCount"] == 2
    cid = listener()
    details = assert_error(join(cid, session_id), "SESSION_FULL", 503)
    assert details["maxListeners"] == 2
    assert _count(session_id) == 2
    assert store.get_connection(cid).get("role") is None


def test_second_join_on_a_connection_is_forbidden_and_the_count_given_back(
    issuer: Issuer,
) -> None:
    _, first = new_session(issuer, "one")
    _, second = new_session(issuer, "two")
    cid = listener()
    assert join(cid, first)["listenerCount"] == 1
    details = assert_error(join(cid, first, "de"), "FORBIDDEN", 403)
    assert details["role"] == "listener"
    assert_error(join(cid, second), "FORBIDDEN", 403)
    assert (_count(first), _count(second)) == (1, 0)
    record = store.get_connection(cid)
    assert (record["sessionId"], record["targetLanguage"]) == (first, "es")


def test_a_retried_role_claim_whose_first_attempt_landed_still_joins(
    issuer: Issuer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # DynamoDB slower than the read timeout: the claim lands, its response is lost, and
    # botocore's retry meets the condition it just satisfied.
    _, session_id = new_session(issuer)
    cid = listener()
    real_claim = store.claim_role

    def lost_response(*args: object, **kwargs: object) -> None:
        real_claim(*args, **kwargs)
        real_claim(*args, **kwargs)

    monkeypatch.setattr(store, "claim_role", lost_response)
    joined = join(cid, session_id)
    assert joined["type"] == "sessionJoined", joined
    assert joined["listenerCount"] == 1
    assert _count(session_id) == 1
    assert store.get_connection(cid)["role"] == "listener"


def test_a_speaker_cannot_join_even_its_own_session(issuer: Issuer) -> None:
    speaker_id, session_id = new_session(issuer)
    details = assert_error(join(speaker_id, session_id), "FORBIDDEN", 403)
    assert details["role"] == "speaker"
    assert _count(session_id) == 0
    assert store.get_connection(speaker_id)["role"] == "speaker"


def test_joins_are_limited_per_ip(
    issuer: Issuer, monkeypatch: pytest.MonkeyPatch, frozen_clock: FrozenClock
) -> None:
    monkeypatch.setenv("LISTENER_JOINS_PER_MINUTE", "2")
    config.cache_clear()
    _, session_id = new_session(issuer)
    ip = "192.0.2.50"
    join(listener(), session_id, ip=ip)
    join(listener(), session_id, ip=ip)
    cid = listener()
    with aws_calls() as calls:
        message = join(cid, session_id, ip=ip)
    details = assert_error(message, "RATE_LIMIT_EXCEEDED", 429)
    assert 1 <= details["retryAfter"] <= 60
    assert calls.metric_sum("RateLimitExceeded", Operation="joinSession") == 1
    assert _count(session_id) == 2
    assert join(cid, session_id, ip="192.0.2.51")["listenerCount"] == 3  # another IP


def test_sessions_table_unavailable_is_service_unavailable(issuer: Issuer) -> None:
    _, session_id = new_session(issuer)
    boto3.client("dynamodb").delete_table(TableName=f"session-management-{STAGE}-Sessions")
    details = assert_error(join(listener(), session_id), "SERVICE_UNAVAILABLE", 503)
    assert details["retryable"] is True


def test_failed_role_claim_gives_the_count_back(
    issuer: Issuer, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, session_id = new_session(issuer)
    cid = listener()

    def unavailable(*args: object, **kwargs: object) -> None:
        raise ClientError(
            {"Error": {"Code": "ServiceUnavailable", "Message": "down"}}, "UpdateItem"
        )

    monkeypatch.setattr(store, "claim_role", unavailable)
    assert_error(join(cid, session_id), "SERVICE_UNAVAILABLE", 503)
    assert _count(session_id) == 0


def test_unexpected_failure_is_internal_error(
    issuer: Issuer, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, session_id = new_session(issuer)

    def broken(*args: object, **kwargs: object) -> None:
        raise TypeError("bug")

    monkeypatch.setattr(store, "add_listener", broken)
    message = join(listener(), session_id)
    assert_error(message, "INTERNAL_ERROR", 500)
    assert "bug" not in message["message"]


def test_concurrent_joins_never_exceed_the_cap(
    aws_server: str, monkeypatch: pytest.MonkeyPatch, race_prone: None, unhurried: None
) -> None:
    monkeypatch.setenv("MAX_LISTENERS_PER_SESSION", "5")
    config.cache_clear()
    for round_, session_id in enumerate(["calm-river-101", "calm-river-102", "calm-river-103"]):
        speaker_id = f"Speaker{round_}="
        store.put_connection(speaker_id, connected_at_ms=1, ip_hash="h", user_id="u")
        store.create_session(
            {
                "sessionId": session_id,
                "speakerConnectionId": speaker_id,
                "speakerUserId": "u",
                "sourceLanguage": "en",
                "qualityTier": "standard",
                "createdAt": 1,
                "isActive": True,
                "listenerCount": 0,
                "expiresAt": store.ttl_from_now(),
            },
            max_active=10,
            max_per_user=10,
        )

        def attempt(i: int, session_id: str = session_id, round_: int = round_) -> dict:
            cid = f"Listener{round_}-{i:03d}="
            store.put_connection(cid, connected_at_ms=1, ip_hash="h", user_id=None)
            return join(cid, session_id, ip=f"192.0.{round_}.{i}")

        with ThreadPoolExecutor(max_workers=12) as pool:
            replies = list(pool.map(attempt, range(12)))
        joined = [r for r in replies if r["type"] == "sessionJoined"]
        assert sorted(r["listenerCount"] for r in joined) == [1, 2, 3, 4, 5]
        assert {r["code"] for r in replies if r["type"] == "error"} == {"SESSION_FULL"}
        assert _count(session_id) == 5
