"""Fault injection: every dependency failure degrades gracefully and leaves the data consistent.

Faults are real where they can be (a moto server stopped mid-test, a closed port for the
JWKS and for CloudWatch) and injected into the runtime's own clients otherwise: a botocore
``before-send`` hook answers chosen DynamoDB calls with an AWS error *inside* the retry loop,
so retries and backoff are botocore's own and attempts can be counted; a botocore Stubber
fails PutMetricData. After each fault the tables are checked: every listenerCount equals its
listener records, the active counter equals the active sessions, no role without a count.
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from botocore.retries.standard import ExponentialBackoff
from botocore.stub import Stubber

from runtime import aws as runtime_aws
from runtime import store
from runtime.config import config
from runtime.handlers import create_session, disconnect, heartbeat, sweeper
from runtime.routes import BY_ROUTE_KEY, WEBSOCKET_ROUTES
from tests.runtime.helpers_entry import aws_calls, closed_port, do_connect, join, use_jwks_url
from tests.runtime.helpers_lifecycle import log_lines
from tests.runtime.helpers_resilience import (
    assert_consistent,
    faults,
    held_roles,
    join_listeners,
    new_listener,
    new_speaker,
    next_ip,
    refresh,
    snapshot,
    speaker_missing_for,
    start_session,
)
from tests.support.lambda_events import (
    LambdaContext,
    disconnect_event,
    message_event,
    new_connection_id,
    reply,
)

THROTTLED = "ProvisionedThroughputExceededException"
# Backoff of botocore's standard mode (botocore.retries.standard.ExponentialBackoff):
# rand(0, 1) × min(scale × 2^i, 20 s), scale 1 s for throttling, 25 ms otherwise for DynamoDB.
_THROTTLING_SCALE_S = 1.0
_TRANSIENT_SCALE_S = 0.025
_MAX_BACKOFF_S = 20.0


def _attempts() -> int:
    return runtime_aws.dynamodb().meta.config.retries["total_max_attempts"]


def _backoff_bound(scale: float, attempts: int) -> float:
    return sum(min(scale * 2**i, _MAX_BACKOFF_S) for i in range(attempts - 1))


def _leave(connection_id: str) -> dict[str, Any]:
    return disconnect.handler(disconnect_event(connection_id), LambdaContext())


def _record_retry_waits(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Every backoff botocore schedules between attempts (seconds): what a request spends
    waiting on retries, known without a stopwatch (a loaded machine adds its own delays)."""
    waits: list[float] = []
    schedule = ExponentialBackoff.delay_amount

    def recording(self: ExponentialBackoff, context: Any) -> float:
        waits.append(schedule(self, context))
        return waits[-1]

    monkeypatch.setattr(ExponentialBackoff, "delay_amount", recording)
    return waits


def _error_lines(out: str, code: str) -> list[dict[str, Any]]:
    return [line for line in log_lines(out) if line.get("errorCode") == code]


# --- retry budget --------------------------------------------------------------------------------


def test_the_worst_case_retry_time_fits_every_function_timeout(runtime_env) -> None:
    """A request's longest chain of calls that may each run out of retries before its reply
    is two: a rate limit that fails open and the write after it, or a write and its
    compensation. Both must fit the route's timeout, so the client gets SERVICE_UNAVAILABLE
    rather than a Lambda timeout."""
    client = runtime_aws.dynamodb().meta.config
    attempts = client.retries["total_max_attempts"]
    assert client.retries["mode"] == "standard"
    throttled = _backoff_bound(_THROTTLING_SCALE_S, attempts)
    # Unreachable (nothing listening, or a black hole until the connect timeout).
    unreachable = attempts * client.connect_timeout + _backoff_bound(_TRANSIENT_SCALE_S, attempts)
    per_call = max(throttled, unreachable)
    for function in WEBSOCKET_ROUTES:
        assert 2 * per_call + 1 <= function.timeout_s, (function.name, attempts, per_call)
    # An endpoint that accepts and then never answers costs the read timeout per attempt
    # too; one such call still fits, leaving a second for the sweeper to repair.
    hanging = attempts * (client.connect_timeout + client.read_timeout)
    assert hanging < min(f.timeout_s for f in WEBSOCKET_ROUTES)


