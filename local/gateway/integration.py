"""What passes between the gateway and a route's integration (the function), as on API Gateway.

The request headers a ``$connect`` event carries, the ``$connect`` answer read back as the
handshake's status and body, a two-way route's reply frame, the status an integration's
answer counts as in the metrics, and the 503 a handshake gets when no integration can serve.
"""

from __future__ import annotations

import json
import secrets
import time
from typing import Any

from aiohttp import web

from local.common import console
from local.functions.events import Peer, gateway_id, now_ms
from runtime.errors import ErrorCode, ServiceError
from runtime.protocol import encode, error_message

INTERNAL_ERROR_BODY = json.dumps({"message": "Internal server error"})


def new_peer(request: web.Request, remote: Any, port: int) -> Peer:
    """A new connection's identity and request context, as ``$connect`` and later events
    see it (``remote``: the transport's peer name)."""
    source_ip = remote[0] if isinstance(remote, tuple) else ""
    return Peer(
        connection_id=gateway_id(),
        source_ip=source_ip,
        user_agent=request.headers.get("User-Agent", ""),
        connected_at=now_ms(),
        headers=event_headers(request, source_ip, port),
    )


def event_headers(request: web.Request, source_ip: str, port: int) -> dict[str, str]:
    """The request's headers as API Gateway hands them to ``$connect`` (repeats joined)."""
    headers: dict[str, str] = {}
    for raw_name, raw_value in request.raw_headers:
        name, value = raw_name.decode("latin-1"), raw_value.decode("latin-1")
        headers[name] = f"{headers[name]},{value}" if name in headers else value
    trace = f"Root=1-{int(time.time()):08x}-{secrets.token_hex(12)}"
    headers.update(
        {
            "X-Amzn-Trace-Id": trace,
            "X-Forwarded-For": source_ip,
            "X-Forwarded-Port": str(port),
            "X-Forwarded-Proto": "http",
        }
    )
    return headers


def connect_answer(result: Any) -> tuple[int, str]:
    """``$connect``'s answer as the handshake's (status, body); 500 when it gave none."""
    if result is None:
        return 500, INTERNAL_ERROR_BODY
    status = result.get("statusCode") if isinstance(result, dict) else None
    if not isinstance(status, int):
        console.say(f"! $connect returned {result!r:.200}: no integer statusCode")
        return 500, INTERNAL_ERROR_BODY
    body = result.get("body") or ""
    return status, body if isinstance(body, str) else json.dumps(body)


def reply_frame(route_key: str, result: Any) -> str | None:
    """The text frame a two-way route sends back (None: nothing to send)."""
    reply = result.get("body") if isinstance(result, dict) else None
    if reply is None or reply == "":
        return None
    if not isinstance(reply, str):
        console.say(f"! {route_key} returned a non-string body ({type(reply).__name__})")
        return None
    return reply


def integration_status(result: Any) -> int | None:
    """The HTTP status an integration answered (None: calling it failed).

    A Lambda proxy answer without an integer ``statusCode`` is a malformed response (502);
    a message route's answer that is not a dict counts as 200, since no status was claimed.
    """
    if result is None:
        return None
    if not isinstance(result, dict):
        return 200
    status = result.get("statusCode", 200)
    return status if isinstance(status, int) else 502


def unavailable(problem: str) -> web.Response:
    error = ServiceError(
        ErrorCode.SERVICE_UNAVAILABLE,
        f"The service is temporarily unavailable ({problem}); please retry shortly.",
    )
    body = encode(error_message(error, gateway_id()))
    response = web.Response(status=503, text=body, content_type="application/json")
    response.force_close()
    return response
