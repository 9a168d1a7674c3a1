"""Metrics as CloudWatch receives them: run the real handlers, read the metrics back from moto.

Both transports: ``emf`` (the default: EMF log lines, extracted the way CloudWatch Logs does by
the ``cloudwatch_logs`` fixture and published to moto) and ``api`` (one PutMetricData). Names,
units and the exact dimension sets are those of ``runtime.metric_names`` either way; an
invocation publishes at most once; a failure to publish never fails a request.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime, timedelta

import boto3
import pytest
from botocore.stub import Stubber
from moto.cloudwatch.models import cloudwatch_backends
from moto.core import DEFAULT_ACCOUNT_ID

from bench.call_counter import CallCounter
from runtime import aws as runtime_aws
from runtime.errors import ErrorCode
from runtime.handlers import connect, disconnect, heartbeat, join_session, metrics_reporter
from runtime.metric_names import BY_NAME, DEFAULT_NAMESPACE, ERROR_CODE, OPERATION
from runtime.routes import ROUTES
from tests.runtime.helpers_lifecycle import (
    heartbeat_event,
    log_lines,
    set_env,
)
from tests.support.cloudwatch_logs import CloudWatchLogs
from tests.support.lambda_events import (
    LambdaContext,
    connect_event,
    disconnect_event,
    message_event,
    reply,
)
from tests.support.runtime_env import STAGE

PUT = "cloudwatch:PutMetricData"


class Invocations:
    """Runs handlers and records each invocation's PutMetricData calls and EMF lines."""

    def __init__(self, transport: str) -> None:
        self.transport = transport
        self.puts: list[tuple[str, int]] = []
        self.emf_lines: list[tuple[str, int]] = []

    def run(self, label: str, handler, event) -> dict:
        clients = [runtime_aws.dynamodb(), runtime_aws.cloudwatch(), runtime_aws.connections()]
        emulation = CloudWatchLogs.current
        assert emulation is not None
        before = len(emulation.documents)
        with CallCounter(clients, default_session=False) as calls:
            response = handler(event, LambdaContext())
        self.puts.append((label, calls[PUT]))
        self.emf_lines.append((label, len(emulation.documents) - before))
        return response


def statistics(name: str, unit: str, **dimensions: str) -> dict:
    """Sum and SampleCount of ``name`` with exactly Stage + ``dimensions``, in ``unit``."""
    now = datetime.now(UTC)
    dims = [{"Name": "Stage", "Value": STAGE}] + [
        {"Name": k, "Value": v} for k, v in dimensions.items()
    ]
    points = boto3.client("cloudwatch").get_metric_statistics(
        Namespace=DEFAULT_NAMESPACE,
        MetricName=name,
        Dimensions=dims,
        StartTime=now - timedelta(minutes=10),
        EndTime=now + timedelta(minutes=10),
        Period=3600,
        Statistics=["Sum", "SampleCount"],
        Unit=unit,
    )["Datapoints"]
    return {
        "Sum": sum(p["Sum"] for p in points),
        "SampleCount": sum(p["SampleCount"] for p in points),
        "Units": {p["Unit"] for p in points},
    }


def stored_sum(name: str, unit: str, **dimensions: str) -> float:
    """Sum of the values stored under exactly Stage + ``dimensions``.

    moto's GetMetricStatistics matches every metric whose dimensions *include* the requested
    ones (CloudWatch matches the exact set), so a [Stage] query would also add up the
    [Stage, ErrorCode] copies; this reads moto's stored datapoints and matches exactly.
    """
    wanted = {"Stage": STAGE, **dimensions}
    backend = cloudwatch_backends[DEFAULT_ACCOUNT_ID]["us-east-1"]
    total = 0.0
    for datum in backend.get_all_metrics():
        dims = {d.name: d.value for d in datum.dimensions}
        if datum.namespace == DEFAULT_NAMESPACE and datum.name == name and dims == wanted:
            assert datum.unit == unit, (name, datum.unit)
            total += datum.value
    return total