def test_a_throttled_refresh_retries_then_replies_503_and_writes_nothing(
    issuer, connections, capsys, monkeypatch
) -> None:
    _, session_id = start_session(issuer, "alice")
    new = new_listener()
    capsys.readouterr()
    waits = _record_retry_waits(monkeypatch)
    with faults(runtime_aws.dynamodb()) as injected, aws_calls() as calls:
        injected.fail("TransactWriteItems", THROTTLED)
        message = refresh(new, session_id, "listener", "es")

    assert (message["code"], message["status"]) == ("SERVICE_UNAVAILABLE", 503)
    assert message["details"] == {"retryable": True}
    assert injected.attempts["TransactWriteItems"] == _attempts()  # retried, but bounded
    # The retries' waits fit the function's timeout (the faults answer at once).
    assert len(waits) == _attempts() - 1
    bound = _backoff_bound(_THROTTLING_SCALE_S, _attempts())
    assert sum(waits) <= bound < BY_ROUTE_KEY["refreshConnection"].timeout_s
    (line,) = _error_lines(capsys.readouterr().out, "SERVICE_UNAVAILABLE")
    assert line["level"] == "ERROR" and THROTTLED in line["errorMessage"]
    assert "Traceback" in line["stackTrace"]
    assert calls.metric_sum("ConnectionErrors", ErrorCode="SERVICE_UNAVAILABLE") == 1
    assert calls.metric_sum("DependencyFailures", Operation="refreshConnection") == 1
    assert store.get_connection(new).get("role") is None
    assert store.get_session(session_id)["listenerCount"] == 0
    assert_consistent()


def test_a_throttled_speaker_refresh_keeps_the_old_speaker(issuer, connections) -> None:
    old, session_id = start_session(issuer, "alice")
    new = new_speaker(issuer, "alice")
    with faults(runtime_aws.dynamodb()) as injected:
        injected.fail("TransactWriteItems", "InternalServerError", status=500)
        assert refresh(new, session_id, "speaker")["code"] == "SERVICE_UNAVAILABLE"
    assert store.get_session(session_id)["speakerConnectionId"] == old
    assert store.get_connection(new).get("role") is None
    assert_consistent()
    # The client retries once DynamoDB is back.
    assert refresh(new, session_id, "speaker")["type"] == "connectionRefreshComplete"
    assert_consistent()


def test_a_throttled_create_writes_nothing(issuer, connections) -> None:
    speaker = new_speaker(issuer, "alice")
    body = {"action": "createSession", "sourceLanguage": "en"}
    with faults(runtime_aws.dynamodb()) as injected:
        injected.fail("TransactWriteItems", THROTTLED)
        created = reply(create_session.handler(message_event(speaker, body), LambdaContext()))
    assert created["code"] == "SERVICE_UNAVAILABLE"
    sessions, _, counter = snapshot()
    assert sessions == {} and not counter
    assert store.get_connection(speaker).get("role") is None
    assert_consistent()


def test_a_join_whose_count_is_throttled_claims_nothing(issuer, connections) -> None:
    _, session_id = start_session(issuer, "alice")
    cid = new_listener()
    with faults(runtime_aws.dynamodb()) as injected:
        injected.fail("UpdateItem", THROTTLED, table="session-management-test-Sessions")
        assert join(cid, session_id, ip=next_ip())["code"] == "SERVICE_UNAVAILABLE"
    assert store.get_connection(cid).get("role") is None
    assert_consistent()


