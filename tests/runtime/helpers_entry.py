"""Test helpers for the entry handlers: a real RSA issuer with its JWKS on a local HTTP server,
forged tokens, an AWS call counter, and shortcuts for connecting, creating and joining.

Its fixtures (``issuer``, ``race_prone``) are registered for every test by the root
conftest's ``pytest_plugins``; tests request them by name.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import json
import socket
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from runtime import auth
from runtime import aws as runtime_aws
from runtime.config import config
from runtime.handlers import connect, create_session, join_session
from tests.support.cloudwatch_logs import CloudWatchLogs
from tests.support.lambda_events import (
    LambdaContext,
    connect_event,
    message_event,
    new_connection_id,
    reply,
)
from tests.support.runtime_env import ENV

ISSUER = ENV["AUTH_ISSUER"]
AUDIENCE = ENV["AUTH_AUDIENCE"]
KID = "test-key-1"
JWKS_PATH = "/.well-known/jwks.json"


@functools.cache
def rsa_key(name: str = "issuer") -> rsa.RSAPrivateKey:
    """A real 2048-bit RSA key, one per name per test session (generation is slow-ish)."""
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def public_pem(key: rsa.RSAPrivateKey) -> bytes:
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def jwks_of(key: rsa.RSAPrivateKey, kid: str = KID) -> dict[str, Any]:
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
    return {"keys": [{**jwk, "kid": kid, "alg": "RS256", "use": "sig"}]}


def claims(user: str = "user-123", **overrides: Any) -> dict[str, Any]:
    """Cognito-shaped ID token claims, valid for an hour."""
    now = int(time.time())
    base = {
        "sub": user,
        "iss": ISSUER,
        "aud": AUDIENCE,
        "iat": now,
        "exp": now + 3600,
        "token_use": "id",
        "cognito:username": f"name-of-{user}",
    }
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


def sign(payload: dict[str, Any], key: rsa.RSAPrivateKey | None = None, kid: str = KID) -> str:
    return jwt.encode(payload, key or rsa_key(), algorithm="RS256", headers={"kid": kid})


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _segments(header: dict[str, Any], payload: dict[str, Any]) -> str:
    return _b64(json.dumps(header).encode()) + "." + _b64(json.dumps(payload).encode())


def alg_none_token(payload: dict[str, Any]) -> str:
    """An unsigned token (``alg: none``), built by hand as an attacker would."""
    return _segments({"alg": "none", "typ": "JWT", "kid": KID}, payload) + "."


def hs256_with_public_key(payload: dict[str, Any], key: rsa.RSAPrivateKey) -> str:
    """The algorithm-confusion attack: HS256 with the issuer's *public* key as the secret."""
    signing_input = _segments({"alg": "HS256", "typ": "JWT", "kid": KID}, payload)
    mac = hmac.new(public_pem(key), signing_input.encode(), hashlib.sha256).digest()
    return signing_input + "." + _b64(mac)


class _JwksHandler(BaseHTTPRequestHandler):
    server: _JwksHTTPServer

    def do_GET(self) -> None:
        state = self.server.state
        state.requests += 1
        if state.mode == "hang" and state.released.wait(state.hang_seconds):
            return  # the test is over: nobody is waiting for an answer
        if state.mode == "error":
            self.send_response(500)
            self.end_headers()
            return
        body = b"<html>not json</html>" if state.mode == "notjson" else json.dumps(state.jwks)
        body = body if isinstance(body, bytes) else body.encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def handle_one_request(self) -> None:
        # A client that gave up (a timed-out JWKS fetch) hangs up before the answer: that is
        # the scenario under test, not an error to print into the test output.
        try:
            super().handle_one_request()
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def log_message(self, format: str, *args: Any) -> None:  # keep test output clean
        return


@dataclass
class _State:
    jwks: dict[str, Any]
    mode: str = "ok"  # ok | hang | error | notjson
    hang_seconds: float = 3.0
    requests: int = 0
    released: threading.Event = field(default_factory=threading.Event)  # set at teardown


class _JwksHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    state: _State


@dataclass
class Issuer:
    """A trusted identity provider: its key, its JWKS server and a token factory."""

    key: rsa.RSAPrivateKey
    jwks_url: str
    state: _State
    server: _JwksHTTPServer = field(repr=False)

    def token(self, user: str = "user-123", **overrides: Any) -> str:
        return sign(claims(user, **overrides), self.key)

    @property
    def requests(self) -> int:
        return self.state.requests


