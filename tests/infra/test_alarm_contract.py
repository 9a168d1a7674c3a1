"""Contract: every alarm on a custom metric watches a metric and dimension set really emitted,
and the alarms page for what an operator must act on, never for what a client causes alone.

The runtime's handlers run against moto (tables created from ``runtime.tables``, a speaker
token signed by a local JWKS server), exercising every alarmed path: a session created, a
listener joined, an error reply, a server error, the scheduled reporter, a degradation survived
(the RateLimits table gone, so a handshake's rate limit fails open). They publish as they do by
default, as EMF in their log lines; the ``CloudWatchLogs`` emulation extracts the metrics into
moto CloudWatch, where they are read back with ``list_metrics`` and compared with the alarms
the Pulumi program creates for the same stack. The alarms are then evaluated, as CloudWatch
would over one period, on the metrics of a burst of 1,000 client-caused error replies (none
may fire) and of a burst of server errors (the server-errors alarm must).
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import boto3
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from moto import mock_aws
from moto.cloudwatch.models import cloudwatch_backends
from moto.core import DEFAULT_ACCOUNT_ID

from components.monitoring import ALARMS
from runtime import aws as runtime_aws
from runtime import metric_names, store
from runtime.config import config
from runtime.hash_key import PARAMETER_ENV, parameter_name_for
from runtime.settings import BY_KEY, PROJECT, parse_settings
from runtime.tables import RATE_LIMITS, SESSIONS, TABLES
from tests.infra.harness import ProgramRun
from tests.support.clock import FrozenClock
from tests.support.cloudwatch_logs import CloudWatchLogs
from tests.support.lambda_events import LambdaContext, connect_event, message_event, reply

STAGE = "dev"  # the stack whose alarms are compared
REGION = "eu-west-1"
ISSUER = "https://issuer.contract.test"
AUDIENCE = "speaker-app"
KID = "contract-key"


class _Jwks(BaseHTTPRequestHandler):
    body = b"{}"

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, format: str, *args: Any) -> None:
        return


@pytest.fixture
def signing_key() -> Iterator[tuple[rsa.RSAPrivateKey, str]]:
    """An RSA key and the URL of a local JWKS endpoint that publishes it."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
    handler = type("Jwks", (_Jwks,), {"body": json.dumps({"keys": [{**jwk, "kid": KID}]}).encode()})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield key, f"http://127.0.0.1:{server.server_address[1]}/.well-known/jwks.json"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def runtime_aws_env(
    monkeypatch: pytest.MonkeyPatch,
    signing_key: tuple[rsa.RSAPrivateKey, str],
    frozen_clock: FrozenClock,
) -> Iterator[CloudWatchLogs]:
    """The functions' environment as the program renders it, on moto, with their clock held
    still: a burst's per-minute budgets must not roll over midway (a burst that crossed a
    minute once counted 10 SESSION_NOT_FOUND against a budget of 5)."""
    _, jwks_url = signing_key
    env = {
        **parse_settings(STAGE, {}).runtime_environment(),
        **{table.env: table.physical_name(STAGE) for table in TABLES},
        "CONNECTIONS_ENDPOINT": f"https://contract.execute-api.{REGION}.amazonaws.com/{STAGE}",
        PARAMETER_ENV: parameter_name_for(f"session-management-{STAGE}"),
        BY_KEY["authIssuer"].env: ISSUER,
        BY_KEY["authAudience"].env: AUDIENCE,
        BY_KEY["authJwksUrl"].env: jwks_url,
        "AWS_DEFAULT_REGION": REGION,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
    }
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    emulation = CloudWatchLogs().observe(monkeypatch)
    with mock_aws():
        config.cache_clear()
        runtime_aws.reset_clients()
        dynamodb = boto3.client("dynamodb", region_name=REGION)
        for table in TABLES:
            dynamodb.create_table(**table.create_table_kwargs(STAGE))
        boto3.client("ssm", region_name=REGION).put_parameter(
            Name=parameter_name_for(f"session-management-{STAGE}"),
            Value="contract-hmac-key",
            Type="SecureString",
        )
        emulation.publish = True
        try:
            yield emulation
        finally:
            config.cache_clear()
            runtime_aws.reset_clients()
    assert emulation.documents, "the functions wrote no EMF lines"
    assert not emulation.invalid, emulation.invalid


def connect(connection_id: str, ip: str, token: str | None = None) -> dict[str, Any]:
    from runtime.handlers import connect as handler

    response = handler.handler(connect_event(connection_id, token=token, ip=ip), LambdaContext())
    assert response["statusCode"] == 200, response
    return response


def send(module: Any, connection_id: str, ip: str, body: dict[str, Any]) -> dict[str, Any]:
    return reply(module.handler(message_event(connection_id, body, ip=ip), LambdaContext()))


