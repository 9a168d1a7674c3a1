"""A small HTTP/1.1 server for the plain (non-WebSocket) requests on the gateway's port.

The gateway's front door (``local.gateway``) reads the request head of every new TCP
connection; WebSocket upgrades go to the websockets library, everything else is handed to
``HttpServer.take_over`` together with the bytes already read. Requests are parsed with
bounded sizes and timeouts, keep-alive is supported (boto3 pools connections), and each
request goes to the first route handler that claims it.
"""

from __future__ import annotations

import asyncio
import json
import urllib.parse
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from email.utils import formatdate
from http import HTTPStatus
from typing import Any

from local import console

MAX_HEAD_BYTES = 64 * 1024
KEEPALIVE_S = 60.0
READ_TIMEOUT_S = 30.0
MAX_REQUESTS_PER_CONNECTION = 100_000


@dataclass
class HttpRequest:
    method: str
    path: str  # percent-decoded later by each route, raw here
    query: dict[str, list[str]]
    headers: dict[str, str]  # lower-case names
    body: bytes
    peer: str


@dataclass
class HttpResponse:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def json(cls, status: int, doc: Any, headers: dict[str, str] | None = None) -> HttpResponse:
        return cls(
            status,
            json.dumps(doc).encode(),
            {"Content-Type": "application/json", **(headers or {})},
        )


Route = Callable[[HttpRequest], Awaitable[HttpResponse | None]]


class BadRequest(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def parse_head(head: bytes) -> tuple[str, str, str, dict[str, str]]:
    """Request line and headers of ``head`` (without the final blank line)."""
    try:
        text = head.decode("latin-1")
    except UnicodeDecodeError:  # pragma: no cover - latin-1 decodes anything
        raise BadRequest(400, "undecodable request head") from None
    lines = text.split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
        raise BadRequest(400, "malformed request line")
    method, target, version = parts
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if not line:
            continue
        name, sep, value = line.partition(":")
        if not sep or not name or name != name.strip():
            raise BadRequest(400, "malformed header line")
        key = name.lower()
        headers[key] = f"{headers[key]}, {value.strip()}" if key in headers else value.strip()
    return method.upper(), target, version, headers


def is_websocket_upgrade(head: bytes) -> bool:
    """True if ``head`` is a GET asking to upgrade to WebSocket."""
    try:
        method, _, _, headers = parse_head(head)
    except BadRequest:
        return False
    upgrade = {t.strip().lower() for t in headers.get("upgrade", "").split(",")}
    return method == "GET" and "websocket" in upgrade


class HttpServer:
    """Serves HTTP requests on transports handed over by the gateway's front door."""

    def __init__(self, routes: Sequence[Route], max_body: int) -> None:
        self.routes = list(routes)
        self.max_body = max_body
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()

    def take_over(self, transport: asyncio.Transport, initial: bytes) -> None:
        """Serve HTTP on ``transport``, starting with the ``initial`` bytes already received."""
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader(limit=MAX_HEAD_BYTES, loop=loop)
        protocol = asyncio.StreamReaderProtocol(reader, loop=loop)
        transport.set_protocol(protocol)
        protocol.connection_made(transport)
        protocol.data_received(initial)
        writer = asyncio.StreamWriter(transport, protocol, reader, loop)
        task = loop.create_task(self._serve(reader, writer))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        """Close every HTTP connection (at shutdown)."""
        for writer in list(self._writers):
            writer.close()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=5)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        peer_ip = peer[0] if isinstance(peer, tuple) else ""
        self._writers.add(writer)
        try:
            for count in range(MAX_REQUESTS_PER_CONNECTION):
                timeout = READ_TIMEOUT_S if count == 0 else KEEPALIVE_S
                try:
                    request, keep_alive = await asyncio.wait_for(
                        self._read_request(reader, writer, peer_ip), timeout
                    )
                except BadRequest as error:
                    await self._write(
                        writer, HttpResponse.json(error.status, {"message": str(error)}), False
                    )
                    return
                except (TimeoutError, asyncio.IncompleteReadError, ConnectionError):
                    return
                if request is None:
                    return
                response = await self._dispatch(request)
                await self._write(writer, response, keep_alive)
                if not keep_alive:
                    return
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            self._writers.discard(writer)
            writer.close()

    async def _read_request(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, peer_ip: str
    ) -> tuple[HttpRequest | None, bool]:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError as error:
            if not error.partial.strip():
                return None, False  # the client closed an idle keep-alive connection
            raise BadRequest(400, "incomplete request head") from None
        except asyncio.LimitOverrunError:
            raise BadRequest(431, "request head too large") from None
        method, target, version, headers = parse_head(head[:-4])
        if "chunked" in headers.get("transfer-encoding", "").lower():
            raise BadRequest(411, "chunked request bodies are not supported; send Content-Length")
        try:
            length = int(headers.get("content-length", "0") or 0)
        except ValueError:
            raise BadRequest(400, "invalid Content-Length") from None
        if length < 0:
            raise BadRequest(400, "invalid Content-Length")
        if length > self.max_body:
            raise BadRequest(413, f"request body over {self.max_body} bytes")
        if length and headers.get("expect", "").lower() == "100-continue":
            writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            await writer.drain()
        body = await reader.readexactly(length) if length else b""
        split = urllib.parse.urlsplit(target)
        request = HttpRequest(
            method=method,
            path=split.path,
            query=urllib.parse.parse_qs(split.query, keep_blank_values=True),
            headers=headers,
            body=body,
            peer=peer_ip,
        )
        connection = headers.get("connection", "").lower()
        keep_alive = "close" not in connection and (
            version == "HTTP/1.1" or "keep-alive" in connection
        )
        return request, keep_alive

    async def _dispatch(self, request: HttpRequest) -> HttpResponse:
        for route in self.routes:
            try:
                response = await route(request)
            except Exception as error:  # a bug in a route: report it, answer 500, keep serving
                console.say(f"! HTTP {request.method} {request.path} failed: {error!r}")
                return HttpResponse.json(500, {"message": "Internal server error"})
            if response is not None:
                return response
        return HttpResponse.json(404, {"message": f"no route for {request.method} {request.path}"})

    async def _write(
        self, writer: asyncio.StreamWriter, response: HttpResponse, keep_alive: bool
    ) -> None:
        try:
            phrase = HTTPStatus(response.status).phrase
        except ValueError:
            phrase = "Unknown"
        headers = {"Date": formatdate(usegmt=True)}
        if response.status != 204:
            headers["Content-Length"] = str(len(response.body))
        headers["Connection"] = "keep-alive" if keep_alive else "close"
        headers.update(response.headers)
        head = f"HTTP/1.1 {response.status} {phrase}\r\n" + "".join(
            f"{k}: {v}\r\n" for k, v in headers.items()
        )
        writer.write(head.encode("latin-1") + b"\r\n" + response.body)
        await writer.drain()
