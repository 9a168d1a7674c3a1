"""Contract: every alarm on a custom metric watches a metric and dimension set really emitted.

The runtime's handlers run against moto (tables created from ``runtime.tables``, a speaker
token signed by a local JWKS server), exercising every alarmed path: a session created, a
listener joined, an error reply, the scheduled reporter, a degradation survived (the
RateLimits table gone, so a handshake's rate limit fails open). The metrics they publish are
read back from moto CloudWatch with ``list_metrics`` and compared with the alarms the Pulumi
program creates for the same stack.
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

from components.monitoring import ALARMS
from runtime import aws as runtime_aws
from runtime import metric_names
from runtime.config import config
from runtime.settings import BY_KEY, PROJECT, parse_settings
from runtime.tables import RATE_LIMITS, TABLES
from tests.infra.harness import ProgramRun
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
    monkeypatch: pytest.MonkeyPatch, signing_key: tuple[rsa.RSAPrivateKey, str]
) -> Iterator[None]:
    """The functions' environment as the program renders it, on moto."""
    _, jwks_url = signing_key
    env = {
        **parse_settings(STAGE, {}).runtime_environment(),
        **{table.env: table.physical_name(STAGE) for table in TABLES},
        "CONNECTIONS_ENDPOINT": f"https://contract.execute-api.{REGION}.amazonaws.com/{STAGE}",
        BY_KEY["ipHashKey"].env: "contract-hmac-key",
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
    with mock_aws():
        config.cache_clear()
        runtime_aws.reset_clients()
        dynamodb = boto3.client("dynamodb", region_name=REGION)
        for table in TABLES:
            dynamodb.create_table(**table.create_table_kwargs(STAGE))
        try:
            yield
        finally:
            config.cache_clear()
            runtime_aws.reset_clients()


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


@pytest.fixture
def emitted(
    runtime_aws_env: None, signing_key: tuple[rsa.RSAPrivateKey, str]
) -> set[tuple[str, frozenset[tuple[str, str]]]]:
    exercise_alarmed_paths(signing_key[0])
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