def emitted_metrics() -> set[tuple[str, frozenset[tuple[str, str]]]]:
    """(metric name, {(dimension, value)}) of everything published, from moto CloudWatch."""
    cloudwatch = boto3.client("cloudwatch", region_name=REGION)
    namespace = parse_settings(STAGE, {}).metricsNamespace
    found = set()
    for page in cloudwatch.get_paginator("list_metrics").paginate(Namespace=namespace):
        for metric in page["Metrics"]:
            dims = frozenset((d["Name"], d["Value"]) for d in metric["Dimensions"])
            found.add((metric["MetricName"], dims))
    return found


def exercise_alarmed_paths(key: rsa.RSAPrivateKey) -> None:
    """Drive the handlers through every path that publishes an alarmed metric."""
    from runtime.handlers import create_session, join_session, metrics_reporter

    now = int(time.time())
    token = jwt.encode(
        {
            "sub": "speaker-1",
            "iss": ISSUER,
            "aud": AUDIENCE,
            "iat": now,
            "exp": now + 600,
            "token_use": "id",
        },
        key,
        algorithm="RS256",
        headers={"kid": KID},
    )
    connect("SpeakerConn0001=", "198.51.100.10", token)
    created = send(
        create_session, "SpeakerConn0001=", "198.51.100.10",
        {"action": "createSession", "sourceLanguage": "en"},
    )  # fmt: skip
    assert created["type"] == "sessionCreated", created

    connect("ListenConn00001=", "198.51.100.20")
    joined = send(
        join_session, "ListenConn00001=", "198.51.100.20",
        {"action": "joinSession", "sessionId": created["sessionId"], "targetLanguage": "es"},
    )  # fmt: skip
    assert joined["type"] == "sessionJoined", joined

    # An error reply: a listener without a token may not create a session.
    refused = send(
        create_session, "ListenConn00001=", "198.51.100.20",
        {"action": "createSession", "sourceLanguage": "en"},
    )  # fmt: skip
    assert refused["type"] == "error", refused

    scheduled = {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": "123456789012",
        "time": "2026-01-01T00:00:00Z",
        "region": REGION,
        "resources": [f"arn:aws:events:{REGION}:123456789012:rule/{PROJECT}-{STAGE}-reporter"],
        "detail": {},
    }
    metrics_reporter.handler(scheduled, LambdaContext())

    # A degradation the request survives: without its RateLimits table a handshake's rate
    # limit fails open, and the handshake is still accepted (DependencyFailures).
    boto3.client("dynamodb", region_name=REGION).delete_table(
        TableName=RATE_LIMITS.physical_name(STAGE)
    )
    connect("ListenConn00002=", "198.51.100.30")


def server_error(create_session: Any) -> None:
    """One INTERNAL_ERROR reply: a bug in the data layer, as a createSession meets it."""
    raise RuntimeError("injected bug")


@pytest.fixture
def emitted(
    runtime_aws_env: CloudWatchLogs,
    signing_key: tuple[rsa.RSAPrivateKey, str],
    monkeypatch: pytest.MonkeyPatch,
) -> set[tuple[str, frozenset[tuple[str, str]]]]:
    exercise_alarmed_paths(signing_key[0])
    # A server error (ServerErrors): the data layer fails unexpectedly under a join.
    from runtime.handlers import join_session

    with monkeypatch.context() as patch:
        patch.setattr(store, "add_listener", lambda *a, **k: server_error(None))
        failed = send(
            join_session, "ListenConn00003=", "198.51.100.40",
            {"action": "joinSession", "sessionId": "golden-eagle-427", "targetLanguage": "es"},
        )  # fmt: skip
    assert failed["code"] == "INTERNAL_ERROR", failed
    return emitted_metrics()


def test_every_custom_metric_alarm_watches_an_emitted_metric_and_dimension_set(
    emitted: set[tuple[str, frozenset[tuple[str, str]]]], dev: ProgramRun
):
    namespace = parse_settings(STAGE, {}).metricsNamespace
    alarms = [
        a for a in dev.of_type("aws:cloudwatch/metricAlarm:MetricAlarm")
        if a["namespace"] == namespace
    ]  # fmt: skip
    # Every alarm of the monitoring component is there, so none escapes the comparison.
    assert {a["name"].removeprefix(f"{PROJECT}-{STAGE}-") for a in alarms} == {
        spec.slug for spec in ALARMS
    }
    for alarm in alarms:
        watched = (alarm["metricName"], frozenset(alarm["dimensions"].items()))
        assert watched in emitted, (
            f"alarm {alarm['name']} watches {watched}, which the runtime never published; "
            f"published: {sorted((n, sorted(d)) for n, d in emitted)}"
        )


