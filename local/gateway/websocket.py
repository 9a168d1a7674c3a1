"""The WebSocket gateway: API Gateway WebSocket semantics on ``ws://127.0.0.1:{port}/{stage}``.

One TCP port serves everything, on aiohttp's web server (``local.gateway.web``): WebSocket upgrades
on ``/`` and ``/{stage}``, the @connections API, and any route added to ``Gateway.app``
(the JWKS, the local-only endpoints).

API Gateway behaviour reproduced here:

* ``$connect`` runs after the upgrade is validated and before it is answered; a status other
  than 200 rejects the handshake with that status and the handler's body. Until ``$connect``
  has returned 200 and the handshake completed, @connections answers 410 for the ID.
* Route selection on ``$request.body.action``; ``$default`` for anything else (not JSON, no
  or unknown action, reserved ``$…`` names, nested too deeply to read). Two-way routes send
  the handler's ``body`` back as one text frame.
* A binary frame is refused: the connection is closed with 1003, as API Gateway does; an
  unmasked client frame closes it with 1002 (``local.gateway.framing``), and a close frame
  without a status code is reported as 1005.
* 128 KB message limit (close 1009), idle timeout and maximum connection duration (1001).
* ``$disconnect`` exactly once for every connection whose ``$connect`` succeeded, however it
  ends: client close, abrupt TCP drop, server-initiated close, shutdown.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import time
import urllib.parse
from collections.abc import Callable, Sequence
from typing import Any

from aiohttp import WSMsgType, web

from local.common import console
from local.common.http import json_error
from local.functions.events import (
    ApiInfo,
    api_id,
    connect_event,
    disconnect_event,
    message_event,
)
from local.functions.invoker import Invoker
from local.gateway.connection import (
    CLOSE_TIMEOUT_S,
    CONNECT_ROUTE,
    DISCONNECT_ROUTE,
    GOING_AWAY,
    UNSUPPORTED_DATA,
    GatewayOptions,
    LocalConnection,
    random_label,
    select_route,
)
from local.gateway.connections_api import connections_routes
from local.gateway.framing import REFUSED_FRAMES, GatewayWebSocket, close_code_received
from local.gateway.integration import (
    connect_answer,
    integration_status,
    new_peer,
    reply_frame,
    unavailable,
)
from local.gateway.metrics import ApiGatewayMetrics
from local.gateway.throttle import StageThrottles
from local.gateway.web import build_app, listen_on, serve_on
from runtime.routes import WEBSOCKET_ROUTES, Function


class Gateway:
    """Serves WebSocket clients and the plain-HTTP routes on one port."""

    def __init__(
        self,
        options: GatewayOptions,
        invoker: Invoker,
        routes: Sequence[Function] = WEBSOCKET_ROUTES,
        label: Callable[[str], str] | None = None,
    ) -> None:
        self.options = options
        self.invoker = invoker
        self.routes = {f.route_key: f for f in routes if f.route_key}
        self.label = label or random_label()
        # Why the functions' dependencies cannot serve now (None: they can). While they
        # cannot, handshakes are refused with 503 at once instead of after a doomed $connect.
        self.unavailable: Callable[[], str | None] = lambda: None
        self.connections: dict[str, LocalConnection] = {}
        # The stage's AWS/ApiGateway metrics (set by the stack's monitoring; None: none).
        self.metrics: ApiGatewayMetrics | None = None
        # API Gateway's throttles (local.gateway.throttle): the stage's, the account's.
        self.throttles = StageThrottles(
            options.message_rate, options.message_burst, options.new_connections_per_s
        )
        # Add HTTP routes here before ``start``: ``gateway.app.router.add_get(path, handler)``.
        self.app = build_app(self._not_found)
        stage = options.stage
        for path in ("/", f"/{stage}", f"/{stage}/"):
            self.app.router.add_route("*", path, self._websocket)
        self.app.add_routes(connections_routes(self))
        self.api: ApiInfo | None = None
        self.port = options.port
        self.closing = False
        self._runner: web.AppRunner | None = None
        self._sock: socket.socket | None = None
        self._watchdog: asyncio.Task[None] | None = None
        self._connecting = 0
        self._tasks: set[asyncio.Task[Any]] = set()
        self._disconnects: set[asyncio.Task[Any]] = set()

    # --- lifecycle -------------------------------------------------------------------------------

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
        sock = listen_on(self.options.host, self.options.port)
        self._sock = sock
        self.port = sock.getsockname()[1]
        self.api = ApiInfo(
            api_id=api_id(),
            stage=self.options.stage,
            domain_name=f"localhost:{self.port}",
            region=self.options.region,
            age_scale=self.options.age_scale,
        )

    async def start(self) -> None:
        """Start serving (binding first if ``bind`` was not called)."""
        self.bind()
        assert self._sock is not None
        self._runner = await serve_on(self.app, self._sock, self.options.head_timeout_s)
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
        if self._runner is not None:
            runner, self._runner = self._runner, None
            try:
                await asyncio.wait_for(runner.cleanup(), 10)
            except TimeoutError:
                console.say("! some connections did not close in time")

    # --- handshake -------------------------------------------------------------------------------

    def _not_found(self, request: web.Request) -> str:
        if request.headers.get("Upgrade", "").lower() == "websocket":
            return f"no stage at {request.path!r}: connect to {self.websocket_url}"
        return f"no route for {request.method} {request.path}"

    async def _websocket(self, request: web.Request) -> web.StreamResponse:
        """``/`` and ``/{stage}``: the WebSocket handshake, $connect, then the frames."""
        ws = GatewayWebSocket(
            timeout=CLOSE_TIMEOUT_S,
            autoping=True,
            heartbeat=self.options.ping_interval_s,
            compress=False,  # API Gateway does not negotiate permessage-deflate
            # aiohttp refuses a message of max_msg_size bytes or more; API Gateway's limit is
            # inclusive (128 KB passes, one byte more is 1009).
            max_msg_size=self.options.max_message_bytes + 1,
        )
        if request.method != "GET" or request.headers.get("Upgrade") is None:
            raise web.HTTPNotFound()
        if not ws.can_prepare(request).ok:
            return json_error(400, "invalid WebSocket handshake")
        if self.closing:
            return json_error(503, "the local stack is shutting down")
        problem = self.unavailable()
        if problem is not None:
            self._announce(f"reject     handshake  HTTP 503 ({problem})")
            return unavailable(problem)
        throttled = self.throttles.handshake_refused()
        if throttled is not None:
            self._count("client_error")
            self._announce("reject     handshake  HTTP 429 (new connections per second)")
            return throttled
        transport = request.transport
        if transport is None or transport.is_closing():
            return web.Response(status=400)  # gone before we looked: no $connect, no $disconnect
        record = self._new_record(request, ws, transport.get_extra_info("peername"))
        status, body = await self._run_connect(record, request)
        if status != 200:
            self.connections.pop(record.connection_id, None)
            self._announce(f"reject     #{record.label}  HTTP {status}")
            response = web.Response(
                status=status, body=body.encode(), content_type="application/json"
            )
            response.force_close()
            return response
        record.connect_ok = True
        transport = request.transport
        if transport is None or transport.is_closing():
            # The client left while $connect ran: it still gets its $disconnect.
            self._connection_over(record)
            return web.Response(status=410)
        try:
            await ws.prepare(request)
        except (ConnectionError, RuntimeError):
            self._connection_over(record)
            return ws
        try:
            await self._serve_connection(record)
        finally:
            self._connection_over(record)
            if record.closing is not None:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(asyncio.shield(record.closing), CLOSE_TIMEOUT_S)
        return ws

    def _new_record(
        self, request: web.Request, ws: web.WebSocketResponse, remote: Any
    ) -> LocalConnection:
        assert self.api is not None
        peer = new_peer(request, remote, self.port)
        record = LocalConnection(
            ws, peer, self.label(peer.connection_id), self.options.in_flight_per_connection
        )
        self.connections[peer.connection_id] = record
        return record

    async def _run_connect(self, record: LocalConnection, request: web.Request) -> tuple[int, str]:
        """$connect's status and body, within ``open_timeout_s`` (504 past it)."""
        assert self.api is not None
        query = urllib.parse.parse_qs(request.query_string, keep_blank_values=True)
        event = connect_event(self.api, record.peer, query)
        self._connecting += 1
        task = asyncio.ensure_future(self._invoke_connect(event))
        try:
            return await asyncio.wait_for(asyncio.shield(task), self.options.open_timeout_s)
        except (TimeoutError, asyncio.CancelledError):
            # Let $connect finish, then clean up after it (a $disconnect if it said 200).
            task.add_done_callback(lambda t: self._abandoned_connect(record, t))
            return 504, json.dumps({"message": "Endpoint request timed out"})
        finally:
            self._connecting -= 1

    async def _invoke_connect(self, event: dict[str, Any]) -> tuple[int, str]:
        function = self.routes.get(CONNECT_ROUTE)
        if function is None:
            return 200, ""
        if self.metrics is not None:
            self.metrics.connect()
        return connect_answer(await self._integrate(function, event))

    def _abandoned_connect(self, record: LocalConnection, task: asyncio.Future[Any]) -> None:
        self.connections.pop(record.connection_id, None)
        if not task.cancelled() and task.exception() is None and task.result()[0] == 200:
            record.connect_ok = True
            self._connection_over(record)

    # --- frames ----------------------------------------------------------------------------------

    async def _serve_connection(self, record: LocalConnection) -> None:
        """Frames in until the connection ends; remembers how it ended."""
        ws = record.ws
        record.open = True
        self._announce(f"connect    #{record.label}  ({self.open_count()} open)")
        if self.closing:
            self.close_connection(record, GOING_AWAY, "Going away")
        while True:
            message = await ws.receive()
            if message.type in (WSMsgType.TEXT, WSMsgType.BINARY):
                record.touch()
                self._count("message")
                if message.type is WSMsgType.BINARY:
                    self._count("client_error")
                    self.close_connection(
                        record, UNSUPPORTED_DATA, "Binary frames are not supported"
                    )
                    continue  # no route sees it; the close ends the loop
                throttled = self.throttles.message_refused(record.connection_id)
                if throttled is not None:
                    self._count("client_error")  # throttled: no integration runs
                    self._spawn(self._send(record, throttled))
                    continue
                await record.slots.acquire()
                task = asyncio.create_task(self._handle_frame(record, message.data))
                self._tasks.add(task)
                task.add_done_callback(self._frame_done(record))
            elif message.type is WSMsgType.CLOSE:  # the client's close frame (answered)
                # A close frame without a status code is 1005, not aiohttp's 0.
                record.ended_by = (close_code_received(int(message.data)), message.extra or "")
                return
            elif message.type is WSMsgType.ERROR:
                code = getattr(message.data, "code", None)
                if code in REFUSED_FRAMES:  # too big, or unmasked (local.gateway.framing)
                    record.ended_by = (code, REFUSED_FRAMES[code])
                    self._count("client_error")
                return
            else:  # CLOSING (we are closing it) or CLOSED (the TCP connection is gone)
                return

    def _frame_done(self, record: LocalConnection) -> Callable[[asyncio.Task[Any]], None]:
        def done(task: asyncio.Task[Any]) -> None:
            self._tasks.discard(task)
            record.slots.release()

        return done

    async def _handle_frame(self, record: LocalConnection, body: str) -> None:
        """One text frame (binary frames are refused before this, as API Gateway does)."""
        assert self.api is not None
        route_key = select_route(body, self.routes)
        function = self.routes.get(route_key)
        if function is None:
            return
        event = message_event(self.api, record.peer, route_key, body)
        result = await self._integrate(function, event)
        if not function.replies or result is None:
            return
        reply = reply_frame(route_key, result)
        if reply is not None:
            await self._send(record, reply)

    # --- @connections operations -----------------------------------------------------------------

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
        return await self._send(record, payload)

    async def _send(self, record: LocalConnection, payload: str | bytes) -> bool:
        try:
            if isinstance(payload, str):
                await record.ws.send_str(payload)
            else:
                await record.ws.send_bytes(payload)
        except (ConnectionError, RuntimeError):  # closing or closed under us
            return False
        self._count("message")
        return True

    def close_connection(self, record: LocalConnection, code: int, reason: str) -> None:
        """Start a server-side close; ``$disconnect`` follows when the socket is gone."""
        if record.server_close is not None or record.lost:
            return
        record.server_close = (code, reason)
        task = asyncio.create_task(record.ws.close(code=code, message=reason.encode()))
        record.closing = task
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # --- disconnects -----------------------------------------------------------------------------

    def _connection_over(self, record: LocalConnection) -> None:
        """The connection has ended (or never opened): $disconnect if $connect said 200."""
        if record.lost:
            return
        record.lost = True
        record.close_status = record.server_close or record.ended_by or record.close_status
        if record.connect_ok:
            self._finish(record)
        else:
            self.connections.pop(record.connection_id, None)

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
            await self._integrate(function, event)

    # --- timeouts --------------------------------------------------------------------------------

    async def _watch(self) -> None:
        idle, longest = self.options.idle_timeout_s, self.options.max_connection_s
        tick = max(0.05, min(1.0, idle / 10, longest / 10))
        while not self.closing:
            await asyncio.sleep(tick)
            now = time.monotonic()
            for record in list(self.connections.values()):
                reason = record.timed_out(now, idle, longest)
                if reason is not None:
                    self.close_connection(record, GOING_AWAY, reason)

    # --- helpers ---------------------------------------------------------------------------------

    async def _integrate(self, function: Function, event: dict[str, Any]) -> Any:
        """Invoke a route's integration, recording its latency and errors as API Gateway does."""
        began = time.monotonic()
        result = await self.invoker.invoke(function, event)
        if self.metrics is not None:
            self.metrics.integration(time.monotonic() - began, integration_status(result))
        return result

    def _spawn(self, coroutine: Any) -> None:
        task = asyncio.create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _count(self, what: str) -> None:
        if self.metrics is not None:
            getattr(self.metrics, what)()

    def open_count(self) -> int:
        return sum(1 for r in self.connections.values() if r.open and not r.lost)

    def _announce(self, line: str) -> None:
        if self.options.announce:
            console.say(line)
