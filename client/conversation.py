"""One speaker or listener of the CLI: its connection, heartbeats and refreshes, and its
output (one line per event on stdout, problems on stderr).

Heartbeats honour a ``retryAfter`` in any error reply; ``connectionRefreshRequired`` opens a
new connection, sends ``refreshConnection`` on it (with the ``refreshToken`` the server gave
the current connection) and closes the old one once the server
confirms (on an error reply the current connection is kept; a refresh refused with a
``retryAfter`` is sent again once it has passed).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import time
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from client.connection import ClientError, MessageReader, open_connection
from runtime.terminal import printable

REPLY_TIMEOUT_S = 15.0
# A retryAfter longer than this is the server's mistake; wait this long at most.
MAX_RETRY_AFTER_S = 3600.0
# A refresh refused with a retryAfter is tried again this many times in a row at most.
MAX_REFRESH_RETRIES = 10


@dataclass(frozen=True)
class Closed:
    code: int | None
    reason: str


def stamp() -> str:
    return datetime.now().strftime("%H:%M:%S.%f")[:-3]


def emit(kind: str, text: str = "") -> None:
    # What the server or the user's config said is escaped: never a raw control character.
    sys.stdout.write(printable(f"{stamp()}  {kind:<16} {text}".rstrip()) + "\n")
    sys.stdout.flush()


def fail(text: str) -> None:
    sys.stderr.write(f"{stamp()}  error: {printable(text)}\n")
    sys.stderr.flush()


def describe(doc: dict[str, Any]) -> str:
    """One readable line for a server message."""
    kind = doc.get("type")
    # The refreshToken is proof kept for the next refresh, not something to read.
    rest = {k: v for k, v in doc.items() if k not in ("type", "timestamp", "refreshToken")}
    if kind == "error":
        details = doc.get("details") or {}
        extra = f"  {json.dumps(details)}" if details else ""
        return f"{doc.get('code')} ({doc.get('status')}): {doc.get('message')}{extra}"
    if kind == "sessionCreated":
        expires = doc.get("expiresAt")
        until = (
            f", expires {datetime.fromtimestamp(expires / 1000):%Y-%m-%d %H:%M}"
            if isinstance(expires, int | float)
            else ""
        )
        return (
            f"{doc.get('sessionId')} (source {doc.get('sourceLanguage')}, "
            f"tier {doc.get('qualityTier')}{until})"
        )
    if kind == "sessionJoined":
        return (
            f"{doc.get('sessionId')} ({doc.get('sourceLanguage')} → {doc.get('targetLanguage')}), "
            f"{doc.get('listenerCount')} listener(s)"
        )
    if kind == "sessionEnded":
        return f"{doc.get('sessionId')}: {doc.get('reason')}"
    if kind == "connectionWarning":
        return f"connection closes in {doc.get('remainingMinutes')} min"
    return json.dumps(rest, separators=(",", ":")) if rest else ""


class Conversation:
    """One speaker or listener: its current connection, heartbeats and refreshes."""

    def __init__(
        self,
        url: str,
        token: str | None,
        heartbeat_s: float,
        verbose: bool,
    ) -> None:
        self.url = url
        self.token = token
        self.heartbeat_s = heartbeat_s
        self.verbose = verbose
        self.queue: asyncio.Queue[tuple[ClientConnection, dict[str, Any] | Closed]] = (
            asyncio.Queue()
        )
        self.current: ClientConnection | None = None
        self.pending: ClientConnection | None = None
        self.refresh: dict[str, Any] = {}
        # The current connection's refreshToken (from sessionCreated / sessionJoined, then
        # connectionRefreshRequired and connectionRefreshComplete): proof for the refresh.
        self.refresh_token: str | None = None
        self.stop = asyncio.Event()
        # No heartbeat before this (time.monotonic()): the server's last retryAfter.
        self.quiet_until = 0.0
        self._refresh_retries = 0
        self._timers: set[asyncio.Task[None]] = set()
        self._readers: list[MessageReader] = []

    async def open(self) -> ClientConnection:
        ws = await open_connection(self.url, self.token)

        def deliver(_arrived: float, doc: dict[str, Any]) -> Awaitable[None]:
            return self.queue.put((ws, doc))

        def closed() -> Awaitable[None]:
            return self.queue.put((ws, Closed(ws.close_code, ws.close_reason or "")))

        self._readers.append(MessageReader(ws, deliver, closed))
        return ws

    async def next_message(
        self, timeout: float | None = None
    ) -> tuple[ClientConnection, dict[str, Any] | Closed] | None:
        """The next (connection, message) or None when the user asked to stop."""
        getter = asyncio.create_task(self.queue.get())
        stopper = asyncio.create_task(self.stop.wait())
        done, _ = await asyncio.wait(
            {getter, stopper}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
        )
        for task in (getter, stopper):
            if task not in done:
                task.cancel()
        if getter in done:
            return getter.result()
        if stopper in done:
            return None
        raise ClientError(f"no reply within {timeout:.0f}s")

    async def request(self, payload: dict[str, Any], expect: str) -> dict[str, Any] | None:
        """Send on the current connection and wait for ``expect`` or an error reply."""
        assert self.current is not None
        try:
            await self.current.send(json.dumps(payload))
        except ConnectionClosed:
            raise ClientError("the server closed the connection before the request") from None
        deadline = time.monotonic() + REPLY_TIMEOUT_S
        while True:
            item = await self.next_message(max(0.1, deadline - time.monotonic()))
            if item is None:
                return None
            ws, doc = item
            if isinstance(doc, Closed):
                if ws is self.current:
                    raise ClientError(f"the server closed the connection{_closed(doc)}")
                continue
            if doc.get("type") in (expect, "error"):
                return doc
            self.show(doc)

    def show(self, doc: dict[str, Any]) -> None:
        kind = doc.get("type")
        if kind == "heartbeatAck" and not self.verbose:
            return
        if kind == "error":
            fail(describe(doc))
            self._honour_retry_after(doc)
        else:
            emit_doc(doc)

    def _honour_retry_after(self, doc: dict[str, Any]) -> None:
        wait = retry_after(doc)
        if wait is not None:
            self.quiet_until = max(self.quiet_until, time.monotonic() + wait)
            emit("waiting", f"no heartbeat for {wait:g} s, as the server asked (retryAfter)")

    async def heartbeats(self) -> None:
        while not self.stop.is_set():
            await asyncio.sleep(self.heartbeat_s)
            held = self.quiet_until - time.monotonic()
            if held > 0:
                await asyncio.sleep(held)
            if self.current is not None:
                with contextlib.suppress(ConnectionClosed):
                    await self.current.send(json.dumps({"action": "heartbeat"}))

    async def run(self, final_types: Sequence[str]) -> int:
        """Show messages until a final type arrives (0), the user stops (0) or it breaks (1)."""
        beat = asyncio.create_task(self.heartbeats())
        try:
            while True:
                item = await self.next_message()
                if item is None:
                    emit("bye", "closing the connection")
                    return 0
                ws, doc = item
                if isinstance(doc, Closed):
                    if ws is self.current:
                        fail(f"the server closed the connection{_closed(doc)}")
                        return 1
                    if ws is self.pending:
                        fail(f"refresh connection closed{_closed(doc)}; keeping the current one")
                        self.pending = None
                    continue
                if ws is self.pending and doc.get("type") in ("connectionRefreshComplete", "error"):
                    await self._refresh_answered(doc)
                    continue
                self.show(doc)
                if doc.get("type") in final_types:
                    return 0
                if doc.get("type") == "connectionRefreshRequired" and ws is self.current:
                    self.keep_token(doc)
                if doc.get("type") == "connectionRefreshRequired" and self.pending is None:
                    await self._start_refresh()
        finally:
            beat.cancel()
            await self.close_all()

    async def _start_refresh(self) -> None:
        try:
            self.pending = await self.open()
            body = {"action": "refreshConnection", **self.refresh}
            if self.refresh_token:
                body["refreshToken"] = self.refresh_token
            await self.pending.send(json.dumps(body))
            emit("refreshing", "opened a new connection, sent refreshConnection")
        except (ClientError, ConnectionClosed) as error:
            fail(f"refresh failed: {error}; keeping the current connection")
            self.pending = None

    async def _refresh_answered(self, doc: dict[str, Any]) -> None:
        new, self.pending = self.pending, None
        assert new is not None
        if doc.get("type") == "error":
            wait = retry_after(doc)
            again = wait is not None and self._refresh_retries < MAX_REFRESH_RETRIES
            fail(
                f"refresh refused: {doc.get('code')} ({doc.get('status')}): {doc.get('message')}"
                " — keeping the current connection"
                + (f"; refreshing again in {wait:g} s (retryAfter)" if again else "")
            )
            await new.close()
            if again and wait is not None:
                self._refresh_retries += 1
                task = asyncio.create_task(self._refresh_later(wait))
                self._timers.add(task)
                task.add_done_callback(self._timers.discard)
            return
        self._refresh_retries = 0
        self.keep_token(doc)  # the new connection's, for its own refresh
        old, self.current = self.current, new
        emit("refreshed", "now on the new connection")
        if old is not None:
            await old.close()

    def keep_token(self, doc: dict[str, Any]) -> None:
        token = doc.get("refreshToken")
        if isinstance(token, str) and token:
            self.refresh_token = token

    async def _refresh_later(self, wait: float) -> None:
        await asyncio.sleep(wait)
        if not self.stop.is_set() and self.pending is None:
            await self._start_refresh()

    async def close_all(self) -> None:
        for task in list(self._timers):
            task.cancel()
        for ws in (self.pending, self.current):
            if ws is not None:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(ws.close(), 5)
        for reader in self._readers:
            await reader.stop()


def retry_after(doc: dict[str, Any]) -> float | None:
    """An error reply's ``details.retryAfter`` in seconds (bounded), or None."""
    value = (doc.get("details") or {}).get("retryAfter")
    if isinstance(value, int | float) and not isinstance(value, bool):
        return min(max(0.0, float(value)), MAX_RETRY_AFTER_S)
    return None


def _closed(doc: Closed) -> str:
    if doc.code is None:
        return ""
    return f" (code {doc.code}{': ' + doc.reason if doc.reason else ''})"


def emit_doc(doc: dict[str, Any]) -> None:
    emit(str(doc.get("type")), describe(doc))