def closed_port() -> int:
    """A local port with nothing listening (connection refused, immediately)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def use_jwks_url(monkeypatch: pytest.MonkeyPatch, url: str) -> None:
    monkeypatch.setenv("AUTH_JWKS_URL", url)
    config.cache_clear()
    auth.clear_cache()


@pytest.fixture(name="issuer")
def issuer_fixture(aws: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[Issuer]:
    """The runtime trusting a real RSA key whose JWKS is served on 127.0.0.1."""
    key = rsa_key()
    state = _State(jwks=jwks_of(key))
    server = _JwksHTTPServer(("127.0.0.1", 0), _JwksHandler)
    server.state = state
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_address[1]}{JWKS_PATH}"
    use_jwks_url(monkeypatch, url)
    try:
        yield Issuer(key=key, jwks_url=url, state=state, server=server)
    finally:
        state.released.set()
        server.shutdown()
        server.server_close()
        auth.clear_cache()


@dataclass
class CallLog:
    """AWS calls seen: ``names`` like ``dynamodb.UpdateItem(<RateLimits table>)``."""

    names: list[str] = field(default_factory=list)
    # Every MetricData entry sent with PutMetricData, or extracted from the EMF lines written.
    metric_data: list[dict[str, Any]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.names)

    def metric_sum(self, name: str, **dimensions: str) -> float:
        """Sum of ``name`` published with exactly Stage + ``dimensions``."""
        total = 0.0
        wanted = {"Stage": ENV["STAGE"], **dimensions}
        for datum in self.metric_data:
            dims = {d["Name"]: d["Value"] for d in datum["Dimensions"]}
            if datum["MetricName"] == name and dims == wanted:
                total += sum(v * c for v, c in zip(datum["Values"], datum["Counts"], strict=True))
        return total


@pytest.fixture(name="race_prone")
def race_prone_fixture() -> Iterator[None]:
    """Switch threads very often, so a check-then-act race shows up instead of hiding."""
    previous = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)
    try:
        yield
    finally:
        sys.setswitchinterval(previous)


@contextmanager
def aws_calls() -> Iterator[CallLog]:
    """Every AWS API call the runtime's clients make inside the block.

    Counted with botocore's ``before-call`` event: once per API call, retries not included.
    """
    log = CallLog()
    pending: list[dict[str, Any]] = [{}]

    def parameters(params: dict[str, Any], **_: Any) -> None:
        # before-call sees the serialized request; the API parameters are seen here, just before.
        pending[0] = params

    def hook(model: Any, **_: Any) -> None:
        name = f"{model.service_model.service_name}.{model.name}"
        params = pending[0]
        table = params.get("TableName")
        log.names.append(f"{name}({table})" if table else name)
        if model.name == "PutMetricData":
            log.metric_data.extend(params["MetricData"])

    clients = [runtime_aws.dynamodb(), runtime_aws.cloudwatch(), runtime_aws.connections()]
    for client in clients:
        client.meta.events.register(
            "before-parameter-build.*.*", parameters, unique_id="count-calls-params"
        )
        client.meta.events.register("before-call.*.*", hook, unique_id="count-calls")
    emulation = CloudWatchLogs.current
    seen = len(emulation.documents) if emulation else 0
    try:
        yield log
    finally:
        if emulation is not None:
            log.metric_data.extend(emulation.metric_data(seen))
        for client in clients:
            client.meta.events.unregister("before-call.*.*", unique_id="count-calls")
            client.meta.events.unregister(
                "before-parameter-build.*.*", unique_id="count-calls-params"
            )


# --- shortcuts -----------------------------------------------------------------------------------


def do_connect(
    token: str | None = None, *, ip: str = "198.51.100.7", connection_id: str | None = None
) -> tuple[str, dict[str, Any]]:
    """Run ``$connect``; returns (connection ID, Lambda response)."""
    cid = connection_id or new_connection_id()
    return cid, connect.handler(connect_event(cid, token=token, ip=ip), LambdaContext())


def send(
    handler: Any, connection_id: str, body: Any, *, ip: str = "198.51.100.7"
) -> dict[str, Any]:
    """Send a message through a route handler; the reply the client sees."""
    return reply(handler(message_event(connection_id, body, ip=ip), LambdaContext()))


def speaker(issuer: Issuer, user: str = "user-123", *, ip: str = "198.51.100.7") -> str:
    cid, response = do_connect(issuer.token(user), ip=ip)
    assert response["statusCode"] == 200, response
    return cid


def new_session(
    issuer: Issuer, user: str = "user-123", source: str = "en", *, ip: str = "198.51.100.7"
) -> tuple[str, str]:
    """A speaker connection and its new session: (speaker connection ID, session ID)."""
    cid = speaker(issuer, user, ip=ip)
    created = send(
        create_session.handler, cid, {"action": "createSession", "sourceLanguage": source}, ip=ip
    )
    assert created["type"] == "sessionCreated", created
    return cid, created["sessionId"]


def listener(ip: str = "198.51.100.7") -> str:
    cid, response = do_connect(ip=ip)
    assert response["statusCode"] == 200, response
    return cid


def join(
    connection_id: str, session_id: str, language: str = "es", *, ip: str = "198.51.100.7"
) -> dict[str, Any]:
    return send(
        join_session.handler,
        connection_id,
        {"action": "joinSession", "sessionId": session_id, "targetLanguage": language},
        ip=ip,
    )


ERROR_KEYS = {"type", "code", "status", "message", "requestId", "timestamp", "details"}


def assert_error(message: dict[str, Any], code: str, status: int) -> dict[str, Any]:
    """The full error shape (docs/architecture.md#protocol); returns ``details``."""
    assert set(message) == ERROR_KEYS, message
    assert message["type"] == "error"
    assert message["code"] == code, message
    assert message["status"] == status
    assert isinstance(message["message"], str) and message["message"]
    assert isinstance(message["requestId"], str) and message["requestId"]
    assert isinstance(message["timestamp"], int)
    assert abs(message["timestamp"] - time.time() * 1000) < 60_000  # epoch milliseconds
    assert isinstance(message["details"], dict)
    return message["details"]
