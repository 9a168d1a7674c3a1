"""``$connect``: per-IP handshake limit (429), speaker tokens (401 / 503), the connection record."""

from __future__ import annotations

import json
import time
from collections import Counter

import boto3
import pytest

from runtime import auth, store
from runtime.config import config
from runtime.handlers import connect
from runtime.hashing import ip_hash
from tests.runtime.helpers_entry import (
    Issuer,
    alg_none_token,
    assert_error,
    aws_calls,
    claims,
    closed_port,
    do_connect,
    hs256_with_public_key,
    join,
    listener,
    new_session,
    rsa_key,
    sign,
    use_jwks_url,
)
from tests.runtime.helpers_lifecycle import log_lines
from tests.support.clock import FrozenClock
from tests.support.lambda_events import LambdaContext, connect_event
from tests.support.runtime_env import ENV, STAGE

CONNECTIONS_TABLE = f"session-management-{STAGE}-Connections"


def _error(response: dict) -> dict:
    return json.loads(response["body"])


def test_listener_connects_without_token_and_is_recorded(issuer: Issuer) -> None:
    connected_at = int(time.time() * 1000) - 5
    with aws_calls() as calls:
        cid, response = do_connect(ip="198.51.100.20", connection_id="ListenerConn1=")
    assert response == {"statusCode": 200}
    record = store.get_connection(cid)
    assert record["ipHash"] == ip_hash("198.51.100.20")
    assert "userId" not in record and "role" not in record
    assert abs(record["connectedAt"] - connected_at) < 60_000
    assert record["ttl"] > time.time()  # epoch seconds
    assert record["ttl"] < time.time() + 13 * 3600
    # One rate-limit count and one put; nothing buffered, so no PutMetricData; never a post.
    assert calls.names == [
        f"dynamodb.UpdateItem(session-management-{STAGE}-RateLimits)",
        f"dynamodb.PutItem({CONNECTIONS_TABLE})",
    ]
    assert issuer.requests == 0  # no token, no JWKS fetch


def test_connected_at_comes_from_the_request_context(aws: None) -> None:
    event = connect_event("CtxConn=", connected_at=1_700_000_000_123)
    assert connect.handler(event, LambdaContext())["statusCode"] == 200
    assert store.get_connection("CtxConn=")["connectedAt"] == 1_700_000_000_123


def test_speaker_token_records_the_verified_user_and_jwks_is_cached(issuer: Issuer) -> None:
    with aws_calls() as calls:
        cid, response = do_connect(issuer.token("alice"))
    assert response == {"statusCode": 200}
    assert store.get_connection(cid)["userId"] == "alice"
    assert issuer.requests == 1
    assert len(calls) == 2  # the JWKS fetch is HTTP to the issuer, not an AWS call

    # A warm instance verifies from its cached keys: no second fetch.
    cid2, response = do_connect(issuer.token("bob"))
    assert response == {"statusCode": 200}
    assert store.get_connection(cid2)["userId"] == "bob"
    assert issuer.requests == 1


def test_empty_token_parameter_counts_as_no_token(issuer: Issuer) -> None:
    cid, response = do_connect("")
    assert response == {"statusCode": 200}
    assert "userId" not in store.get_connection(cid)
    assert issuer.requests == 0


def _now() -> int:
    return int(time.time())


