"""Fixtures for runtime tests: an isolated moto AWS, the tables, events and a Lambda context.

``aws`` uses moto's in-process ``mock_aws`` (single-threaded tests); concurrency tests use
``moto_server`` (a ThreadedMotoServer, which is thread-safe) through ``aws_server``.
"""

from __future__ import annotations

import itertools
import json
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import boto3
import pytest
from moto import mock_aws
from moto.server import ThreadedMotoServer

from local.aws_server import OneRequestAtATime
from runtime import aws as runtime_aws
from runtime.config import config
from runtime.tables import TABLES

STAGE = "test"
IP_HASH_KEY = "test-hmac-key-0123456789"
SOURCE_IP = "203.0.113.77"

ENV = {
    "STAGE": STAGE,
    "IP_HASH_KEY": IP_HASH_KEY,
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "CONNECTIONS_ENDPOINT": "https://example.execute-api.us-east-1.amazonaws.com/test",
    "AUTH_ISSUER": "https://issuer.example.test",
    "AUTH_AUDIENCE": "session-clients",
    "AUTH_JWKS_URL": "https://issuer.example.test/.well-known/jwks.json",
}


def create_tables() -> None:
    ddb = boto3.client("dynamodb")
    for table in TABLES:
        ddb.create_table(**table.create_table_kwargs(STAGE))
        ddb.update_time_to_live(
            TableName=table.physical_name(STAGE),
            TimeToLiveSpecification={"Enabled": True, "AttributeName": table.ttl_attribute},
        )


@pytest.fixture
def runtime_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    """The functions' environment; config and clients are re-read for every test."""
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    for key, value in ENV.items():
        monkeypatch.setenv(key, value)
    config.cache_clear()
    runtime_aws.reset_clients()
    yield ENV
    config.cache_clear()
    runtime_aws.reset_clients()


@pytest.fixture
def aws(runtime_env: dict[str, str]) -> Iterator[None]:
    """In-process moto with the service's tables."""
    with mock_aws():
        create_tables()
        yield


@pytest.fixture(scope="session")
def moto_server() -> Iterator[str]:
    """A moto server for concurrency tests (each request atomic, as in DynamoDB); its URL."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    server._server.app = OneRequestAtATime(server._server.app)  # type: ignore[union-attr]
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def aws_server(
    runtime_env: dict[str, str], moto_server: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[str]:
    """The runtime pointed at the moto server, with fresh tables for this test."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_server)
    config.cache_clear()
    runtime_aws.reset_clients()
    # Every test starts from empty AWS state.
    urllib.request.urlopen(
        urllib.request.Request(f"{moto_server}/moto-api/reset", method="POST")
    ).read()
    create_tables()
    yield moto_server


@dataclass
class LambdaContext:
    """The attributes of a Lambda context object the runtime reads."""

    function_name: str = "session-management-test-fn"
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    function_version: str = "$LATEST"
    memory_limit_in_mb: int = 256
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:test"
    log_group_name: str = "/aws/lambda/test"
    log_stream_name: str = "2026/11/27/[$LATEST]abc"

    def get_remaining_time_in_millis(self) -> int:
        return 10_000


_ids = itertools.count(1)


def new_connection_id() -> str:
    """An API Gateway-shaped connection ID."""
    return f"Conn{next(_ids):011d}="


def request_context(
    route_key: str, event_type: str, connection_id: str, *, connected_at: int, ip: str
) -> dict[str, Any]:
    return {
        "routeKey": route_key,
        "eventType": event_type,
        "connectionId": connection_id,
        "connectedAt": connected_at,
        "requestId": str(uuid.uuid4()),
        "extendedRequestId": str(uuid.uuid4()),
        "requestTimeEpoch": connected_at,
        "domainName": "example.execute-api.us-east-1.amazonaws.com",
        "stage": STAGE,
        "apiId": "example",
        "messageDirection": "IN",
        "identity": {"sourceIp": ip},
    }


def connect_event(
    connection_id: str, *, token: str | None = None, ip: str = SOURCE_IP, connected_at: int = 0
) -> dict[str, Any]:
    connected_at = connected_at or int(time.time() * 1000)
    return {
        "headers": {"Host": "example.execute-api.us-east-1.amazonaws.com"},
        "queryStringParameters": {"token": token} if token is not None else None,
        "requestContext": request_context(
            "$connect", "CONNECT", connection_id, connected_at=connected_at, ip=ip
        ),
        "isBase64Encoded": False,
    }


def message_event(
    connection_id: str,
    body: Any,
    *,
    route_key: str | None = None,
    ip: str = SOURCE_IP,
    connected_at: int = 0,
) -> dict[str, Any]:
    """A MESSAGE event; dict bodies are JSON-encoded and routed by their action like API GW."""
    text = json.dumps(body) if isinstance(body, dict | list) else body
    if route_key is None:
        route_key = body.get("action", "$default") if isinstance(body, dict) else "$default"
    context = request_context(
        route_key,
        "MESSAGE",
        connection_id,
        connected_at=connected_at or int(time.time() * 1000),
        ip=ip,
    )
    context["messageId"] = str(uuid.uuid4())
    return {"body": text, "requestContext": context, "isBase64Encoded": False}


def disconnect_event(
    connection_id: str, *, ip: str = SOURCE_IP, connected_at: int = 0
) -> dict[str, Any]:
    context = request_context(
        "$disconnect",
        "DISCONNECT",
        connection_id,
        connected_at=connected_at or int(time.time() * 1000),
        ip=ip,
    )
    context["disconnectStatusCode"] = 1000
    context["disconnectReason"] = "Client closed"
    return {"headers": {}, "requestContext": context, "isBase64Encoded": False}


def reply(response: dict[str, Any]) -> dict[str, Any]:
    """The message a client receives from a two-way route response."""
    return json.loads(response["body"])


@pytest.fixture
def context() -> LambdaContext:
    return LambdaContext()
