"""The core every client of the service shares (the CLI, the drills, bench/, tests/).

A WebSocket to a stack, local or deployed (``token`` as the query parameter), its frames
parsed into messages, a background reader, and connection failures turned into one
``ClientError`` that says what happened and what to try.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import urllib.parse
from collections.abc import Awaitable, Callable
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus, InvalidURI

# How hints spell the CLI: runs from the project folder, inside or outside the venv.
CLI = "uv run python -m local"
OPEN_TIMEOUT_S = 15.0
LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")


class ClientError(Exception):
    """Something went wrong that the user should read; exit 1."""


def without_query(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    return urllib.parse.urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))


def _with_token(url: str, token: str | None) -> str:
    if not token:
        return url
    parts = urllib.parse.urlsplit(url)
    query = urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
    query = [(k, v) for k, v in query if k != "token"] + [("token", token)]
    return urllib.parse.urlunsplit(parts._replace(query=urllib.parse.urlencode(query)))


def _handshake_hint(status: int) -> str:
    if status == 401:
        return (
            " — the token was rejected (expired, foreign or malformed); "
            f"for a local stack: {CLI} token --user NAME --port PORT"
        )
    if status == 429:
        return " — too many connection attempts from this address; wait a minute"
    if status == 404:
        return " — wrong path: use ws://HOST:PORT/STAGE"
    return ""


def _body_text(body: bytes) -> str:
    text = body.decode(errors="replace").strip()
    try:
        doc = json.loads(text)
    except ValueError:
        return text[:300]
    if isinstance(doc, dict) and doc.get("code"):
        return f"{doc.get('code')}: {doc.get('message')}"
    if isinstance(doc, dict) and "message" in doc:
        return str(doc["message"])
    return text[:300]


# Server messages that arrive unasked, between a request and its reply.
PUSH_TYPES = frozenset({"sessionEnded", "connectionRefreshRequired", "connectionWarning"})


async def connect_service(url: str, token: str | None = None, **options: Any) -> ClientConnection:
    """A WebSocket to the service, ``token`` as the query parameter; failures as raised."""
    settings: dict[str, Any] = {"open_timeout": OPEN_TIMEOUT_S, "max_size": None, **options}
    return await connect(_with_token(url, token), **settings)


def parse_frame(frame: str | bytes) -> dict[str, Any]:
    """A server frame as a message; a frame that is not a JSON object gets a type saying so."""
    try:
        doc = json.loads(frame)
    except ValueError:
        return {"type": "(not JSON)", "raw": str(frame)[:200]}
    return doc if isinstance(doc, dict) else {"type": "(not an object)", "raw": doc}


class MessageReader:
    """Reads one connection in the background: each message, parsed, goes to ``deliver``
    with its arrival time (``time.perf_counter()``); ``closed`` is set when the connection
    ends, cleanly or not, and ``on_close`` runs then."""

    def __init__(
        self,
        ws: ClientConnection,
        deliver: Callable[[float, dict[str, Any]], Awaitable[None] | None],
        on_close: Callable[[], Awaitable[None] | None] | None = None,
    ) -> None:
        self.ws = ws
        self.closed = asyncio.Event()
        self._deliver = deliver
        self._on_close = on_close
        self._task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        try:
            async for frame in self.ws:
                outcome = self._deliver(time.perf_counter(), parse_frame(frame))
                if outcome is not None:
                    await outcome
        except ConnectionClosed:
            pass
        finally:
            self.closed.set()
            if self._on_close is not None:
                outcome = self._on_close()
                if outcome is not None:
                    await outcome

    async def stop(self) -> None:
        """Stop reading (the connection itself is the caller's to close)."""
        self._task.cancel()
        with contextlib.suppress(BaseException):
            await self._task


def not_a_websocket_url(url: str) -> str:
    """The error for a URL that is not ws:// or wss:// (speak and listen say the same)."""
    return f"not a WebSocket URL: {without_query(url)} (expected ws://… or wss://…)"


def check_websocket_url(url: str) -> None:
    """Raise ClientError unless ``url`` is a ws:// or wss:// URL with a host."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("ws", "wss") or not parts.hostname:
        raise ClientError(not_a_websocket_url(url))


async def open_connection(url: str, token: str | None = None, **options: Any) -> ClientConnection:
    """Connect, turning every failure into a ClientError that says what happened.

    ``options`` go to the socket's creation (``local_addr`` picks the source address).
    """
    shown = without_query(url)
    try:
        return await connect_service(url, token, **options)
    except InvalidStatus as error:
        status = error.response.status_code
        body = _body_text(bytes(error.response.body or b""))
        raise ClientError(
            f"handshake rejected by {shown}: HTTP {status}"
            + (f" ({body})" if body else "")
            + _handshake_hint(status)
        ) from None
    except InvalidURI:
        raise ClientError(not_a_websocket_url(url)) from None
    except InvalidHandshake as error:
        raise ClientError(f"handshake with {shown} failed: {error}") from None
    except TimeoutError:
        raise ClientError(f"timed out connecting to {shown}") from None
    except OSError as error:
        hint = " — is the local stack running? (make dev)" if is_local(url) else ""
        why = "connection refused" if isinstance(error, ConnectionRefusedError) else str(error)
        raise ClientError(f"cannot connect to {shown}: {why}{hint}") from None


def is_local(url: str) -> bool:
    parts = urllib.parse.urlsplit(url)
    return parts.scheme == "ws" and (parts.hostname or "") in LOCAL_HOSTS
