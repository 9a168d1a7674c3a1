"""The events and context the runtime's handlers receive in tests.

The events are ``local.functions.events``' (the local gateway's): one builder for what API Gateway
delivers, so the runtime tests and the local stack cannot drift apart. These wrappers only
fill in a test API and a client peer.
"""

from __future__ import annotations

import itertools
import json
import uuid
from dataclasses import dataclass, field
from typing import Any

from local.functions import events
from tests.support.runtime_env import SOURCE_IP, STAGE

API = events.ApiInfo(
    api_id="example",
    stage=STAGE,
    domain_name="example.execute-api.us-east-1.amazonaws.com",
    region="us-east-1",
)
CLOSE_NORMAL = 1000


@dataclass
class LambdaContext:
    """The attributes of a Lambda context object the runtime reads (any function name)."""

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


def _peer(connection_id: str, ip: str, connected_at: int) -> events.Peer:
    return events.Peer(
        connection_id=connection_id,
        source_ip=ip,
        user_agent="tests",
        connected_at=connected_at or events.now_ms(),
        headers={"Host": API.domain_name},
    )


def connect_event(
    connection_id: str, *, token: str | None = None, ip: str = SOURCE_IP, connected_at: int = 0
) -> dict[str, Any]:
    query = {"token": [token]} if token is not None else None
    return events.connect_event(API, _peer(connection_id, ip, connected_at), query)


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
    return events.message_event(API, _peer(connection_id, ip, connected_at), route_key, text)


def disconnect_event(
    connection_id: str, *, ip: str = SOURCE_IP, connected_at: int = 0
) -> dict[str, Any]:
    peer = _peer(connection_id, ip, connected_at)
    return events.disconnect_event(API, peer, CLOSE_NORMAL, "Client closed")


def reply(response: dict[str, Any]) -> dict[str, Any]:
    """The message a client receives from a two-way route response."""
    return json.loads(response["body"])
