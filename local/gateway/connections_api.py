"""The @connections management API: ``/{stage}/@connections/{connectionId}``.

What boto3's ``apigatewaymanagementapi`` client calls with ``endpoint_url`` set to the
gateway's ``http://127.0.0.1:{port}/{stage}``:

* ``POST`` (PostToConnection): the body becomes one frame to the client; 200.
* ``GET`` (GetConnection): ``connectedAt``, ``lastActiveAt``, ``identity`` {``sourceIp``,
  ``userAgent``}; 200. (These are the wire names; boto3 shows them as ``ConnectedAt``,
  ``LastActiveAt``, ``Identity.SourceIp``/``UserAgent``.)
* ``DELETE`` (DeleteConnection): closes the connection (``$disconnect`` follows); 204.

An unknown, closing, closed or still-connecting ID is 410 with ``x-amzn-errortype:
GoneException``, as on AWS. Request signatures are not checked; instead
``local.gateway.loopback`` refuses any request that is not from this machine (foreign Host, Origin
or Sec-Fetch-Site: 403 ForbiddenException).
"""

from __future__ import annotations

import urllib.parse
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from aiohttp import web

from local.common.http import json_error

if TYPE_CHECKING:
    from local.gateway.websocket import Gateway

MAX_POST_BYTES = 128 * 1024
_SEGMENT = "@connections"


def _error(status: int, kind: str, message: str) -> web.Response:
    return json_error(status, message, {"x-amzn-errortype": kind})


def gone() -> web.Response:
    # No connection ID in the message: callers log it, and raw IDs must never be logged.
    return _error(410, "GoneException", "The connection is gone (closed, unknown or connecting)")


def _iso(epoch_ms: int) -> str:
    when = datetime.fromtimestamp(epoch_ms / 1000, UTC)
    return when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z"


def connection_id_of(path: str, stage: str) -> str | None:
    """The connection ID in ``/{stage}/@connections/{id}`` (or ``/@connections/{id}``)."""
    parts = path.split("/")
    if len(parts) == 4 and parts[0] == "" and parts[1] == stage and parts[2] == _SEGMENT:
        raw = parts[3]
    elif len(parts) == 3 and parts[0] == "" and parts[1] == _SEGMENT:
        raw = parts[2]
    else:
        return None
    connection_id = urllib.parse.unquote(raw)
    return connection_id or None


def connections_routes(gateway: Gateway) -> list[web.RouteDef]:
    """The routes serving the @connections API of ``gateway`` (any method: 405 is ours)."""

    async def handle(request: web.Request) -> web.StreamResponse:
        connection_id = connection_id_of(request.raw_path.split("?")[0], gateway.options.stage)
        if connection_id is None:
            raise web.HTTPNotFound()
        if request.method == "POST" and (request.content_length or 0) > MAX_POST_BYTES:
            return _error(413, "PayloadTooLargeException", "Request payload over 128 KB")
        if request.method not in ("POST", "GET", "DELETE"):
            return _error(405, "MethodNotAllowed", f"{request.method} is not supported here")
        body = await request.read() if request.method == "POST" else b""
        if len(body) > MAX_POST_BYTES:  # a chunked body has no Content-Length to check first
            return _error(413, "PayloadTooLargeException", "Request payload over 128 KB")
        record = gateway.connected(connection_id)
        if record is None:
            return gone()
        if request.method == "POST":
            if not await gateway.post(record, body):
                return gone()
            return web.Response(status=200)
        if request.method == "GET":
            return web.json_response(
                {
                    "connectedAt": _iso(record.peer.connected_at),
                    "lastActiveAt": _iso(record.last_active_ms),
                    "identity": {
                        "sourceIp": record.peer.source_ip,
                        "userAgent": record.peer.user_agent,
                    },
                }
            )
        gateway.close_connection(record, 1000, "Connection deleted")
        return web.Response(status=204)

    stage = gateway.options.stage
    return [
        web.route("*", f"/{stage}/{_SEGMENT}/{{connection_id}}", handle),
        web.route("*", f"/{_SEGMENT}/{{connection_id}}", handle),
    ]