def test_the_runtime_emits_only_declared_metrics_and_dimension_sets(
    emitted: set[tuple[str, frozenset[tuple[str, str]]]],
):
    for name, dimensions in emitted:
        spec = metric_names.BY_NAME[name]
        assert tuple(sorted(d for d, _ in dimensions)) in {
            tuple(sorted(s)) for s in spec.dimension_sets
        }
        assert dict(dimensions)[metric_names.STAGE] == STAGE


def test_a_degradation_survived_is_published_as_the_alarmed_dependency_failures(
    emitted: set[tuple[str, frozenset[tuple[str, str]]]],
):
    name = metric_names.DEPENDENCY_FAILURES.name
    stage = (metric_names.STAGE, STAGE)
    # The total the alarm watches, and the breakdown the dashboard searches.
    assert (name, frozenset({stage})) in emitted
    assert (name, frozenset({stage, (metric_names.OPERATION, "rateLimits")})) in emitted


# --- what pages and what does not ----------------------------------------------------------------


def stored_values(namespace: str, name: str, dimensions: dict[str, str]) -> list[float]:
    """Values stored under exactly ``dimensions`` (moto's queries match any superset)."""
    backend = cloudwatch_backends[DEFAULT_ACCOUNT_ID][REGION]
    return [
        datum.value
        for datum in backend.get_all_metrics()
        if datum.namespace == namespace
        and datum.name == name
        and {d.name: d.value for d in datum.dimensions} == dimensions
    ]