def test_a_join_whose_claim_fails_gives_its_place_back(issuer, connections) -> None:
    _, session_id = start_session(issuer, "alice")
    join_listeners(session_id, 1)
    cid = new_listener()
    with faults(runtime_aws.dynamodb()) as injected:
        injected.fail("UpdateItem", THROTTLED, table="session-management-test-Connections")
        assert join(cid, session_id, ip=next_ip())["code"] == "SERVICE_UNAVAILABLE"
        assert injected.attempts["UpdateItem"] >= _attempts() + 2  # limit, count, claim×n
    assert store.get_session(session_id)["listenerCount"] == 1  # compensated
    assert_consistent()


def test_a_join_through_two_exhausted_calls_still_answers_in_time(
    issuer, connections, capsys, monkeypatch
) -> None:
    """The longest chain: the rate limit fails open after its retries, then the count fails."""
    _, session_id = start_session(issuer, "alice")
    cid = new_listener()
    capsys.readouterr()
    waits = _record_retry_waits(monkeypatch)
    with faults(runtime_aws.dynamodb()) as injected:
        injected.fail("UpdateItem", THROTTLED)
        message = join(cid, session_id, ip=next_ip())
    assert message["code"] == "SERVICE_UNAVAILABLE"
    assert injected.attempts["UpdateItem"] == 2 * _attempts()
    # Two calls' retry waits, and they fit the function's timeout with time for the reply.
    assert len(waits) == 2 * (_attempts() - 1)
    bound = 2 * _backoff_bound(_THROTTLING_SCALE_S, _attempts())
    assert sum(waits) <= bound and bound + 1 <= BY_ROUTE_KEY["joinSession"].timeout_s
    warnings = [line for line in log_lines(capsys.readouterr().out) if line["level"] == "WARN"]
    assert any("rateLimits" in line["message"] for line in warnings)
    assert_consistent()


def test_a_listener_disconnect_that_fails_half_way_is_repaired_by_the_sweeper(
    issuer, connections
) -> None:
    _, session_id = start_session(issuer, "alice")
    leaving, _ = join_listeners(session_id, 2)
    with faults(runtime_aws.dynamodb()) as injected:
        injected.fail("UpdateItem", THROTTLED, table="session-management-test-Sessions")
        assert _leave(leaving)["statusCode"] == 503
    # The record went, the decrement did not: the count is one too high for now ...
    assert store.get_session(session_id)["listenerCount"] == 2
    sweeper.handler({}, LambdaContext())
    # ... and one sweep later it is right again.
    assert store.get_session(session_id)["listenerCount"] == 1
    assert_consistent()


def test_a_speaker_disconnect_that_fails_half_way_is_repaired_by_the_sweeper(
    issuer, connections
) -> None:
    speaker, session_id = start_session(issuer, "alice")
    listeners = join_listeners(session_id, 2)
    with faults(runtime_aws.dynamodb()) as injected:
        injected.fail("TransactWriteItems", THROTTLED)
        assert _leave(speaker)["statusCode"] == 503
    assert store.get_session(session_id)["isActive"] is True  # the speaker's record is gone
    sweeper.handler({}, LambdaContext())  # notes the speaker missing (a $disconnect may be
    assert store.get_session(session_id)["isActive"] is True  # between its two writes)
    speaker_missing_for(session_id, 60)
    sweeper.handler({}, LambdaContext())
    assert store.get_session(session_id)["isActive"] is False
    for cid in listeners:
        assert [m["type"] for m in connections.messages(cid)] == ["sessionEnded"]
    assert_consistent()


# --- DynamoDB down -------------------------------------------------------------------------------