def published_dimension_sets() -> dict[str, set[tuple[str, ...]]]:
    sets: dict[str, set[tuple[str, ...]]] = defaultdict(set)
    paginator = boto3.client("cloudwatch").get_paginator("list_metrics")
    for page in paginator.paginate(Namespace=DEFAULT_NAMESPACE):
        for metric in page["Metrics"]:
            names = tuple(d["Name"] for d in metric["Dimensions"])
            sets[metric["MetricName"]].add(names)
            assert {d["Name"]: d["Value"] for d in metric["Dimensions"]}["Stage"] == STAGE
    return sets


@pytest.fixture(params=["emf", "api"])
def transport(request, monkeypatch) -> str:
    set_env(monkeypatch, METRICS_TRANSPORT=request.param)
    return request.param


@pytest.fixture
def traffic(aws, service, connections, monkeypatch, transport, frozen_clock) -> Invocations:
    """A little of everything: successes, error replies, rate-limit rejections, the reporter."""
    set_env(
        monkeypatch,
        HEARTBEATS_PER_MINUTE=2,
        CONNECTION_ATTEMPTS_PER_MINUTE=1,
        CONNECTION_BURST_PER_ADDRESS=1,
    )
    runs = Invocations(transport)
    speaker, session_id = service.start_session()
    listeners = [service.listener(session_id) for _ in range(2)]

    for _ in range(3):  # 2 acks, then RATE_LIMIT_EXCEEDED
        runs.run("heartbeat", heartbeat.handler, heartbeat_event(listeners[0]))
    runs.run(
        "heartbeat (bad JSON)",
        heartbeat.handler,
        message_event(listeners[1], "{nope", route_key="heartbeat"),
    )
    joined = runs.run(
        "joinSession (bad id)",
        join_session.handler,
        message_event(
            service.connect(),
            {"action": "joinSession", "sessionId": "x", "targetLanguage": "es"},
        ),
    )
    assert reply(joined)["code"] == "INVALID_SESSION_ID"
    for _ in range(2):  # the second handshake from one IP in a minute is refused (429)
        runs.run("$connect", connect.handler, connect_event(f"Same-{_}=", ip="192.0.2.9"))
    runs.run("$disconnect (listener)", disconnect.handler, disconnect_event(listeners[1]))
    runs.run("metricsReporter", metrics_reporter.handler, {})
    runs.run("$disconnect (speaker)", disconnect.handler, disconnect_event(speaker))
    return runs


def test_every_invocation_publishes_at_most_once_and_measured_ones_exactly_once(
    traffic,
) -> None:
    # Everything but a successful $connect (which measures nothing) buffers metrics.
    if traffic.transport == "api":
        assert all(puts <= 1 for _, puts in traffic.puts), traffic.puts
        assert [label for label, puts in traffic.puts if puts == 0] == ["$connect"]
        assert all(lines == 0 for _, lines in traffic.emf_lines), traffic.emf_lines
    else:
        # No CloudWatch call at all; one EMF line per invocation (its dimension values agree).
        assert all(puts == 0 for _, puts in traffic.puts), traffic.puts
        assert all(lines <= 1 for _, lines in traffic.emf_lines), traffic.emf_lines
        assert [label for label, lines in traffic.emf_lines if lines == 0] == ["$connect"]


def test_published_dimension_sets_are_exactly_the_declared_ones(traffic) -> None:
    sets = published_dimension_sets()
    emitted = {
        "HeartbeatLatency",
        "DisconnectLatency",
        "ConnectionErrors",
        "RateLimitExceeded",
        "ActiveSessions",
        "TotalListeners",
    }
    assert emitted <= set(sets)
    for name, dimension_sets in sets.items():
        assert name in BY_NAME, f"undeclared metric {name}"
        assert dimension_sets == set(BY_NAME[name].dimension_sets), name


