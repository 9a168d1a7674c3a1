"""The gateway's HTTP server: aiohttp's, serving WebSocket and plain HTTP on one port.

``build_app`` makes the ``aiohttp.web.Application`` every route goes into; ``serve_on``
runs it on an already-bound socket. Adding an HTTP route is one line::

    gateway.app.router.add_get("/_local/console", handler)

Paths under ``/_local/`` pass ``local.gateway.loopback`` first (loopback Host, no foreign site).
Every error aiohttp raises itself (no route, wrong method, body too large, bad WebSocket
handshake) is answered as JSON ``{"message": …}``, like the routes' own errors.

Request-head limits are aiohttp's parser limits (``HEAD_LIMITS``: a longer line or field,
or more header fields, is answered 400 and the connection closed). The slowloris guard is
aiohttp's keep-alive timer, which starts when a connection opens and again after every
response: a connection whose next request head is not complete ``head_timeout_s`` later is
closed (which also closes idle keep-alive connections).
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import hdrs, web

from local.common import console
from local.common.http import json_error
from local.gateway.loopback import loopback_middleware

# aiohttp's defaults, named: 8 KB per request line or header field, 128 fields.
HEAD_LIMITS: dict[str, Any] = {"max_line_size": 8190, "max_field_size": 8190, "max_headers": 128}
MAX_BODY_BYTES = 4 * 1024 * 1024

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
NotFound = Callable[[web.Request], str]


def build_app(not_found: NotFound) -> web.Application:
    """The application; ``not_found(request)`` words the 404 for a path no route serves."""

    @web.middleware
    async def json_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            return await handler(request)
        except web.HTTPException as error:
            if error.status < 400 or error.content_type == "application/json":
                raise
            message = not_found(request) if error.status == 404 else error.text or error.reason
            headers = {k: v for k, v in error.headers.items() if k == hdrs.ALLOW}
            return json_error(error.status, message, headers)
        except Exception as error:  # a bug in a route: report it, answer 500, keep serving
            console.say(f"! HTTP {request.method} {request.path} failed: {error!r}")
            return json_error(500, "Internal server error")

    app = web.Application(
        middlewares=[json_errors, loopback_middleware], client_max_size=MAX_BODY_BYTES
    )
    app.on_response_prepare.append(_no_server_header)
    return app


async def _no_server_header(_request: web.Request, response: web.StreamResponse) -> None:
    # API Gateway names no server software; neither do we.
    response.headers.popall(hdrs.SERVER, None)


class _OneLineProtocolErrors(logging.Filter):
    """aiohttp logs a malformed request with a traceback; one line says it (it is the
    client's error, and the client got its 400)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and record.exc_info[1] is not None:
            error = record.exc_info[1]
            record.msg = f"refused a malformed request: {type(error).__name__}"
            record.args = ()
            record.exc_info = None
            record.exc_text = None
        return True


_protocol_errors = _OneLineProtocolErrors()


async def serve_on(
    app: web.Application, sock: socket.socket, head_timeout_s: float, **options: Any
) -> web.AppRunner:
    """Start serving ``app`` on ``sock``; ``await runner.cleanup()`` stops it."""
    server_log = logging.getLogger("aiohttp.server")
    if _protocol_errors not in server_log.filters:
        server_log.addFilter(_protocol_errors)
    runner = web.AppRunner(
        app,
        access_log=None,
        handle_signals=False,
        keepalive_timeout=head_timeout_s,
        shutdown_timeout=5,
        **HEAD_LIMITS,
        **options,
    )
    await runner.setup()
    await web.SockSite(runner, sock).start()
    return runner


def listen_on(host: str, port: int) -> socket.socket:
    """A listening socket on ``host:port`` (0 = any free port), or an OSError that says why
    in one sentence."""
    try:
        return socket.create_server((host, port))
    except OSError as error:
        # create_server appends "(while attempting to bind on address …)": say it once.
        why = os.strerror(error.errno) if error.errno else error.strerror
        raise OSError(
            f"cannot listen on {host}:{port} ({why}): "
            "is another local stack running? Pick another with --port"
        ) from None