def test_dynamodb_going_down_mid_session_fails_requests_cleanly(
    stoppable_aws, service, connections, capsys
) -> None:
    speaker, session_id = service.start_session()
    listener = service.listener(session_id)
    newcomer = service.connect()
    capsys.readouterr()

    stoppable_aws.stop()
    with faults(runtime_aws.dynamodb()) as counted, aws_calls() as calls:
        started = time.monotonic()
        joined = service.join(newcomer, session_id)
        refreshed = refresh(new_connection_id(), session_id, "listener", "es")
        beat = reply(heartbeat.handler(message_event(listener, {"action": "heartbeat"}), None))
        left = _leave(speaker)
        elapsed = time.monotonic() - started

    for message in (joined, refreshed, beat):
        assert (message["code"], message["status"]) == ("SERVICE_UNAVAILABLE", 503), message
    assert left["statusCode"] == 503
    # Every failing call ran out of exactly its attempts; none was retried forever.
    # (UpdateItem: join's rate limit and count, the listener refresh's join limit, and the
    # heartbeat; DeleteItem: $disconnect.)
    assert counted.attempts == {
        "UpdateItem": 4 * _attempts(),
        "TransactWriteItems": _attempts(),
        "DeleteItem": _attempts(),
    }
    assert elapsed < 4 * BY_ROUTE_KEY["joinSession"].timeout_s
    out = capsys.readouterr().out
    assert len(_error_lines(out, "SERVICE_UNAVAILABLE")) == 4
    assert calls.metric_sum("ConnectionErrors", ErrorCode="SERVICE_UNAVAILABLE") == 4
    # Failed open: the join's and the listener refresh's join limit.
    assert calls.metric_sum("DependencyFailures", Operation="rateLimits") == 2

    stoppable_aws.start()
    runtime_aws.reset_clients()  # pooled connections to the old server are dead
    assert_consistent()
    assert store.get_session(session_id)["isActive"] is True
    assert service.join(newcomer, session_id)["type"] == "sessionJoined"
    assert _leave(speaker)["statusCode"] == 200
    assert [m["type"] for m in connections.messages(listener)] == ["sessionEnded"]
    assert_consistent()


# --- identity provider ---------------------------------------------------------------------------


def test_an_unreachable_jwks_refuses_speakers_clearly_and_listeners_still_join(
    issuer, connections, monkeypatch, capsys
) -> None:
    _, session_id = start_session(issuer, "alice")
    use_jwks_url(monkeypatch, f"http://127.0.0.1:{closed_port()}/.well-known/jwks.json")
    capsys.readouterr()

    with aws_calls() as calls:
        _, refused = do_connect(issuer.token("bob"), ip=next_ip())
    assert refused["statusCode"] == 503
    error = reply(refused)
    assert error["code"] == "SERVICE_UNAVAILABLE"
    assert "identity provider" in error["message"]
    assert calls.metric_sum("DependencyFailures", Operation="identityProvider") == 1
    out = capsys.readouterr().out
    assert any(
        line["level"] == "WARN" and "identityProvider" in line["message"] for line in log_lines(out)
    )
    assert issuer.token("bob") not in out

    # Listeners need no token: they connect and join as usual.
    ip = next_ip()
    cid, accepted = do_connect(ip=ip)
    assert accepted["statusCode"] == 200
    assert join(cid, session_id, ip=ip)["type"] == "sessionJoined"
    assert_consistent()


# --- rate limits ---------------------------------------------------------------------------------


@pytest.mark.parametrize("code", [THROTTLED, "ResourceNotFoundException"])
def test_an_unavailable_rate_limits_table_fails_open(issuer, connections, capsys, code) -> None:
    _, session_id = start_session(issuer, "alice")
    capsys.readouterr()
    with faults(runtime_aws.dynamodb()) as injected, aws_calls() as calls:
        injected.fail("UpdateItem", code, table="session-management-test-RateLimits")
        ip = next_ip()
        cid, accepted = do_connect(ip=ip)
        joined = join(cid, session_id, ip=ip)
    assert accepted["statusCode"] == 200
    assert joined["type"] == "sessionJoined"
    assert injected.injected("UpdateItem") >= 2  # both limits were asked, both failed
    assert calls.metric_sum("DependencyFailures", Operation="rateLimits") == 2
    warnings = [line for line in log_lines(capsys.readouterr().out) if line["level"] == "WARN"]
    assert sum("rateLimits" in line["message"] for line in warnings) == 2
    assert_consistent()


