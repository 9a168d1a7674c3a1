"""The WebSocket gateway: API Gateway WebSocket semantics on ``ws://127.0.0.1:{port}/{stage}``.

One TCP port serves everything: ``local.front_door`` sends WebSocket upgrades here and any
other request (the @connections API, the JWKS, the local token endpoint) to ``local.http``.

API Gateway behaviour reproduced here:

* ``$connect`` runs after the upgrade is validated and before it is answered; a status other
  than 200 rejects the handshake with that status and the handler's body. Until ``$connect``
  has returned 200 and the handshake completed, @connections answers 410 for the ID.
* Route selection on ``$request.body.action``; ``$default`` for anything else (not JSON, no
  or unknown action, reserved ``$…`` names, binary frames). Two-way routes send the handler's
  ``body`` back as one text frame.
* 128 KB message limit (close 1009), idle timeout and maximum connection duration (1001).
* ``$disconnect`` exactly once for every connection whose ``$connect`` succeeded, however it
  ends: client close, abrupt TCP drop, server-initiated close, shutdown.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import json
import logging
import secrets
import socket
import time
import urllib.parse
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response
from websockets.protocol import State

from local import console
from local.connections_api import connections_route
from local.events import (
    ApiInfo,
    Peer,
    api_id,
    connect_event,
    disconnect_event,
    gateway_id,
    message_event,
    now_ms,
)
from local.front_door import front_door
from local.http import HttpServer, Route
from local.invoker import Invoker
from runtime.routes import WEBSOCKET_ROUTES, Function

DEFAULT_ROUTE = "$default"
CONNECT_ROUTE = "$connect"
DISCONNECT_ROUTE = "$disconnect"
MAX_MESSAGE_BYTES = 128 * 1024
GOING_AWAY = 1001
NORMAL = 1000
ABNORMAL = 1006


@dataclass(frozen=True)
class GatewayOptions:
    stage: str
    region: str = "us-east-1"
    host: str = "127.0.0.1"
    port: int = 8080
    idle_timeout_s: float = 600.0
    max_connection_s: float = 7200.0
    max_message_bytes: int = MAX_MESSAGE_BYTES
    # How long a new TCP connection may take to send its request head.
    head_timeout_s: float = 10.0
    # Bound on the whole opening handshake, $connect included (API Gateway allows 29 s).
    open_timeout_s: float = 30.0
    # Frames of one connection being handled at once; more wait (backpressure).
    in_flight_per_connection: int = 16
    ping_interval_s: float | None = 20.0
    announce: bool = True  # one stderr line per connect / disconnect


class LocalConnection:
    """Gateway-side state of one WebSocket connection."""

    def __init__(self, ws: ServerConnection, peer: Peer, label: str, in_flight: int) -> None:
        self.ws = ws
        self.peer = peer
        self.label = label
        self.started = time.monotonic()
        self.last_active = self.started
        self.last_active_ms = peer.connected_at
        self.connect_ok = False  # $connect returned 200
        self.open = False  # handshake answered 101 and frames flow
        self.lost = False  # the TCP connection is gone
        self.disconnected = False  # $disconnect dispatched
        self.server_close: tuple[int, str] | None = None
        self.close_status: tuple[int, str] = (ABNORMAL, "Connection lost")
        self.slots = asyncio.Semaphore(in_flight)

    @property
    def connection_id(self) -> str:
        return self.peer.connection_id

    @property
    def connected(self) -> bool:
        """True while @connections may address it: open and not closing."""
        return (
            self.open
            and not self.lost
            and self.server_close is None
            and self.ws.state is State.OPEN
        )

    def touch(self) -> None:
        self.last_active = time.monotonic()
        self.last_active_ms = now_ms()


def select_route(body: str, route_keys: Iterable[str]) -> str:
    """API Gateway's ``$request.body.action`` selection, falling back to ``$default``."""
    try:
        doc = json.loads(body)
    except ValueError:
        return DEFAULT_ROUTE
    action = doc.get("action") if isinstance(doc, dict) else None
    if isinstance(action, str) and not action.startswith("$") and action in set(route_keys):
        return action
    return DEFAULT_ROUTE


def _random_label() -> Callable[[str], str]:
    key = secrets.token_bytes(32)

    def label(connection_id: str) -> str:
        return hmac.new(key, connection_id.encode(), hashlib.sha256).hexdigest()[:16]

    return label