def _statistic(values: list[float], statistic: str) -> float:
    if statistic == "Sum":
        return sum(values)
    if statistic == "Maximum":
        return max(values)
    if statistic.startswith("p"):  # nearest rank
        ordered = sorted(values)
        rank = max(1, -(-len(ordered) * float(statistic[1:]) // 100))
        return ordered[int(rank) - 1]
    raise ValueError(statistic)


COMPARE = {
    "GreaterThanThreshold": lambda value, threshold: value > threshold,
    "GreaterThanOrEqualToThreshold": lambda value, threshold: value >= threshold,
}


def firing_alarms(run: ProgramRun) -> dict[str, float]:
    """Custom-metric alarms of the program breaching on everything published so far, as one
    period (the bursts last seconds): slug → the statistic. No data is not breaching; 2-of-2
    alarms count as firing on one breaching period (stricter for a "no page" claim)."""
    namespace = parse_settings(STAGE, {}).metricsNamespace
    firing = {}
    for alarm in run.of_type("aws:cloudwatch/metricAlarm:MetricAlarm"):
        if alarm["namespace"] != namespace:
            continue
        values = stored_values(namespace, alarm["metricName"], alarm["dimensions"])
        if not values:
            continue
        value = _statistic(values, alarm.get("statistic") or alarm["extendedStatistic"])
        if COMPARE[alarm["comparisonOperator"]](value, alarm["threshold"]):
            firing[alarm["name"].removeprefix(f"{PROJECT}-{STAGE}-")] = value
    return firing


def client_caused_errors(count_by_code: dict[str, int]) -> list[dict[str, Any]]:
    """Drive ``count_by_code`` error replies that clients cause alone; the responses."""
    from runtime.handlers import connect as connect_handler
    from runtime.handlers import create_session, default, join_session

    responses: list[dict[str, Any]] = []

    def message(module: Any, cid: str, ip: str, body: Any) -> None:
        responses.append(module.handler(message_event(cid, body, ip=ip), LambdaContext()))

    for i in range(count_by_code["INVALID_MESSAGE"]):
        message(default, f"Client{i:09d}=", "198.51.100.50", "not json")
    for i in range(count_by_code["INVALID_ACTION"]):
        message(default, f"Client{i:09d}=", "198.51.100.51", {"action": "dance"})
    for i in range(count_by_code["INVALID_SESSION_ID"]):
        body = {"action": "joinSession", "sessionId": "no such thing", "targetLanguage": "es"}
        message(join_session, f"Client{i:09d}=", "198.51.100.52", body)
    # One address joining an unknown session: refused until its failed-lookup budget
    # (sessionLookupFailuresPerMinute) is spent, then rate-limited.
    joins = count_by_code["SESSION_NOT_FOUND"] + count_by_code["RATE_LIMIT_EXCEEDED (join)"]
    for i in range(joins):
        body = {"action": "joinSession", "sessionId": "quiet-lake-555", "targetLanguage": "es"}
        message(join_session, f"Joiner{i:09d}=", "198.51.100.53", body)
    for i in range(count_by_code["UNAUTHORIZED"]):
        connect(f"NoToken{i:08d}=", f"198.51.101.{i % 250}")
        message(create_session, f"NoToken{i:08d}=", f"198.51.101.{i % 250}",
                {"action": "createSession", "sourceLanguage": "en"})  # fmt: skip
    # One address over its handshake bucket: 429s (the accepted handshakes are not errors).
    attempts = config().connectionBurstPerAddress + count_by_code["RATE_LIMIT_EXCEEDED (connect)"]
    for i in range(attempts):
        event = connect_event(f"Flood{i:010d}=", ip="198.51.100.54")
        responses.append(connect_handler.handler(event, LambdaContext()))
    return responses


def test_a_burst_of_1000_client_caused_error_replies_pages_no_one(
    runtime_aws_env: CloudWatchLogs, dev: ProgramRun, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A handshake bucket of 20 that refills one a minute: no token comes back during the
    # burst, so exactly the planned handshakes are refused.
    monkeypatch.setenv("CONNECTION_BURST_PER_ADDRESS", "20")
    monkeypatch.setenv("CONNECTION_ATTEMPTS_PER_MINUTE", "1")
    config.cache_clear()
    counts = {
        "INVALID_MESSAGE": 240,
        "INVALID_ACTION": 250,
        "INVALID_SESSION_ID": 150,
        "SESSION_NOT_FOUND": config().sessionLookupFailuresPerMinute,
        "RATE_LIMIT_EXCEEDED (join)": 155,
        "UNAUTHORIZED": 100,
        "RATE_LIMIT_EXCEEDED (connect)": 100,
    }
    assert sum(counts.values()) == 1000
    responses = client_caused_errors(counts)
    # Every invocation answered (no Lambda Errors for the per-function alarms to count).
    assert all(isinstance(r, dict) and "statusCode" in r for r in responses)
    errors = [r for r in responses if r["statusCode"] >= 400]
    assert len(errors) == 1000 and all(r["statusCode"] < 500 for r in errors)

    namespace = parse_settings(STAGE, {}).metricsNamespace
    stage = {metric_names.STAGE: STAGE}
    # Graphed: every one of them is on the dashboard's ConnectionErrors by ErrorCode ...
    assert sum(stored_values(namespace, "ConnectionErrors", stage)) == 1000
    for code in ("INVALID_MESSAGE", "INVALID_ACTION", "UNAUTHORIZED", "SESSION_NOT_FOUND"):
        by_code = {**stage, metric_names.ERROR_CODE: code}
        assert sum(stored_values(namespace, "ConnectionErrors", by_code)) == counts[code]
    # ... and the rejections on RateLimitExceeded by Operation.
    for operation, key in (("joinSession", "join"), ("connect", "connect")):
        by_operation = {**stage, metric_names.OPERATION: operation}
        assert (
            sum(stored_values(namespace, "RateLimitExceeded", by_operation))
            == counts[f"RATE_LIMIT_EXCEEDED ({key})"]
        )
    # Paged: nothing. Not one server error among them.
    assert stored_values(namespace, "ServerErrors", stage) == []
    assert firing_alarms(dev) == {}


def test_a_burst_of_server_errors_fires_the_server_errors_alarm(
    runtime_aws_env: CloudWatchLogs, dev: ProgramRun, monkeypatch: pytest.MonkeyPatch
) -> None:
    from runtime.handlers import join_session

    threshold = parse_settings(STAGE, {}).serverErrorsPer5Min
    internal, unavailable = threshold // 2 + 1, threshold // 2 + 1  # together over it
    body = {"action": "joinSession", "sessionId": "golden-eagle-427", "targetLanguage": "es"}
    with monkeypatch.context() as patch:
        patch.setattr(store, "add_listener", lambda *a, **k: server_error(None))
        replies = [
            send(join_session, f"Bugged{i:09d}=", f"198.51.102.{i}", body) for i in range(internal)
        ]
    boto3.client("dynamodb", region_name=REGION).delete_table(
        TableName=SESSIONS.physical_name(STAGE)
    )  # DynamoDB failing: SERVICE_UNAVAILABLE
    replies += [
        send(join_session, f"Outage{i:09d}=", f"198.51.103.{i}", body) for i in range(unavailable)
    ]
    assert [r["code"] for r in replies] == ["INTERNAL_ERROR"] * internal + [
        "SERVICE_UNAVAILABLE"
    ] * unavailable

    namespace = parse_settings(STAGE, {}).metricsNamespace
    stage = {metric_names.STAGE: STAGE}
    assert sum(stored_values(namespace, "ServerErrors", stage)) == internal + unavailable
    for code, n in (("INTERNAL_ERROR", internal), ("SERVICE_UNAVAILABLE", unavailable)):
        by_code = {**stage, metric_names.ERROR_CODE: code}
        assert sum(stored_values(namespace, "ServerErrors", by_code)) == n
    assert firing_alarms(dev) == {"server-errors": internal + unavailable}