# --- metrics -------------------------------------------------------------------------------------


def test_a_failing_put_metric_data_never_fails_the_request(
    issuer, connections, capsys, monkeypatch
) -> None:
    monkeypatch.setenv("METRICS_TRANSPORT", "api")
    config.cache_clear()
    _, session_id = start_session(issuer, "alice")
    cid = new_listener()
    capsys.readouterr()
    with Stubber(runtime_aws.cloudwatch()) as stub:
        stub.add_client_error("put_metric_data", "InternalServiceFault", http_status_code=500)
        joined = join(cid, session_id, ip=next_ip())
        stub.assert_no_pending_responses()  # the metrics were attempted
    assert joined["type"] == "sessionJoined"
    (line,) = _error_lines(capsys.readouterr().out, "METRICS_PUBLISH_FAILED")
    assert line["level"] == "WARN"
    assert_consistent()


@pytest.mark.parametrize("transport", ["api", "emf"])
def test_an_unreachable_cloudwatch_never_fails_the_request(
    issuer, connections, monkeypatch, capsys, transport
) -> None:
    monkeypatch.setenv("METRICS_TRANSPORT", transport)
    config.cache_clear()
    _, session_id = start_session(issuer, "alice")
    monkeypatch.setenv("AWS_ENDPOINT_URL_CLOUDWATCH", f"http://127.0.0.1:{closed_port()}")
    runtime_aws.reset_clients()
    cid = new_listener()
    capsys.readouterr()
    joined = join(cid, session_id, ip=next_ip())
    assert joined["type"] == "sessionJoined"
    out = capsys.readouterr().out
    if transport == "api":
        (line,) = _error_lines(out, "METRICS_PUBLISH_FAILED")
        assert "Connect" in line["errorMessage"] or "Endpoint" in line["errorMessage"]
    else:  # no CloudWatch call to fail: the join's latency rides in its EMF line
        assert _error_lines(out, "METRICS_PUBLISH_FAILED") == []
        emf_lines = [json.loads(x) for x in out.splitlines() if '"_aws"' in x]
        assert [line["ListenerJoinLatency"] > 0 for line in emf_lines] == [True]
    assert_consistent()


# --- fan-out -------------------------------------------------------------------------------------


def test_gone_and_failing_listeners_do_not_stop_the_session_ending(
    issuer, connections, capsys
) -> None:
    speaker, session_id = start_session(issuer, "alice")
    gone, failing, *present = join_listeners(session_id, 5)
    connections.gone.add(gone)
    connections.failing[failing] = 500
    capsys.readouterr()

    with aws_calls() as calls:
        assert _leave(speaker)["statusCode"] == 200

    for cid in present:
        assert [m["type"] for m in connections.messages(cid)] == ["sessionEnded"]
    assert connections.messages(gone) == [] and connections.messages(failing) == []
    _, records, counter = snapshot()
    # Gone, failing and delivered alike lose their role: the session is over. The gone
    # one's record goes; the others' sockets are open and keep theirs.
    assert held_roles(records) == {} and gone not in records
    assert counter == 0
    assert calls.metric_sum("DependencyFailures", Operation="sessionEndedFanOut") == 1
    out = capsys.readouterr().out
    assert gone not in out and failing not in out  # never a raw connection ID in the logs
    assert_consistent()


def test_the_fault_hook_really_stops_the_write(issuer, connections) -> None:
    """The injector itself: an injected failure must not be written behind the error."""
    _, session_id = start_session(issuer, "alice")
    with faults(runtime_aws.dynamodb()) as injected:
        injected.fail(
            "UpdateItem", THROTTLED, table="session-management-test-Sessions", times=_attempts()
        )
        with pytest.raises(Exception, match=THROTTLED):
            store.add_listener(session_id, max_listeners=config().maxListenersPerSession)
    assert store.get_session(session_id)["listenerCount"] == 0
