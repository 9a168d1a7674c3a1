"""The log contract (docs/architecture.md), from real handler runs: one JSON object per
stdout line, the contract fields, keyed hashes, and never a raw IP, token or connection ID."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest

from runtime import invocation, store
from runtime.handlers import connect, create_session, default, join_session
from runtime.hash_key import ip_hash_key
from runtime.hashing import connection_hash, ip_hash
from tests.runtime.helpers_entry import Issuer, claims, closed_port, sign, use_jwks_url
from tests.support.lambda_events import LambdaContext, connect_event, message_event
from tests.support.runtime_env import STAGE, put_hash_key

TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")
LEVELS = {"DEBUG", "INFO", "WARN", "ERROR"}
SPEAKER_IP = "198.51.100.201"
LISTENER_IP = "192.0.2.202"


@dataclass
class Run:
    """One invocation: its context, response and the stdout lines it wrote (parsed)."""

    context: LambdaContext
    response: dict[str, Any]
    # Every line the invocation wrote: its log lines and, last, its EMF metrics line(s).
    every_line: list[dict[str, Any]]
    stdout: str

    @property
    def lines(self) -> list[dict[str, Any]]:
        """The log lines, without the metrics line(s) written when the invocation ends."""
        return [line for line in self.every_line if "_aws" not in line]

    @property
    def metrics(self) -> list[dict[str, Any]]:
        return [line for line in self.every_line if "_aws" in line]

    @property
    def last(self) -> dict[str, Any]:
        return self.lines[-1]


class Runner:
    """Runs handlers one at a time, keeping each invocation's stdout apart."""

    def __init__(self, capsys: pytest.CaptureFixture[str]) -> None:
        self.capsys = capsys
        self.runs: list[Run] = []
        capsys.readouterr()

    def __call__(
        self,
        handler: Callable[..., dict[str, Any]],
        event: dict[str, Any],
        function_name: str = f"session-management-{STAGE}-fn",
    ) -> Run:
        context = LambdaContext(function_name=function_name)
        response = handler(event, context)
        captured = self.capsys.readouterr()
        assert captured.err == "", captured.err  # nothing beside the JSON lines
        # Every line is one JSON object: no stray text, no multi-line stack traces.
        lines = [json.loads(line) for line in captured.out.splitlines()]
        assert lines and all(isinstance(line, dict) for line in lines)
        run = Run(context, response, lines, captured.out)
        self.runs.append(run)
        return run

    @property
    def stdout(self) -> str:
        return "".join(run.stdout for run in self.runs)


@pytest.fixture
def runner(capsys: pytest.CaptureFixture[str]) -> Runner:
    return Runner(capsys)


