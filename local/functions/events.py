"""API Gateway WebSocket proxy events, EventBridge scheduled events and a Lambda context.

Shapes follow what API Gateway and Lambda deliver, so the handlers run here exactly as they
run in AWS. IDs look like API Gateway's (16 base64-style characters ending in ``=``).
"""

from __future__ import annotations

import secrets
import string
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from runtime.routes import Function
from runtime.settings import PROJECT

ACCOUNT_ID = "123456789012"  # moto's default account
_ID_CHARS = string.ascii_letters + string.digits


def api_id() -> str:
    """A random API ID in API Gateway's form (10 lowercase alphanumerics)."""
    return "".join(secrets.choice(string.ascii_lowercase + string.digits) for _ in range(10))


def gateway_id() -> str:
    """A connection/request/message ID in API Gateway's form, e.g. ``L0SM9cOFvHcCIhw=``.

    Only letters and digits before the ``=``, so the ID is safe in an @connections URL path.
    """
    return "".join(secrets.choice(_ID_CHARS) for _ in range(15)) + "="


def now_ms() -> int:
    return int(time.time() * 1000)


def _request_time(epoch_ms: int) -> str:
    return datetime.fromtimestamp(epoch_ms / 1000, UTC).strftime("%d/%b/%Y:%H:%M:%S +0000")


@dataclass(frozen=True)
class ApiInfo:
    """What every event of one local API shares."""

    api_id: str
    stage: str
    domain_name: str
    region: str
    # Connections age this many times faster than the wall clock (``--alarm-time-scale``):
    # the events' ``connectedAt`` is moved back so the functions see the scaled age, and a
    # refresh due at 100 minutes comes after 100 s at 60. 1: API Gateway's own clock.
    age_scale: float = 1.0


@dataclass
class Peer:
    """The client side of one WebSocket connection, as API Gateway sees it."""

    connection_id: str
    source_ip: str
    user_agent: str
    connected_at: int  # epoch ms
    headers: Mapping[str, str] = field(default_factory=dict)


def scaled_connected_at(connected_at_ms: int, now_ms: int, scale: float) -> int:
    """The ``connectedAt`` that makes a connection ``scale`` times as old as it is."""
    if scale == 1:
        return connected_at_ms
    return now_ms - round(max(0, now_ms - connected_at_ms) * scale)


def _request_context(
    api: ApiInfo, peer: Peer, route_key: str, event_type: str, *, with_agent: bool
) -> dict[str, Any]:
    request_id = gateway_id()
    epoch = now_ms()
    identity: dict[str, Any] = {"sourceIp": peer.source_ip}
    if with_agent:
        identity["userAgent"] = peer.user_agent
    return {
        "routeKey": route_key,
        "eventType": event_type,
        "extendedRequestId": request_id,
        "requestTime": _request_time(epoch),
        "messageDirection": "IN",
        "stage": api.stage,
        "connectedAt": scaled_connected_at(peer.connected_at, epoch, api.age_scale),
        "requestTimeEpoch": epoch,
        "identity": identity,
        "requestId": request_id,
        "domainName": api.domain_name,
        "connectionId": peer.connection_id,
        "apiId": api.api_id,
    }


def connect_event(
    api: ApiInfo, peer: Peer, query: Mapping[str, Sequence[str]] | None = None
) -> dict[str, Any]:
    """The ``$connect`` event: headers and query string of the handshake request."""
    headers = dict(peer.headers)
    multi_query = {k: list(v) for k, v in (query or {}).items()}
    return {
        "headers": headers,
        "multiValueHeaders": {k: [v] for k, v in headers.items()},
        "queryStringParameters": {k: v[-1] for k, v in multi_query.items()} or None,
        "multiValueQueryStringParameters": multi_query or None,
        "requestContext": _request_context(api, peer, "$connect", "CONNECT", with_agent=True),
        "isBase64Encoded": False,
    }


def message_event(api: ApiInfo, peer: Peer, route_key: str, body: str) -> dict[str, Any]:
    """A MESSAGE event for one frame routed to ``route_key``."""
    context = _request_context(api, peer, route_key, "MESSAGE", with_agent=False)
    context["messageId"] = gateway_id()
    return {"requestContext": context, "body": body, "isBase64Encoded": False}


def disconnect_event(api: ApiInfo, peer: Peer, status_code: int, reason: str) -> dict[str, Any]:
    """The ``$disconnect`` event, with the close code and reason."""
    context = _request_context(api, peer, "$disconnect", "DISCONNECT", with_agent=True)
    context["disconnectStatusCode"] = status_code
    context["disconnectReason"] = reason
    headers = {"Host": api.domain_name, "x-api-key": "", "X-Forwarded-For": "", "x-restapi": ""}
    return {
        "headers": headers,
        "multiValueHeaders": {k: [v] for k, v in headers.items()},
        "requestContext": context,
        "isBase64Encoded": False,
    }


def scheduled_event(api: ApiInfo, function: Function) -> dict[str, Any]:
    """The EventBridge event a ``rate(...)`` rule delivers."""
    rule = f"{function_name(api.stage, function)}-schedule"
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": ACCOUNT_ID,
        "time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": api.region,
        "resources": [f"arn:aws:events:{api.region}:{ACCOUNT_ID}:rule/{rule}"],
        "detail": {},
    }


def function_name(stage: str, function: Function) -> str:
    """The deployed function name, e.g. ``session-management-dev-create-session``."""
    return f"{PROJECT}-{stage}-{function.name}"


def log_group_name(deployed_name: str) -> str:
    """The log group Lambda writes a function's lines to: ``/aws/lambda/<function name>``."""
    return f"/aws/lambda/{deployed_name}"


class LambdaContext:
    """The context object Lambda's Python runtime passes to a handler."""

    def __init__(self, function: Function, stage: str, region: str, log_stream: str) -> None:
        self.function_name = function_name(stage, function)
        self.function_version = "$LATEST"
        self.invoked_function_arn = (
            f"arn:aws:lambda:{region}:{ACCOUNT_ID}:function:{self.function_name}"
        )
        # Lambda's runtime passes the memory size through as a string.
        self.memory_limit_in_mb = str(function.memory_mb)
        self.aws_request_id = str(uuid.uuid4())
        self.log_group_name = log_group_name(self.function_name)
        self.log_stream_name = log_stream
        self.identity = None
        self.client_context = None
        self._deadline_ms = now_ms() + function.timeout_s * 1000

    def get_remaining_time_in_millis(self) -> int:
        return max(0, self._deadline_ms - now_ms())


def log_stream_name() -> str:
    """A log stream name in Lambda's form, one per (local) execution environment."""
    return f"{datetime.now(UTC):%Y/%m/%d}/[$LATEST]{uuid.uuid4().hex}"
