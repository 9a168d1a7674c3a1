"""Fixtures and builders for the heartbeat / disconnect / fan-out / metrics tests.

``connections`` is a real HTTP stand-in for the @connections API (bench.connections_server):
the runtime's apigatewaymanagementapi client talks to it over 127.0.0.1, so 410 Gone and
concurrency are real. State is set up through the service's own handlers ($connect,
createSession, joinSession); only what no handler can produce is written directly.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from conftest import (
    STAGE,
    LambdaContext,
    connect_event,
    message_event,
    new_connection_id,
    reply,
)

from bench.connections_server import ConnectionsServer
from runtime import aws as runtime_aws
from runtime import store
from runtime.config import config
from runtime.handlers import connect

SPEAKER_USER = "speaker-user-1"


@pytest.fixture
def connections(runtime_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
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


def open_connection(
    connection_id: str | None = None, *, token: str | None = None, ip: str | None = None
) -> str:
    """A connection recorded by the real ``$connect`` handler; its ID."""
    cid = connection_id or new_connection_id()
    kwargs: dict[str, Any] = {"token": token}
    if ip:
        kwargs["ip"] = ip
    response = connect.handler(connect_event(cid, **kwargs), LambdaContext())
    assert response["statusCode"] == 200, response
    return cid


def session_item(session_id: str, speaker: str) -> dict[str, Any]:
    return {
        "sessionId": session_id,
        "speakerConnectionId": speaker,
        "speakerUserId": SPEAKER_USER,
        "sourceLanguage": "en",
        "qualityTier": "standard",
        "createdAt": int(time.time() * 1000),
        "isActive": True,
        "listenerCount": 0,
        "expiresAt": store.ttl_from_now(),
    }


def start_session(session_id: str = "calm-river-101", *, max_active: int = 100) -> str:
    """A speaker connection with an active session; the speaker's connection ID."""
    speaker = open_connection()
    store.create_session(session_item(session_id, speaker), max_active=max_active)
    return speaker


def join(session_id: str, target_language: str = "es", *, ip: str | None = None) -> str:
    """A listener connection that joined ``session_id``; its connection ID."""
    cid = open_connection(ip=ip)
    store.claim_role(
        cid, role=store.LISTENER, session_id=session_id, target_language=target_language
    )
    store.add_listener(session_id, max_listeners=config().maxListenersPerSession)
    return cid


def heartbeat_event(connection_id: str, *, age_s: float = 0) -> dict[str, Any]:
    """A heartbeat from a connection opened ``age_s`` seconds ago."""
    connected_at = int((time.time() - age_s) * 1000)
    return message_event(connection_id, {"action": "heartbeat"}, connected_at=connected_at)


def move_speaker(session_id: str, new_speaker: str) -> None:
    """What a completed speaker refresh leaves behind: the session points at a new connection."""
    boto3.client("dynamodb").update_item(
        TableName=config().sessions_table,
        Key={"sessionId": {"S": session_id}},
        UpdateExpression="SET speakerConnectionId = :c",
        ExpressionAttributeValues={":c": {"S": new_speaker}},
    )


def wait_for_fresh_minute(margin_s: float = 3.0) -> None:
    """Sleep past a minute boundary if one is near, so a per-minute window can't roll mid-test."""
    into = time.time() % 60
    if into > 60 - margin_s:
        time.sleep(60 - into + 0.05)


def log_lines(text: str) -> list[dict[str, Any]]:
    """The JSON log lines in captured stdout."""
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


__all__ = [
    "SPEAKER_USER",
    "connections",
    "heartbeat_event",
    "join",
    "log_lines",
    "move_speaker",
    "open_connection",
    "reply",
    "session_item",
    "set_env",
    "start_session",
    "wait_for_fresh_minute",
]