def test_units_and_values_read_back(traffic) -> None:
    latency = statistics("HeartbeatLatency", "Milliseconds")
    assert latency["SampleCount"] == 2  # successes only
    assert latency["Units"] == {"Milliseconds"}
    assert statistics("DisconnectLatency", "Milliseconds")["SampleCount"] == 2

    # heartbeat 429, bad JSON, bad session ID, refused handshake
    assert stored_sum("ConnectionErrors", "Count") == 4
    assert statistics("ConnectionErrors", "Count", ErrorCode="RATE_LIMIT_EXCEEDED")["Sum"] == 2
    assert statistics("ConnectionErrors", "Count", ErrorCode="INVALID_MESSAGE")["Sum"] == 1
    assert statistics("ConnectionErrors", "Count", ErrorCode="INVALID_SESSION_ID")["Sum"] == 1

    assert stored_sum("RateLimitExceeded", "Count") == 2
    assert statistics("RateLimitExceeded", "Count", Operation="heartbeat")["Sum"] == 1
    assert statistics("RateLimitExceeded", "Count", Operation="connect")["Sum"] == 1

    # The reporter ran with one session and one listener left.
    assert statistics("ActiveSessions", "Count")["Sum"] == 1
    assert statistics("TotalListeners", "Count")["Sum"] == 1
    assert statistics("TotalListeners", "Count")["Units"] == {"Count"}


def test_dimension_values_come_from_small_fixed_sets(traffic) -> None:
    # Nothing per session, user or connection: every value is from a closed vocabulary.
    allowed = {
        "Stage": {STAGE},
        ERROR_CODE: {code.value for code in ErrorCode},
        OPERATION: {function.operation for function in ROUTES},
    }
    client = boto3.client("cloudwatch")
    for metric in client.list_metrics(Namespace=DEFAULT_NAMESPACE)["Metrics"]:
        for dimension in metric["Dimensions"]:
            assert dimension["Value"] in allowed[dimension["Name"]], (metric, dimension)


def test_create_and_join_latencies_are_published(aws, service, connections, transport) -> None:
    _, session_id = service.start_session()
    service.listener(session_id)
    assert statistics("SessionCreationLatency", "Milliseconds")["SampleCount"] == 1
    assert statistics("ListenerJoinLatency", "Milliseconds")["SampleCount"] == 1
    sets = published_dimension_sets()
    assert sets["SessionCreationLatency"] == {("Stage",)}
    assert sets["ListenerJoinLatency"] == {("Stage",)}


@pytest.mark.parametrize("operation", ["heartbeat", "disconnect", "reporter"])
def test_a_failed_publish_never_fails_the_request(
    aws, service, connections, capsys, operation, monkeypatch
) -> None:
    set_env(monkeypatch, METRICS_TRANSPORT="api")
    speaker, session_id = service.start_session()
    listener = service.listener(session_id)
    capsys.readouterr()
    with Stubber(runtime_aws.cloudwatch()) as stub:
        stub.add_client_error(
            "put_metric_data", service_error_code="InternalServiceError", http_status_code=500
        )
        if operation == "heartbeat":
            response = heartbeat.handler(heartbeat_event(listener), LambdaContext())
            assert response["statusCode"] == 200
            assert reply(response)["type"] == "heartbeatAck"
        elif operation == "disconnect":
            response = disconnect.handler(disconnect_event(speaker), LambdaContext())
            assert response == {"statusCode": 200}
            assert [m["type"] for m in connections.messages(listener)] == ["sessionEnded"]
        else:
            summary = metrics_reporter.handler({}, LambdaContext())
            assert summary == {"activeSessions": 1, "totalListeners": 1}
        stub.assert_no_pending_responses()  # the publish was attempted, and failed
    warnings = [line for line in log_lines(capsys.readouterr().out) if line["level"] == "WARN"]
    assert [w["errorCode"] for w in warnings] == ["METRICS_PUBLISH_FAILED"]