def _json_response(status: int, body: str | bytes, headers: Mapping[str, str] = ()) -> Response:
    data = body.encode() if isinstance(body, str) else body
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = "Error"
    pairs = [
        ("Connection", "close"),
        ("Content-Type", "application/json"),
        ("Content-Length", str(len(data))),
        *dict(headers).items(),
    ]
    return Response(status, phrase, Headers(pairs), data)


class Gateway:
    """Serves WebSocket clients and the plain-HTTP routes on one port."""

    def __init__(
        self,
        options: GatewayOptions,
        invoker: Invoker,
        routes: Sequence[Function] = WEBSOCKET_ROUTES,
        http_routes: Sequence[Route] = (),
        label: Callable[[str], str] | None = None,
    ) -> None:
        self.options = options
        self.invoker = invoker
        self.routes = {f.route_key: f for f in routes if f.route_key}
        self.label = label or _random_label()
        self.connections: dict[str, LocalConnection] = {}
        self.http = HttpServer([connections_route(self), *http_routes], max_body=4 * 1024 * 1024)
        self.api: ApiInfo | None = None
        self.port = options.port
        self.closing = False
        self._server: Server | None = None
        self._sock: socket.socket | None = None
        self._watchdog: asyncio.Task[None] | None = None
        self._connecting = 0
        self._tasks: set[asyncio.Task[Any]] = set()
        self._disconnects: set[asyncio.Task[Any]] = set()

    # -- lifecycle ---------------------------------------------------------------------

    @property
    def websocket_url(self) -> str:
        return f"ws://{self.options.host}:{self.port}/{self.options.stage}"

    @property
    def connections_url(self) -> str:
        return f"http://{self.options.host}:{self.port}/{self.options.stage}"

    def bind(self) -> None:
        """Bind the port (0 = any free port), so URLs are known before serving starts."""
        if self._sock is not None:
            return
        try:
            sock = socket.create_server((self.options.host, self.options.port))
        except OSError as error:
            raise OSError(
                f"cannot listen on {self.options.host}:{self.options.port} ({error.strerror}): "
                "is another local stack running? Pick another with --port"
            ) from None
        self._sock = sock
        self.port = sock.getsockname()[1]
        self.api = ApiInfo(
            api_id=api_id(),
            stage=self.options.stage,
            domain_name=f"localhost:{self.port}",
            region=self.options.region,
        )

    async def start(self) -> None:
        """Start serving (binding first if ``bind`` was not called)."""
        self.bind()
        ws_logger = logging.getLogger("local.gateway.websockets")
        ws_logger.setLevel(logging.ERROR)
        self._server = await serve(
            self._serve_connection,
            sock=self._sock,
            create_connection=front_door(
                self.http.take_over, self.connection_lost, self.options.head_timeout_s
            ),
            process_request=self._process_request,
            process_response=self._process_response,
            compression=None,  # API Gateway does not negotiate permessage-deflate
            max_size=self.options.max_message_bytes,
            open_timeout=self.options.open_timeout_s,
            ping_interval=self.options.ping_interval_s,
            ping_timeout=self.options.ping_interval_s,
            close_timeout=5,
            server_header=None,
            logger=ws_logger,
        )
        self._watchdog = asyncio.create_task(self._watch())

    async def shutdown(self, timeout_s: float = 40.0) -> None:
        """Close every connection (1001), run their ``$disconnect``, then stop serving."""
        self.closing = True
        if self._watchdog:
            self._watchdog.cancel()
        for record in list(self.connections.values()):
            if record.open:
                self.close_connection(record, GOING_AWAY, "Going away")
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and (
            self.connections or self._connecting or self._disconnects or self._tasks
        ):
            await asyncio.sleep(0.05)
        if self._server is not None:
            self._server.close()
            await self.http.close()
            try:
                await asyncio.wait_for(self._server.wait_closed(), 5)
            except TimeoutError:
                console.say("! some connections did not close in time")

    # -- handshake ---------------------------------------------------------------------

    def _process_request(self, ws: ServerConnection, request: Request) -> Response | None:
        if self.closing:
            return _json_response(503, json.dumps({"message": "the local stack is shutting down"}))
        path = urllib.parse.urlsplit(request.path).path.rstrip("/")
        if path not in ("", f"/{self.options.stage}"):
            return _json_response(
                404,
                json.dumps({"message": f"no stage at {path!r}: connect to {self.websocket_url}"}),
            )
        return None

    async def _process_response(
        self, ws: ServerConnection, request: Request, response: Response
    ) -> Response | None:
        if response.status_code != HTTPStatus.SWITCHING_PROTOCOLS:
            return None  # websockets rejected the upgrade itself (bad key, version, …)
        if ws.state is State.CLOSED:
            return None  # the client left before we looked: no $connect, so no $disconnect
        assert self.api is not None
        remote = ws.remote_address
        connection_id = gateway_id()
        peer = Peer(
            connection_id=connection_id,
            source_ip=remote[0] if remote else "",
            user_agent=request.headers.get("User-Agent", ""),
            connected_at=now_ms(),
            headers=self._event_headers(request, remote[0] if remote else ""),
        )
        record = LocalConnection(
            ws, peer, self.label(connection_id), self.options.in_flight_per_connection
        )
        ws.gw_record = record  # type: ignore[attr-defined]
        self.connections[connection_id] = record
        query = urllib.parse.parse_qs(
            urllib.parse.urlsplit(request.path).query, keep_blank_values=True
        )
        event = connect_event(self.api, peer, query)
        self._connecting += 1
        task = asyncio.ensure_future(self._invoke_connect(event))
        try:
            status, body = await asyncio.shield(task)
        except asyncio.CancelledError:
            # The opening handshake timed out: let $connect finish, then clean up after it.
            task.add_done_callback(lambda t: self._abandoned_connect(record, t))
            raise
        finally:
            self._connecting -= 1
        if status != 200:
            self.connections.pop(connection_id, None)
            self._announce(f"reject     #{record.label}  HTTP {status}")
            return _json_response(status, body)
        record.connect_ok = True
        if record.lost:  # the client left while $connect ran: it still gets its $disconnect
            self._finish(record)
        return None

    async def _invoke_connect(self, event: dict[str, Any]) -> tuple[int, str]:
        function = self.routes.get(CONNECT_ROUTE)
        if function is None:
            return 200, ""
        result = await self.invoker.invoke(function, event)
        if result is None:
            return 500, json.dumps({"message": "Internal server error"})
        status = result.get("statusCode") if isinstance(result, dict) else None
        if not isinstance(status, int):
            console.say(f"! $connect returned {result!r:.200}: no integer statusCode")
            return 500, json.dumps({"message": "Internal server error"})
        body = result.get("body") or ""
        return status, body if isinstance(body, str) else json.dumps(body)

    def _abandoned_connect(self, record: LocalConnection, task: asyncio.Future[Any]) -> None:
        self.connections.pop(record.connection_id, None)
        if not task.cancelled() and task.exception() is None and task.result()[0] == 200:
            record.connect_ok = True
            self._finish(record)

    def _event_headers(self, request: Request, source_ip: str) -> dict[str, str]:
        headers: dict[str, str] = {}
        for name, value in request.headers.raw_items():
            headers[name] = f"{headers[name]},{value}" if name in headers else value
        trace = f"Root=1-{int(time.time()):08x}-{secrets.token_hex(12)}"
        headers.update(
            {
                "X-Amzn-Trace-Id": trace,
                "X-Forwarded-For": source_ip,
                "X-Forwarded-Port": str(self.port),
                "X-Forwarded-Proto": "http",
            }
        )
        return headers

    # -- frames ------------------------------------------------------------------------

    async def _serve_connection(self, ws: ServerConnection) -> None:
        record: LocalConnection = ws.gw_record  # type: ignore[attr-defined]
        record.open = True
        self._announce(f"connect    #{record.label}  ({self.open_count()} open)")
        if self.closing:
            self.close_connection(record, GOING_AWAY, "Going away")
        try:
            async for message in ws:
                record.touch()
                await record.slots.acquire()
                task = asyncio.create_task(self._handle_frame(record, message))
                self._tasks.add(task)
                task.add_done_callback(self._frame_done(record))
        except ConnectionClosed:
            pass

    def _frame_done(self, record: LocalConnection) -> Callable[[asyncio.Task[Any]], None]:
        def done(task: asyncio.Task[Any]) -> None:
            self._tasks.discard(task)
            record.slots.release()

        return done

    async def _handle_frame(self, record: LocalConnection, message: str | bytes) -> None:
        assert self.api is not None
        encoded = False
        if isinstance(message, bytes):
            try:
                body = message.decode("utf-8")
            except UnicodeDecodeError:
                body, encoded = base64.b64encode(message).decode(), True
        else:
            body = message
        route_key = DEFAULT_ROUTE if encoded else select_route(body, self.routes)
        function = self.routes.get(route_key)
        if function is None:
            return
        event = message_event(self.api, record.peer, route_key, body, base64=encoded)
        result = await self.invoker.invoke(function, event)
        if not function.replies or result is None:
            return
        reply = result.get("body") if isinstance(result, dict) else None
        if reply is None or reply == "":
            return
        if not isinstance(reply, str):
            console.say(f"! {route_key} returned a non-string body ({type(reply).__name__})")
            return
        with contextlib.suppress(ConnectionClosed):
            await record.ws.send(reply)

    # -- @connections operations ---------------------------------------------------------

    def connected(self, connection_id: str) -> LocalConnection | None:
        """The connection if @connections may address it, else None (410)."""
        record = self.connections.get(connection_id)
        return record if record is not None and record.connected else None

    async def post(self, record: LocalConnection, data: bytes) -> bool:
        """Send ``data`` as one frame (text if UTF-8); False if the connection is gone."""
        try:
            payload: str | bytes = data.decode("utf-8")
        except UnicodeDecodeError:
            payload = data
        try:
            await record.ws.send(payload)
        except ConnectionClosed:
            return False
        return True

    def close_connection(self, record: LocalConnection, code: int, reason: str) -> None:
        """Start a server-side close; ``$disconnect`` follows when the socket is gone."""
        if record.server_close is not None or record.lost:
            return
        record.server_close = (code, reason)
        task = asyncio.create_task(record.ws.close(code, reason))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- disconnects ---------------------------------------------------------------------

    def connection_lost(self, ws: ServerConnection) -> None:
        """Called by the front door when a WebSocket's TCP connection is gone."""
        record: LocalConnection | None = getattr(ws, "gw_record", None)
        if record is None or record.lost:
            return
        record.lost = True
        record.close_status = self._close_status(record)
        if record.connect_ok:
            self._finish(record)
        # Otherwise $connect is still running: _process_response sees `lost` when it returns.

    def _close_status(self, record: LocalConnection) -> tuple[int, str]:
        if record.server_close is not None:
            return record.server_close
        protocol = record.ws.protocol
        sent, received = protocol.close_sent, protocol.close_rcvd
        if sent is not None and not protocol.close_rcvd_then_sent:
            return int(sent.code), sent.reason  # we closed first, e.g. 1009 message too big
        if received is not None:
            return int(received.code), received.reason
        return ABNORMAL, "Connection lost"

    def _finish(self, record: LocalConnection) -> None:
        if record.disconnected:
            return
        record.disconnected = True
        self.connections.pop(record.connection_id, None)
        task = asyncio.create_task(self._disconnect(record))
        self._disconnects.add(task)
        task.add_done_callback(self._disconnects.discard)

    async def _disconnect(self, record: LocalConnection) -> None:
        assert self.api is not None
        code, reason = record.close_status
        lived = time.monotonic() - record.started
        why = f" {reason}" if reason else ""
        self._announce(
            f"disconnect #{record.label}  {code}{why}, after {lived:.1f}s "
            f"({self.open_count()} open)"
        )
        function = self.routes.get(DISCONNECT_ROUTE)
        if function is not None:
            event = disconnect_event(self.api, record.peer, code, reason)
            await self.invoker.invoke(function, event)

    # -- timeouts ------------------------------------------------------------------------

    async def _watch(self) -> None:
        idle, longest = self.options.idle_timeout_s, self.options.max_connection_s
        tick = max(0.05, min(1.0, idle / 10, longest / 10))
        while not self.closing:
            await asyncio.sleep(tick)
            now = time.monotonic()
            for record in list(self.connections.values()):
                if not record.connected:
                    continue
                if now - record.started >= longest:
                    self.close_connection(record, GOING_AWAY, "Maximum connection duration")
                elif now - record.last_active >= idle:
                    self.close_connection(record, GOING_AWAY, "Idle timeout")

    # -- helpers -------------------------------------------------------------------------

    def open_count(self) -> int:
        return sum(1 for r in self.connections.values() if r.open and not r.lost)

    def _announce(self, line: str) -> None:
        if self.options.announce:
            console.say(line)
