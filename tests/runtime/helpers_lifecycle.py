"""Fixtures and builders for the heartbeat / disconnect / fan-out / metrics tests.

Its fixtures (``connections``, ``service``) are registered for every test by the root
conftest's ``pytest_plugins``; tests request them by name.

``connections`` is a real HTTP stand-in for the @connections API (bench.connections_server):
the runtime's apigatewaymanagementapi client talks to it over 127.0.0.1, so 410 Gone and
concurrency are real. State is set up through the service's own handlers ($connect,
createSession, joinSession); only what no handler can produce is written directly.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from bench.connections_server import ConnectionsServer
from runtime import auth
from runtime import aws as runtime_aws
from runtime.config import config
from runtime.handlers import connect, create_session, join_session, refresh_connection
from tests.runtime.helpers_entry import claims, jwks_of, rsa_key, sign
from tests.support.lambda_events import (
    LambdaContext,
    connect_event,
    message_event,
    new_connection_id,
    reply,
)
from tests.support.runtime_env import STAGE


@pytest.fixture(name="connections")
def connections_fixture(
    runtime_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> Iterator[Any]:
    """A recording @connections endpoint; CONNECTIONS_ENDPOINT points the runtime at it."""
    with ConnectionsServer(STAGE) as server:
        monkeypatch.setenv("CONNECTIONS_ENDPOINT", server.endpoint)
        config.cache_clear()
        runtime_aws.reset_clients()
        yield server
    config.cache_clear()
    runtime_aws.reset_clients()


def set_env(monkeypatch: pytest.MonkeyPatch, **values: str | int) -> None:
    """Override settings (``MAX_LISTENERS_PER_SESSION=150``) and make the runtime re-read them."""
    for key, value in values.items():
        monkeypatch.setenv(key, str(value))
    config.cache_clear()


class _JwksServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256
    body = b"{}"


class _JwksHandler(BaseHTTPRequestHandler):
    server: _JwksServer

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(self.server.body)))
        self.end_headers()
        self.wfile.write(self.server.body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@dataclass
class Service:
    """The real entry handlers, driven like clients do; every connection gets its own IP so
    the per-IP limits of $connect and joinSession never interfere with a test's intent."""

    connections: ConnectionsServer
    _ips: Iterator[int] = field(default_factory=lambda: itertools.count(1))
    _users: Iterator[int] = field(default_factory=lambda: itertools.count(1))
    # Session ID → the user who created it (a speaker refresh needs the same user's token).
    speakers: dict[str, str] = field(default_factory=dict)

    def next_ip(self) -> str:
        n = next(self._ips)
        return f"198.18.{n // 250}.{n % 250 + 1}"  # RFC 2544 benchmarking range

    def connect(self, *, user: str | None = None, connected_at: int = 0) -> str:
        cid = new_connection_id()
        token = sign(claims(user)) if user else None
        event = connect_event(cid, token=token, ip=self.next_ip(), connected_at=connected_at)
        response = connect.handler(event, LambdaContext())
        assert response["statusCode"] == 200, response
        return cid

    def create(self, speaker: str, source_language: str = "en") -> dict[str, Any]:
        body = {"action": "createSession", "sourceLanguage": source_language}
        return reply(create_session.handler(message_event(speaker, body), LambdaContext()))

    def start_session(self) -> tuple[str, str]:
        """A verified speaker's connection and its new session: (connection ID, session ID)."""
        user = f"speaker-{next(self._users)}"
        speaker = self.connect(user=user)
        created = self.create(speaker)
        assert created["type"] == "sessionCreated", created
        self.speakers[created["sessionId"]] = user
        return speaker, created["sessionId"]

    def refresh(self, session_id: str, role: str, language: str | None = None) -> str:
        """A new connection that took over a role through ``refreshConnection``; its ID."""
        cid = self.connect(user=self.speakers[session_id] if role == "speaker" else None)
        body = {"action": "refreshConnection", "sessionId": session_id, "role": role}
        if language:
            body["targetLanguage"] = language
        event = message_event(cid, body, ip=self.next_ip())
        refreshed = reply(refresh_connection.handler(event, LambdaContext()))
        assert refreshed["type"] == "connectionRefreshComplete", refreshed
        return cid

    def join(self, connection_id: str, session_id: str, language: str = "es") -> dict[str, Any]:
        body = {"action": "joinSession", "sessionId": session_id, "targetLanguage": language}
        event = message_event(connection_id, body, ip=self.next_ip())
        return reply(join_session.handler(event, LambdaContext()))

    def listener(self, session_id: str, language: str = "es") -> str:
        """A new connection that joined ``session_id``; its ID."""
        cid = self.connect()
        joined = self.join(cid, session_id, language)
        assert joined["type"] == "sessionJoined", joined
        return cid


@pytest.fixture(name="service")
def service_fixture(
    connections: ConnectionsServer, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Service]:
    """Speakers' tokens verified against a local JWKS; pushes recorded by ``connections``."""
    jwks = _JwksServer(("127.0.0.1", 0), _JwksHandler)
    jwks.body = json.dumps(jwks_of(rsa_key())).encode()
    thread = threading.Thread(target=jwks.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    monkeypatch.setenv("AUTH_JWKS_URL", f"http://127.0.0.1:{jwks.server_address[1]}/jwks.json")
    config.cache_clear()
    auth.clear_cache()
    try:
        yield Service(connections)
    finally:
        jwks.shutdown()
        jwks.server_close()
        auth.clear_cache()


def heartbeat_event(connection_id: str, *, age_s: float = 0) -> dict[str, Any]:
    """A heartbeat from a connection opened ``age_s`` seconds ago."""
    connected_at = int((time.time() - age_s) * 1000)
    return message_event(connection_id, {"action": "heartbeat"}, connected_at=connected_at)


def log_lines(text: str) -> list[dict[str, Any]]:
    """The JSON log lines in captured stdout."""
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]