def check_common(run: Run, operation: str, correlation: str) -> None:
    """The fields every line of an invocation carries, its metrics line(s) included."""
    if run.metrics:
        assert run.every_line[-len(run.metrics) :] == run.metrics, "metrics lines come last"
    for line in run.every_line:
        assert TIMESTAMP.match(line["timestamp"]), line
        when = datetime.strptime(line["timestamp"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
        assert abs((datetime.now(UTC) - when).total_seconds()) < 60
        assert line["level"] in LEVELS
        assert isinstance(line["message"], str) and line["message"]
        assert line["function"] == run.context.function_name
        assert line["operation"] == operation
        assert line["requestId"] == run.context.aws_request_id
        assert isinstance(line["coldStart"], bool)
    # Lines before the session is known correlate by connection hash, after it by sessionId.
    assert run.last["correlationId"] == correlation


def check_success(run: Run) -> None:
    assert run.last["level"] == "INFO"
    assert run.last["message"].endswith("succeeded")
    assert isinstance(run.last["durationMs"], int | float) and run.last["durationMs"] >= 0
    assert "errorCode" not in run.last and "stackTrace" not in run.last


def check_error(run: Run, code: str) -> None:
    line = run.last
    assert line["errorCode"] == code
    assert isinstance(line["errorMessage"], str) and line["errorMessage"]
    assert isinstance(line["durationMs"], int | float)
    if line["status"] >= 500:
        assert line["level"] == "ERROR"
        assert isinstance(line["stackTrace"], str) and "Traceback" in line["stackTrace"]
    else:
        assert line["level"] == "WARN"
        assert "stackTrace" not in line


def scenario(runner: Runner, issuer: Issuer, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """A speaker and a listener through connect, create, join and a range of errors."""
    token = issuer.token("speaker-7")
    speaker, listener = "SpeakerConn01=", "ListenerConn1="
    ids = {"token": token, "connections": [speaker, listener, "Stranger0001="]}

    run = runner(connect.handler, connect_event(speaker, token=token, ip=SPEAKER_IP))
    check_common(run, "connect", connection_hash(speaker))
    check_success(run)
    assert run.last["userContext"] == {"userId": "speaker-7", "ipHash": ip_hash(SPEAKER_IP)}

    body = {"action": "createSession", "sourceLanguage": "en"}
    run = runner(create_session.handler, message_event(speaker, body, ip=SPEAKER_IP))
    session_id = json.loads(run.response["body"])["sessionId"]
    check_common(run, "createSession", session_id)
    check_success(run)
    assert run.last["sessionId"] == session_id
    assert run.last["userContext"] == {"userId": "speaker-7", "ipHash": ip_hash(SPEAKER_IP)}

    run = runner(connect.handler, connect_event(listener, ip=LISTENER_IP))
    check_common(run, "connect", connection_hash(listener))
    check_success(run)
    assert run.last["userContext"] == {"ipHash": ip_hash(LISTENER_IP)}

    body = {"action": "joinSession", "sessionId": session_id, "targetLanguage": "es"}
    run = runner(join_session.handler, message_event(listener, body, ip=LISTENER_IP))
    check_common(run, "joinSession", session_id)
    check_success(run)
    assert run.last["userContext"] == {"ipHash": ip_hash(LISTENER_IP)}

    # 4xx: rejected handshake, bad frame, unknown session, second join, no token.
    expired = sign(claims("speaker-7", iat=1, exp=2))
    ids["expired"] = expired
    run = runner(connect.handler, connect_event("Stranger0001=", token=expired, ip=SPEAKER_IP))
    check_common(run, "connect", connection_hash("Stranger0001="))
    check_error(run, "UNAUTHORIZED")

    run = runner(default.handler, message_event(listener, "{not json", ip=LISTENER_IP))
    check_common(run, "default", connection_hash(listener))
    check_error(run, "INVALID_MESSAGE")

    body = {"action": "joinSession", "sessionId": "quiet-lake-555", "targetLanguage": "es"}
    run = runner(join_session.handler, message_event(listener, body, ip=LISTENER_IP))
    check_common(run, "joinSession", "quiet-lake-555")
    check_error(run, "SESSION_NOT_FOUND")

    body = {"action": "createSession", "sourceLanguage": "en"}
    run = runner(create_session.handler, message_event(listener, body, ip=LISTENER_IP))
    check_common(run, "createSession", connection_hash(listener))
    check_error(run, "UNAUTHORIZED")

    # 5xx: an unexpected exception (INTERNAL_ERROR) and a dependency down.
    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("injected bug")

    with monkeypatch.context() as patch:
        patch.setattr(store, "add_listener", broken)
        body = {"action": "joinSession", "sessionId": session_id, "targetLanguage": "de"}
        run = runner(join_session.handler, message_event("Stranger0001=", body, ip=SPEAKER_IP))
    check_common(run, "joinSession", session_id)
    check_error(run, "INTERNAL_ERROR")
    assert "RuntimeError: injected bug" in run.last["stackTrace"]
    assert run.last["errorMessage"] == "RuntimeError: injected bug"

    boto3.client("dynamodb").delete_table(TableName=f"session-management-{STAGE}-RateLimits")
    boto3.client("dynamodb").delete_table(TableName=f"session-management-{STAGE}-Connections")
    run = runner(connect.handler, connect_event("Stranger0002=", ip=LISTENER_IP))
    ids["connections"].append("Stranger0002=")
    check_common(run, "connect", connection_hash("Stranger0002="))
    check_error(run, "SERVICE_UNAVAILABLE")
    assert "ResourceNotFoundException" in run.last["errorMessage"]
    degraded = run.lines[0]  # the rate limit failed open first
    assert (degraded["level"], degraded["message"]) == (
        "WARN",
        "rateLimits failed; continuing degraded",
    )
    assert "durationMs" not in degraded  # not a completion line

    # The identity provider down: a WARN for the degradation, then the 503.
    use_jwks_url(monkeypatch, f"http://127.0.0.1:{closed_port()}/jwks.json")
    fresh = issuer.token("speaker-8")
    ids["fresh"] = fresh
    run = runner(connect.handler, connect_event("Stranger0003=", token=fresh, ip=SPEAKER_IP))
    ids["connections"].append("Stranger0003=")
    check_error(run, "SERVICE_UNAVAILABLE")
    assert [line["level"] for line in run.lines][-2:] == ["WARN", "ERROR"]
    return ids


def test_every_line_carries_the_contract_fields(
    runner: Runner, issuer: Issuer, monkeypatch: pytest.MonkeyPatch
) -> None:
    scenario(runner, issuer, monkeypatch)
    assert len(runner.runs) == 11


def test_no_raw_ip_token_or_connection_id_reaches_stdout(
    runner: Runner, issuer: Issuer, monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = scenario(runner, issuer, monkeypatch)
    out = runner.stdout
    for ip in (SPEAKER_IP, LISTENER_IP):
        assert ip not in out
    for token in (ids["token"], ids["expired"], ids["fresh"]):
        assert token not in out
        for segment in token.split("."):  # not even a part of one
            assert segment not in out
    for connection_id in ids["connections"]:
        assert connection_id not in out
        assert connection_id.rstrip("=") not in out


def test_cold_start_is_true_only_for_the_first_invocation(
    runner: Runner, aws: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(invocation, "_warm_functions", set())
    first = runner(connect.handler, connect_event("Cold00000001="))
    second = runner(connect.handler, connect_event("Cold00000002="))
    assert {line["coldStart"] for line in first.lines} == {True}
    assert {line["coldStart"] for line in second.lines} == {False}


def test_cold_start_is_per_function_when_one_process_serves_several(
    runner: Runner, aws: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The local stack runs every function in one process; each still has its own cold start.
    monkeypatch.setattr(invocation, "_warm_functions", set())
    runner(connect.handler, connect_event("Cold00000003="))
    other = runner(
        default.handler,
        message_event("Cold00000003=", "not json"),
        function_name=f"session-management-{STAGE}-default",
    )
    again = runner(connect.handler, connect_event("Cold00000004="))
    assert {line["coldStart"] for line in other.lines} == {True}
    assert {line["coldStart"] for line in again.lines} == {False}


def test_hashes_are_keyed(runner: Runner, aws: None, monkeypatch: pytest.MonkeyPatch) -> None:
    ip, cid = "203.0.113.123", "KeyedHash001="
    run = runner(connect.handler, connect_event(cid, ip=ip))
    logged_ip_hash = run.last["userContext"]["ipHash"]
    correlation = run.last["correlationId"]
    for plain in (ip, "ip:" + ip):
        assert logged_ip_hash not in hashlib.sha256(plain.encode()).hexdigest()
    for plain in (cid, "conn:" + cid):
        assert correlation not in hashlib.sha256(plain.encode()).hexdigest()
    assert store.get_connection(cid)["ipHash"] == logged_ip_hash

    put_hash_key("a-different-stack-secret")
    ip_hash_key.cache_clear()  # a new cold start reads it
    run = runner(connect.handler, connect_event("KeyedHash002=", ip=ip))
    assert run.last["userContext"]["ipHash"] != logged_ip_hash
    assert run.last["userContext"]["ipHash"] == ip_hash(ip)


def test_a_lone_surrogate_from_the_client_still_gives_one_json_line(
    runner: Runner, aws: None
) -> None:
    run = runner(default.handler, message_event("Surrogate001=", '{"action": "\\ud800"}'))
    check_error(run, "INVALID_ACTION")
