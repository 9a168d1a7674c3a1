"""The gateway's API Gateway semantics, with stand-in handlers and real sockets.

The handlers here record their events and answer from the query string or the frame, so
these tests hold the gateway alone to its contract: handshake rejection, route selection,
two-way replies, @connections (POST/GET/DELETE, 410), limits, timeouts, $disconnect on every
close, survival of failing handlers, clean shutdown.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import json
import threading
import time
from collections import defaultdict
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from local.functions.invoker import LambdaInvoker
from local.gateway.connection import GatewayOptions
from local.gateway.websocket import Gateway
from runtime.routes import Function
from tests.local.local_support import RawWebSocket, management_client, wait_for_async


class StandIns:
    """Fake handlers for every route: they record events and answer predictably."""

    def __init__(self) -> None:
        self.events: dict[str, list[dict[str, Any]]] = defaultdict(list)
        self.contexts: list[Any] = []
        self.connect_gate: threading.Event | None = None
        self.connect_entered = threading.Event()
        self.lock = threading.Lock()

    def resolve(self, function: Function) -> Any:
        def handler(event: dict[str, Any], context: Any) -> Any:
            return self.handle(function, event, context)

        return handler

    def handle(self, function: Function, event: dict[str, Any], context: Any) -> Any:
        route = function.route_key or function.name
        with self.lock:
            self.events[route].append(event)
            self.contexts.append(context)
        if route == "$connect":
            self.connect_entered.set()
            if self.connect_gate is not None:
                self.connect_gate.wait(10)
            query = event["queryStringParameters"] or {}
            if "raise" in query:
                raise RuntimeError("connect bug")
            if "reject" in query:
                return {"statusCode": int(query["reject"]), "body": json.dumps({"why": "no"})}
            return {"statusCode": 200}
        if route == "$disconnect":
            return {"statusCode": 200}
        body = event["body"]
        if body == "raise":
            raise RuntimeError("handler bug")
        if body == "nobody":
            return {"statusCode": 200}
        return {
            "statusCode": 200,
            "body": json.dumps(
                {"route": route, "body": body[:100], "b64": event["isBase64Encoded"]}
            ),
        }

    def disconnects(self) -> list[dict[str, Any]]:
        with self.lock:
            return list(self.events["$disconnect"])


@contextlib.asynccontextmanager
async def running(stand_ins: StandIns, **options: Any) -> AsyncIterator[Gateway]:
    invoker = LambdaInvoker("test", "us-east-1", workers=16, resolve=stand_ins.resolve)
    gateway = Gateway(GatewayOptions(stage="test", port=0, announce=False, **options), invoker)
    await gateway.start()
    try:
        yield gateway
    finally:
        await gateway.shutdown(timeout_s=15)
        invoker.shutdown()


async def client(gateway: Gateway, query: str = "", **kwargs: Any) -> ClientConnection:
    return await connect(f"{gateway.websocket_url}{query}", max_size=None, **kwargs)


async def reply(ws: ClientConnection, frame: str | bytes) -> dict[str, Any]:
    await ws.send(frame)
    return json.loads(await asyncio.wait_for(ws.recv(), 10))


def run(coro: Any) -> Any:
    return asyncio.run(asyncio.wait_for(coro, 60))


def only_connection_id(stand_ins: StandIns) -> str:
    (event,) = stand_ins.events["$connect"]
    return event["requestContext"]["connectionId"]


def test_route_selection_and_two_way_replies():
    stand_ins = StandIns()

    async def scenario() -> None:
        async with running(stand_ins) as gateway:
            ws = await client(gateway)
            cases = [
                ('{"action":"createSession"}', "createSession"),
                ('{"action":"heartbeat"}', "heartbeat"),
                ('{"action":"nope"}', "$default"),
                ('{"action":"$disconnect"}', "$default"),
                ("[1]", "$default"),
                ("not json", "$default"),
            ]
            for frame, route in cases:
                answer = await reply(ws, frame)
                assert answer["route"] == route, (frame, answer)
                assert answer["b64"] is False
            await ws.close()

    run(scenario())
    message = stand_ins.events["heartbeat"][0]
    assert message["requestContext"]["eventType"] == "MESSAGE"
    assert message["requestContext"]["connectionId"] == only_connection_id(stand_ins)
    context = stand_ins.contexts[0]
    assert context.function_name == "session-management-test-connect"
    assert context.get_remaining_time_in_millis() > 0


@pytest.mark.parametrize("frame", [b"\xff\xfe", b'{"action":"heartbeat"}'])
def test_a_binary_frame_closes_the_connection_with_1003_like_api_gateway(frame: bytes):
    """API Gateway WebSocket APIs do not take binary frames, even ones holding JSON: the
    client is disconnected with 1003 and no route runs."""
    stand_ins = StandIns()

    async def scenario() -> tuple[int | None, str]:
        async with running(stand_ins) as gateway:
            ws = await client(gateway)
            await ws.send(frame)
            with pytest.raises(ConnectionClosed):
                await asyncio.wait_for(ws.recv(), 10)
            assert ws.close_code is not None
            return ws.close_code, ws.close_reason or ""

    code, reason = run(scenario())
    assert code == 1003 and "Binary" in reason
    routed = {k: v for k, v in stand_ins.events.items() if k not in ("$connect", "$disconnect")}
    assert routed == {}
    assert len(stand_ins.events["$disconnect"]) == 1


def test_connect_event_carries_query_headers_and_identity():
    stand_ins = StandIns()

    async def scenario() -> None:
        async with running(stand_ins) as gateway:
            ws = await client(gateway, "?token=abc", user_agent_header="pytest-agent")
            await ws.close()

    run(scenario())
    event = stand_ins.events["$connect"][0]
    assert event["queryStringParameters"] == {"token": "abc"}
    assert event["headers"]["User-Agent"] == "pytest-agent"
    assert event["headers"]["X-Forwarded-For"] == "127.0.0.1"
    context = event["requestContext"]
    assert context["identity"] == {"sourceIp": "127.0.0.1", "userAgent": "pytest-agent"}
    assert context["eventType"] == "CONNECT" and context["stage"] == "test"


@pytest.mark.parametrize(("query", "status"), [("?reject=401", 401), ("?reject=429", 429)])
def test_connect_status_rejects_the_handshake(query, status):
    stand_ins = StandIns()

    async def scenario() -> None:
        async with running(stand_ins) as gateway:
            with pytest.raises(InvalidStatus) as rejected:
                await client(gateway, query)
            assert rejected.value.response.status_code == status
            assert json.loads(rejected.value.response.body) == {"why": "no"}
            await asyncio.sleep(0.3)

    run(scenario())
    assert stand_ins.disconnects() == []  # API Gateway sends no $disconnect for a rejection


def test_failing_connect_is_500_and_the_gateway_keeps_serving():
    stand_ins = StandIns()

    async def scenario() -> None:
        async with running(stand_ins) as gateway:
            with pytest.raises(InvalidStatus) as rejected:
                await client(gateway, "?raise=1")
            assert rejected.value.response.status_code == 500
            ws = await client(gateway)
            assert (await reply(ws, "hello"))["route"] == "$default"
            await ws.close()

    run(scenario())


def test_wrong_stage_is_404_and_root_path_is_accepted():
    stand_ins = StandIns()

    async def scenario() -> None:
        async with running(stand_ins) as gateway:
            with pytest.raises(InvalidStatus) as rejected:
                await connect(f"ws://127.0.0.1:{gateway.port}/other")
            assert rejected.value.response.status_code == 404
            ws = await connect(f"ws://127.0.0.1:{gateway.port}/")
            assert (await reply(ws, "x"))["route"] == "$default"
            await ws.close()

    run(scenario())


def test_a_failing_handler_sends_nothing_and_the_connection_survives():
    stand_ins = StandIns()

    async def scenario() -> None:
        async with running(stand_ins) as gateway:
            ws = await client(gateway)
            await ws.send("raise")
            await ws.send("nobody")
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(ws.recv(), 0.5)
            assert (await reply(ws, '{"action":"heartbeat"}'))["route"] == "heartbeat"
            await ws.close()

    run(scenario())


def test_connections_api_post_get_delete_and_gone():
    stand_ins = StandIns()

    async def scenario() -> None:
        async with running(stand_ins) as gateway:
            api = management_client(gateway.connections_url)
            ws = await client(gateway, user_agent_header="agent-7")
            connection_id = only_connection_id(stand_ins)

            await asyncio.to_thread(
                api.post_to_connection, ConnectionId=connection_id, Data=b'{"type":"push"}'
            )
            assert json.loads(await asyncio.wait_for(ws.recv(), 5)) == {"type": "push"}

            info = await asyncio.to_thread(api.get_connection, ConnectionId=connection_id)
            assert info["Identity"] == {"SourceIp": "127.0.0.1", "UserAgent": "agent-7"}
            assert info["ConnectedAt"] <= info["LastActiveAt"]

            with pytest.raises(api.exceptions.GoneException):
                await asyncio.to_thread(
                    api.post_to_connection, ConnectionId="AAAAAAAAAAAAAAA=", Data=b"x"
                )
            with pytest.raises(api.exceptions.GoneException):
                await asyncio.to_thread(api.get_connection, ConnectionId="AAAAAAAAAAAAAAA=")

            await asyncio.to_thread(api.delete_connection, ConnectionId=connection_id)
            with pytest.raises(ConnectionClosed):
                await asyncio.wait_for(ws.recv(), 5)
            assert ws.close_code == 1000
            assert await wait_for_async(stand_ins.disconnects, timeout=5)
            with pytest.raises(api.exceptions.GoneException):
                await asyncio.to_thread(
                    api.post_to_connection, ConnectionId=connection_id, Data=b"x"
                )
            with pytest.raises(api.exceptions.GoneException):
                await asyncio.to_thread(api.delete_connection, ConnectionId=connection_id)

    run(scenario())
    (gone,) = stand_ins.disconnects()
    assert gone["requestContext"]["disconnectStatusCode"] == 1000


def test_gone_while_connect_runs():
    stand_ins = StandIns()
    stand_ins.connect_gate = threading.Event()

    async def scenario() -> None:
        async with running(stand_ins) as gateway:
            api = management_client(gateway.connections_url)
            pending = asyncio.create_task(client(gateway))
            assert await asyncio.to_thread(stand_ins.connect_entered.wait, 5)
            connection_id = only_connection_id(stand_ins)
            with pytest.raises(api.exceptions.GoneException):
                await asyncio.to_thread(
                    api.post_to_connection, ConnectionId=connection_id, Data=b"early"
                )
            stand_ins.connect_gate.set()
            ws = await pending
            await asyncio.to_thread(api.post_to_connection, ConnectionId=connection_id, Data=b"now")
            assert await asyncio.wait_for(ws.recv(), 5) == "now"
            await ws.close()

    run(scenario())


def test_client_leaving_during_connect_still_gets_one_disconnect():
    stand_ins = StandIns()
    stand_ins.connect_gate = threading.Event()

    async def scenario() -> None:
        async with running(stand_ins) as gateway:
            _reader, writer = await asyncio.open_connection("127.0.0.1", gateway.port)
            writer.write(
                b"GET /test HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
            )
            await writer.drain()
            assert await asyncio.to_thread(stand_ins.connect_entered.wait, 5)
            writer.transport.abort()
            await asyncio.sleep(0.2)
            stand_ins.connect_gate.set()
            assert await wait_for_async(stand_ins.disconnects, timeout=5)
            await asyncio.sleep(0.3)

    run(scenario())
    assert len(stand_ins.disconnects()) == 1


def test_message_over_128_kb_closes_with_1009():
    stand_ins = StandIns()

    async def scenario() -> None:
        async with running(stand_ins) as gateway:
            ws = await client(gateway)
            at_limit = await reply(ws, "x" * (128 * 1024))
            assert at_limit["route"] == "$default"
            await ws.send("x" * (128 * 1024 + 1))
            with pytest.raises(ConnectionClosed):
                await asyncio.wait_for(ws.recv(), 5)
            assert ws.close_code == 1009
            assert await wait_for_async(stand_ins.disconnects, timeout=5)

    run(scenario())
    (gone,) = stand_ins.disconnects()
    assert gone["requestContext"]["disconnectStatusCode"] == 1009


def test_idle_timeout_and_activity():
    stand_ins = StandIns()

    async def scenario() -> None:
        async with running(stand_ins, idle_timeout_s=0.6) as gateway:
            busy = await client(gateway)
            idle = await client(gateway)
            started = time.monotonic()
            for _ in range(6):  # 1.2 s of activity, one frame every 0.2 s
                await reply(busy, "ping")
                await asyncio.sleep(0.2)
            with pytest.raises(ConnectionClosed):
                await asyncio.wait_for(idle.recv(), 5)
            assert idle.close_code == 1001
            assert time.monotonic() - started >= 0.5
            assert (await reply(busy, "still here"))["route"] == "$default"
            await busy.close()

    run(scenario())
    codes = sorted(e["requestContext"]["disconnectStatusCode"] for e in stand_ins.disconnects())
    assert codes == [1000, 1001]


def test_maximum_connection_duration():
    stand_ins = StandIns()

    async def scenario() -> None:
        async with running(stand_ins, max_connection_s=0.8) as gateway:
            ws = await client(gateway)
            started = time.monotonic()
            with pytest.raises(ConnectionClosed):
                for _ in range(50):
                    await reply(ws, "keep busy")
                    await asyncio.sleep(0.1)
            assert ws.close_code == 1001
            # Not before its maximum duration; closed before the 50 replies (≥ 5 s) were done,
            # so bounded above by the loop rather than by a stopwatch.
            assert time.monotonic() - started >= 0.7

    run(scenario())


def test_abrupt_drop_triggers_disconnect():
    stand_ins = StandIns()

    async def scenario() -> None:
        async with running(stand_ins) as gateway:
            ws = await client(gateway)
            await reply(ws, "hello")
            ws.transport.abort()  # no close frame: the TCP connection just goes away
            assert await wait_for_async(stand_ins.disconnects, timeout=5)
            assert gateway.open_count() == 0

    run(scenario())
    (gone,) = stand_ins.disconnects()
    assert gone["requestContext"]["disconnectStatusCode"] == 1006


def test_client_close_gives_exactly_one_disconnect_with_its_code():
    stand_ins = StandIns()

    async def scenario() -> None:
        async with running(stand_ins) as gateway:
            ws = await client(gateway)
            await ws.close(4000, "bye")
            assert await wait_for_async(stand_ins.disconnects, timeout=5)
            await asyncio.sleep(0.3)

    run(scenario())
    (gone,) = stand_ins.disconnects()
    context = gone["requestContext"]
    assert (context["disconnectStatusCode"], context["disconnectReason"]) == (4000, "bye")
    assert context["connectionId"] == only_connection_id(stand_ins)


def test_shutdown_disconnects_every_connection():
    stand_ins = StandIns()
    closes: list[int | None] = []

    async def scenario() -> None:
        async with running(stand_ins) as gateway:
            sockets = [await client(gateway) for _ in range(5)]
            await gateway.shutdown(timeout_s=10)
            for ws in sockets:
                with contextlib.suppress(ConnectionClosed):
                    await asyncio.wait_for(ws.recv(), 5)
                closes.append(ws.close_code)

    run(scenario())
    assert closes == [1001] * 5
    assert len(stand_ins.disconnects()) == 5


def test_plain_http_keep_alive_and_unknown_routes():
    stand_ins = StandIns()

    async def scenario() -> None:
        async with running(stand_ins) as gateway:

            def requests() -> list[tuple[int, str]]:
                conn = http.client.HTTPConnection("127.0.0.1", gateway.port, timeout=5)
                results = []
                for method, path in [
                    ("GET", "/nothing-here"),
                    ("POST", "/test/@connections/AAAAAAAAAAAAAAA="),
                    ("PUT", "/test/@connections/AAAAAAAAAAAAAAA="),
                    ("GET", "/test"),
                ]:
                    conn.request(method, path, body=b"{}" if method != "GET" else None)
                    response = conn.getresponse()
                    results.append((response.status, response.getheader("x-amzn-errortype", "")))
                    response.read()
                conn.close()
                return results

            results = await asyncio.to_thread(requests)
            assert results == [
                (404, ""),
                (410, "GoneException"),
                (405, "MethodNotAllowed"),
                (404, ""),
            ]

    run(scenario())


async def _read_until_closed(reader: asyncio.StreamReader, limit_s: float) -> bytes:
    """Everything the server sends until it closes the connection (bounded)."""
    received = b""
    with contextlib.suppress(ConnectionError):
        while True:
            chunk = await asyncio.wait_for(reader.read(65536), limit_s)
            if not chunk:
                break
            received += chunk
    return received


def test_slowloris_request_heads_are_cut_off():
    """A head trickled byte by byte, or never sent, does not hold a connection open."""
    stand_ins = StandIns()

    async def scenario() -> None:
        async with running(stand_ins, head_timeout_s=1.0) as gateway:
            silent_reader, _silent = await asyncio.open_connection("127.0.0.1", gateway.port)
            reader, writer = await asyncio.open_connection("127.0.0.1", gateway.port)
            writer.write(b"GET /test HTTP/1.1\r\nHost: x\r\n")
            trickled: list[int] = []

            async def trickle() -> None:
                with contextlib.suppress(ConnectionError):
                    for n in range(40):  # would take 8 s to finish the head
                        writer.write(f"X-Slow-{n}: y\r\n".encode())
                        await writer.drain()
                        trickled.append(n)
                        await asyncio.sleep(0.2)

            trickling = asyncio.create_task(trickle())
            assert await _read_until_closed(reader, 5) == b""
            # Cut off mid-head (counted, not timed): the head was never finished.
            assert len(trickled) < 40
            trickling.cancel()
            assert await _read_until_closed(silent_reader, 5) == b""
            # Keep-alive: after a response the next head has the same deadline.
            keep_reader, keep_writer = await asyncio.open_connection("127.0.0.1", gateway.port)
            keep_writer.write(b"GET /nothing HTTP/1.1\r\nHost: x\r\n\r\nGET /nothing HTTP/1.1\r\n")
            answered = await _read_until_closed(keep_reader, 5)
            assert answered.startswith(b"HTTP/1.1 404") and answered.count(b"HTTP/1.1") == 1
            assert stand_ins.events["$connect"] == []

    run(scenario())


@pytest.mark.parametrize(
    "head",
    [
        b"GET /test HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 70_000 + b"\r\n\r\n",
        b"GET /test HTTP/1.1\r\nHost: x\r\n" + b"".join(b"X-%d: y\r\n" % n for n in range(300)),
        b"GET /" + b"a" * 70_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
    ],
    ids=["long-field", "many-fields", "long-request-line"],
)
def test_oversized_request_heads_are_refused(head):
    stand_ins = StandIns()

    async def scenario() -> None:
        async with running(stand_ins) as gateway:
            reader, writer = await asyncio.open_connection("127.0.0.1", gateway.port)
            writer.write(head + b"Upgrade: websocket\r\n\r\n")
            answer = await _read_until_closed(reader, 5)
            assert answer.split(b" ")[1] in (b"400", b"431"), answer[:80]
            writer.close()

    run(scenario())
    assert stand_ins.events["$connect"] == []


def test_http_errors_are_json():
    stand_ins = StandIns()

    async def scenario() -> None:
        async with running(stand_ins) as gateway:

            def requests() -> list[tuple[int, str, dict]]:
                conn = http.client.HTTPConnection("127.0.0.1", gateway.port, timeout=5)
                results = []
                for method, path, headers in [
                    ("GET", "/elsewhere", {}),
                    ("GET", "/elsewhere", {"Upgrade": "websocket", "Connection": "Upgrade"}),
                    ("GET", "/test", {"Upgrade": "websocket", "Connection": "Upgrade"}),
                    ("POST", "/test/@connections/AAAAAAAAAAAAAAA=", {}),
                ]:
                    body = b"x" * (129 * 1024) if method == "POST" else None
                    conn.request(method, path, body=body, headers=headers)
                    response = conn.getresponse()
                    doc = json.loads(response.read())
                    results.append((response.status, response.getheader("Content-Type"), doc))
                    if response.getheader("Connection", "").lower() == "close":
                        conn.close()
                        conn = http.client.HTTPConnection("127.0.0.1", gateway.port, timeout=5)
                conn.close()
                return results

            results = await asyncio.to_thread(requests)
            statuses = [status for status, _, _ in results]
            assert statuses == [404, 404, 400, 413]
            assert all(kind == "application/json; charset=utf-8" for _, kind, _ in results)
            assert "no stage at '/elsewhere'" in results[1][2]["message"]
            assert gateway.websocket_url in results[1][2]["message"]

    run(scenario())
    assert stand_ins.events["$connect"] == []


def test_every_route_under_local_is_loopback_only():
    """A route added later (the console, say) is guarded by its path alone: one line to add."""
    stand_ins = StandIns()
    invoker = LambdaInvoker("test", "us-east-1", workers=4, resolve=stand_ins.resolve)
    gateway = Gateway(GatewayOptions(stage="test", port=0, announce=False), invoker)

    async def probe(_request: web.Request) -> web.Response:
        return web.json_response({"probed": True})

    gateway.app.router.add_get("/_local/probe", probe)

    async def scenario() -> list[int]:
        await gateway.start()
        try:

            def statuses() -> list[int]:
                results = []
                for headers in (
                    {"Host": f"127.0.0.1:{gateway.port}"},
                    {"Host": f"evil.example:{gateway.port}"},
                    {"Host": f"localhost:{gateway.port}", "Sec-Fetch-Site": "cross-site"},
                ):
                    conn = http.client.HTTPConnection("127.0.0.1", gateway.port, timeout=5)
                    conn.request("GET", "/_local/probe", headers=headers)
                    results.append(conn.getresponse().status)
                    conn.close()
                return results

            return await asyncio.to_thread(statuses)
        finally:
            await gateway.shutdown(timeout_s=5)
            invoker.shutdown()

    assert run(scenario()) == [200, 403, 403]


TEXT, CLOSE = 0x1, 0x8


@pytest.mark.parametrize(
    "payload", [b'{"action":"heartbeat"}', b"x" * 200, b"x" * 70_000], ids=["short", "126", "127"]
)
def test_an_unmasked_client_frame_closes_the_connection_with_1002(payload: bytes):
    """RFC 6455 §5.1 (issue 21.6): a server must close on an unmasked client frame, as API
    Gateway does; no route sees the frame, and $disconnect carries 1002."""
    stand_ins = StandIns()

    async def scenario() -> None:
        async with running(stand_ins) as gateway:
            ws = await RawWebSocket.open(gateway.websocket_url)
            # Masked frames first (one split over many writes): they pass.
            masked = RawWebSocket.frame(TEXT, b"masked")
            for byte in masked:
                await ws.send(bytes([byte]))
            opcode, body = await ws.next_frame()
            assert (opcode, json.loads(body)["route"]) == (TEXT, "$default")
            unmasked = RawWebSocket.frame(TEXT, payload, masked=False)
            # The header alone is enough to refuse it (a large payload is never read).
            await ws.send(unmasked if len(payload) < 1000 else unmasked[:10])
            assert await ws.close_code() == 1002
            assert await wait_for_async(stand_ins.disconnects, timeout=5)
            ws.abort()

    run(scenario())
    (gone,) = stand_ins.disconnects()
    assert gone["requestContext"]["disconnectStatusCode"] == 1002
    assert [e["body"] for e in stand_ins.events["$default"]] == ["masked"]


def test_a_close_frame_without_a_status_code_is_reported_as_1005():
    """RFC 6455 §7.1.5 (issue 21.8): no status code in the close frame is 1005, not 0; a TCP
    drop stays 1006 (test_abrupt_drop_triggers_disconnect)."""
    stand_ins = StandIns()

    async def scenario() -> None:
        async with running(stand_ins) as gateway:
            ws = await RawWebSocket.open(gateway.websocket_url)
            await ws.send(RawWebSocket.frame(CLOSE, b""))
            opcode, _ = await ws.next_frame()  # the close is answered
            assert opcode == CLOSE
            assert await wait_for_async(stand_ins.disconnects, timeout=5)
            ws.abort()

    run(scenario())
    (gone,) = stand_ins.disconnects()
    assert gone["requestContext"]["disconnectStatusCode"] == 1005


def test_the_stages_throttle_answers_a_throttled_message_and_runs_no_integration():
    """Burst 2, 1 message/s: 5 frames at once → 2 answered by the route, 3 throttled."""
    stand_ins = StandIns()

    async def scenario() -> None:
        async with running(stand_ins, message_rate=1.0, message_burst=2) as gateway:
            ws = await client(gateway)
            for _ in range(5):
                await ws.send('{"action":"heartbeat"}')
            answers = [json.loads(await asyncio.wait_for(ws.recv(), 10)) for _ in range(5)]
            throttled = [a for a in answers if a.get("message") == "Too Many Requests"]
            assert len(throttled) == 3 and len(stand_ins.events["heartbeat"]) == 2
            connection_id = only_connection_id(stand_ins)
            assert all(a["connectionId"] == connection_id and a["requestId"] for a in throttled)
            messages = gateway.throttles.messages
            assert messages is not None and messages.throttled == 3
            await ws.close()

    run(scenario())


def test_the_accounts_new_connection_rate_refuses_handshakes_with_429():
    stand_ins = StandIns()

    async def scenario() -> None:
        async with running(stand_ins, new_connections_per_s=1.0) as gateway:
            first = await client(gateway)
            with pytest.raises(InvalidStatus) as refused:
                await client(gateway)
            assert refused.value.response.status_code == 429
            assert json.loads(refused.value.response.body) == {"message": "Too Many Requests"}
            assert len(stand_ins.events["$connect"]) == 1  # the refused one reached no $connect
            await first.close()

    run(scenario())