# case → (token factory, the details.reason the client is told)
BAD_TOKENS = {
    "expired": (lambda: sign(claims(iat=_now() - 7200, exp=_now() - 3600)), "expired"),
    "wrong_audience": (lambda: sign(claims(aud="someone-else")), "audience"),
    "wrong_issuer": (lambda: sign(claims(iss="https://evil.example.test")), "issuer"),
    "bad_signature_other_key": (lambda: sign(claims(), rsa_key("attacker")), "signature"),
    "alg_none": (lambda: alg_none_token(claims()), "algorithm"),
    "hs256_with_public_key": (lambda: hs256_with_public_key(claims(), rsa_key()), "algorithm"),
    "garbage": (lambda: "this-is-not-a-jwt", "malformed"),
    "garbage_three_segments": (lambda: "aaa.bbb.ccc", "malformed"),
    "access_token": (lambda: sign(claims(token_use="access")), "tokenUse"),
    "no_subject": (lambda: sign(claims(sub=None)), "missingClaim"),
    "no_expiry": (lambda: sign(claims(exp=None)), "missingClaim"),
    "not_yet_valid": (lambda: sign(claims(nbf=_now() + 3600)), "notYetValid"),
    "unknown_kid": (lambda: sign(claims(), kid="rotated-away"), "unknownKey"),
    "huge": (lambda: "a" * (auth.MAX_TOKEN_CHARS + 1), "malformed"),
}
# Tokens refused from the token alone, before any key is fetched.
REFUSED_WITHOUT_FETCH = {"alg_none", "hs256_with_public_key", "garbage", "garbage_three_segments"}


@pytest.mark.parametrize("case", sorted(BAD_TOKENS))
def test_bad_tokens_reject_the_handshake_with_401(issuer: Issuer, case: str) -> None:
    make, reason = BAD_TOKENS[case]
    token = make()
    with aws_calls() as calls:
        cid, response = do_connect(token)
    assert response["statusCode"] == 401
    details = assert_error(_error(response), "UNAUTHORIZED", 401)
    assert details["reason"] == reason
    assert token not in response["body"]
    assert store.get_connection(cid) is None  # nothing recorded
    assert calls.metric_sum("ConnectionErrors", ErrorCode="UNAUTHORIZED") == 1
    if case in REFUSED_WITHOUT_FETCH:
        assert issuer.requests == 0


def test_jwks_unreachable_refuses_speakers_with_503_but_listeners_connect_and_join(
    issuer: Issuer, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, session_id = new_session(issuer)  # created while the provider was up
    use_jwks_url(monkeypatch, f"http://127.0.0.1:{closed_port()}/.well-known/jwks.json")

    with aws_calls() as calls:
        cid, response = do_connect(issuer.token("carol"))
    assert response["statusCode"] == 503
    details = assert_error(_error(response), "SERVICE_UNAVAILABLE", 503)
    assert details["retryable"] is True
    assert "identity provider" in _error(response)["message"]
    assert store.get_connection(cid) is None
    assert calls.metric_sum("DependencyFailures", Operation="identityProvider") == 1
    assert calls.metric_sum("ConnectionErrors", ErrorCode="SERVICE_UNAVAILABLE") == 1

    listener_id = listener()
    joined = join(listener_id, session_id)
    assert joined["type"] == "sessionJoined"
    assert joined["listenerCount"] == 1


@pytest.mark.parametrize("mode", ["hang", "error", "notjson"])
def test_broken_identity_provider_is_503_not_401(
    issuer: Issuer, monkeypatch: pytest.MonkeyPatch, mode: str, capsys: pytest.CaptureFixture
) -> None:
    # A hang far longer than the timeout: without the timeout the JWKS would arrive and the
    # handshake would succeed. Checked by the mechanism, not by a stopwatch (a loaded
    # machine may take seconds to run the handler): one fetch, the configured timeout on the
    # client, and a timeout as the cause.
    issuer.state.mode = mode
    issuer.state.hang_seconds = 10.0
    monkeypatch.setattr(auth, "JWKS_TIMEOUT_S", 0.2)
    auth.clear_cache()
    cid, response = do_connect(issuer.token())
    assert response["statusCode"] == 503
    assert_error(_error(response), "SERVICE_UNAVAILABLE", 503)
    assert store.get_connection(cid) is None
    assert issuer.requests == 1  # one fetch, no retry inside $connect's time
    assert auth.jwks_client(issuer.jwks_url).timeout == 0.2
    if mode == "hang":
        (degraded,) = [
            line
            for line in log_lines(capsys.readouterr().out)
            if line["message"] == "identityProvider failed; continuing degraded"
        ]
        assert "timed out" in degraded["errorMessage"]


def test_connection_attempts_are_limited_per_ip(
    issuer: Issuer, monkeypatch: pytest.MonkeyPatch, frozen_clock: FrozenClock
) -> None:
    # A bucket of 3 handshakes refilled at 3 a minute: one token every 20 s.
    monkeypatch.setenv("CONNECTION_ATTEMPTS_PER_MINUTE", "3")
    monkeypatch.setenv("CONNECTION_BURST_PER_ADDRESS", "3")
    config.cache_clear()
    for _ in range(3):
        assert do_connect(ip="192.0.2.1")[1]["statusCode"] == 200
    with aws_calls() as calls:
        cid, response = do_connect(issuer.token(), ip="192.0.2.1")
    assert response["statusCode"] == 429
    details = assert_error(_error(response), "RATE_LIMIT_EXCEEDED", 429)
    assert 1 <= details["retryAfter"] <= 20
    assert details["burst"] == 3 and details["limit"] == 3
    assert store.get_connection(cid) is None
    assert issuer.requests == 0  # rejected before the token is looked at
    assert calls.metric_sum("RateLimitExceeded", Operation="connect") == 1
    assert calls.metric_sum("ConnectionErrors", ErrorCode="RATE_LIMIT_EXCEEDED") == 1
    # Another client IP has its own budget.
    assert do_connect(ip="192.0.2.2")[1]["statusCode"] == 200


def test_a_venue_of_300_behind_one_address_connects_with_the_default_bucket(aws: None) -> None:
    # The committed defaults: 600 at once, then 20 a minute.
    statuses = Counter(do_connect(ip="203.0.113.7")[1]["statusCode"] for _ in range(300))
    assert statuses == Counter({200: 300})


def test_a_connect_loop_from_one_address_is_slowed_after_its_burst(
    aws: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CONNECTION_BURST_PER_ADDRESS", "25")
    monkeypatch.setenv("CONNECTION_ATTEMPTS_PER_MINUTE", "1")
    config.cache_clear()
    statuses = [do_connect(ip="203.0.113.8")[1]["statusCode"] for _ in range(40)]
    # The burst, then nothing until the next token, a minute later.
    assert statuses == [200] * 25 + [429] * 15


def test_connections_table_unavailable_is_503(aws: None) -> None:
    boto3.client("dynamodb").delete_table(TableName=CONNECTIONS_TABLE)
    _, response = do_connect()
    assert response["statusCode"] == 503
    assert_error(_error(response), "SERVICE_UNAVAILABLE", 503)


def test_rate_limits_table_missing_lets_the_handshake_through(aws: None) -> None:
    boto3.client("dynamodb").delete_table(TableName=f"session-management-{STAGE}-RateLimits")
    with aws_calls() as calls:
        cid, response = do_connect()
    assert response == {"statusCode": 200}
    assert store.get_connection(cid) is not None
    assert calls.metric_sum("DependencyFailures", Operation="rateLimits") == 1


def test_no_raw_ip_in_any_table(issuer: Issuer) -> None:
    ip = "198.51.100.99"
    do_connect(issuer.token(), ip=ip)
    ddb = boto3.client("dynamodb")
    for table in (CONNECTIONS_TABLE, f"session-management-{STAGE}-RateLimits"):
        assert ip not in json.dumps(ddb.scan(TableName=table)["Items"])


def test_env_issuer_is_the_one_tokens_are_checked_against(issuer: Issuer) -> None:
    # Guards the fixtures: the tokens above fail for the reason they claim, not a typo.
    assert config().auth_issuer == ENV["AUTH_ISSUER"] == claims()["iss"]
    assert config().auth_audience == ENV["AUTH_AUDIENCE"] == claims()["aud"]
