"""A command-line speaker and listener for people, against local or deployed URLs.

    python -m local speak [--url URL] [--token T] [--lang en] [--tier standard]
    python -m local listen SESSION_ID --lang es [--url URL]

One line per event on stdout, with a timestamp; problems on stderr with what went wrong
(connection refused, handshake 401/429, error replies with code and message) and a non-zero
exit. Both roles heartbeat (every 30 s by default) and follow ``connectionRefreshRequired``:
a new connection is opened, ``refreshConnection`` sent on it, and the old one closed once
the server confirms (best effort: on an error reply the current connection is kept).

Heartbeats stay within the stack's ``heartbeatsPerMinute``: an interval the stack would
refuse is refused up front (the local stack's own setting, read from ``/_local/info``; for a
deployed URL the setting's default), and a ``retryAfter`` in any error reply holds the next
heartbeat back until it has passed; a refresh refused with one is sent again (on a new
connection) once it has passed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import getpass
import json
import os
import signal
import sys
import time
import urllib.parse
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus, InvalidURI

from local.tokens import NoLocalStack, fetch_info, fetch_token
from runtime.settings import BY_KEY

DEFAULT_PORT = 8080
DEFAULT_URL = f"ws://127.0.0.1:{DEFAULT_PORT}/dev"
# How hints spell the CLI: runs from the project folder, inside or outside the venv.
CLI = "uv run python -m local"
REPLY_TIMEOUT_S = 15.0
# A retryAfter longer than this is the server's mistake; wait this long at most.
MAX_RETRY_AFTER_S = 3600.0
# A refresh refused with a retryAfter is tried again this many times in a row at most.
MAX_REFRESH_RETRIES = 10
OPEN_TIMEOUT_S = 15.0
LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")


class ClientError(Exception):
    """Something went wrong that the user should read; exit 1."""


@dataclass(frozen=True)
class Closed:
    code: int | None
    reason: str


def stamp() -> str:
    return datetime.now().strftime("%H:%M:%S.%f")[:-3]


def emit(kind: str, text: str = "") -> None:
    sys.stdout.write(f"{stamp()}  {kind:<16} {text}".rstrip() + "\n")
    sys.stdout.flush()


def fail(text: str) -> None:
    sys.stderr.write(f"{stamp()}  error: {text}\n")
    sys.stderr.flush()


def describe(doc: dict[str, Any]) -> str:
    """One readable line for a server message."""
    kind = doc.get("type")
    rest = {k: v for k, v in doc.items() if k not in ("type", "timestamp")}
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


def _without_query(url: str) -> str:
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


# --- The core every client of the service shares (this CLI, bench/, tests/) ----------------------

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


async def open_connection(url: str, token: str | None = None, **options: Any) -> ClientConnection:
    """Connect, turning every failure into a ClientError that says what happened.

    ``options`` go to the socket's creation (``local_addr`` picks the source address).
    """
    shown = _without_query(url)
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
        raise ClientError(f"not a WebSocket URL: {shown} (expected ws://… or wss://…)") from None
    except InvalidHandshake as error:
        raise ClientError(f"handshake with {shown} failed: {error}") from None
    except TimeoutError:
        raise ClientError(f"timed out connecting to {shown}") from None
    except OSError as error:
        hint = " — is the local stack running? (make dev)" if _is_local(url) else ""
        why = "connection refused" if isinstance(error, ConnectionRefusedError) else str(error)
        raise ClientError(f"cannot connect to {shown}: {why}{hint}") from None


def _is_local(url: str) -> bool:
    parts = urllib.parse.urlsplit(url)
    return parts.scheme == "ws" and (parts.hostname or "") in LOCAL_HOSTS


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
            _emit_doc(doc)

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
                if doc.get("type") == "connectionRefreshRequired" and self.pending is None:
                    await self._start_refresh()
        finally:
            beat.cancel()
            await self.close_all()

    async def _start_refresh(self) -> None:
        try:
            self.pending = await self.open()
            await self.pending.send(json.dumps({"action": "refreshConnection", **self.refresh}))
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
        old, self.current = self.current, new
        emit("refreshed", "now on the new connection")
        if old is not None:
            await old.close()

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


def _emit_doc(doc: dict[str, Any]) -> None:
    emit(str(doc.get("type")), describe(doc))


def _session_banner(session_id: str, url: str) -> None:
    line = "=" * 64
    url_flag = "" if url == DEFAULT_URL else f" --url {url}"
    sys.stdout.write(
        f"{line}\n  SESSION ID   {session_id}\n"
        f"  listeners:   {CLI} listen {session_id} --lang es{url_flag}\n{line}\n"
    )
    sys.stdout.flush()


async def speak(args: argparse.Namespace) -> int:
    token = args.token
    if not token:
        if not _is_local(args.url):
            raise ClientError("a speaker needs a token for a deployed stack: --token ID_TOKEN")
        port = urllib.parse.urlsplit(args.url).port or 80
        try:
            token = fetch_token(args.user, port)
        except NoLocalStack as error:
            raise ClientError(str(error)) from None
        emit("token", f"fetched a local speaker token for user '{args.user}'")
    create = {"action": "createSession", "sourceLanguage": args.lang, "qualityTier": args.tier}

    def created(reply: dict[str, Any]) -> dict[str, Any]:
        session_id = str(reply.get("sessionId"))
        _session_banner(session_id, _without_query(args.url))
        return {"sessionId": session_id, "role": "speaker"}

    talk = Conversation(args.url, token, args.heartbeat, args.verbose)
    return await _converse(talk, create, "sessionCreated", created)


async def listen(args: argparse.Namespace) -> int:
    join = {"action": "joinSession", "sessionId": args.session_id, "targetLanguage": args.lang}
    refresh = {"sessionId": args.session_id, "role": "listener", "targetLanguage": args.lang}
    talk = Conversation(args.url, None, args.heartbeat, args.verbose)
    return await _converse(talk, join, "sessionJoined", lambda _reply: refresh)


async def _converse(
    talk: Conversation,
    first: dict[str, Any],
    expected: str,
    refresh: Callable[[dict[str, Any]], dict[str, Any]],
) -> int:
    """Connect, send ``first`` and, once it succeeds, follow the session until it ends.

    ``refresh(reply)`` gives what a refreshConnection must say for this role. Exit code 0
    when stopped before the reply came, 1 when the server refused.
    """
    _stop_on_signals(talk.stop)
    talk.current = await talk.open()
    emit("connected", _without_query(talk.url))
    reply = await talk.request(first, expected)
    if reply is None:
        await talk.close_all()
        return 0
    if reply.get("type") == "error":
        fail(describe(reply))
        await talk.close_all()
        return 1
    _emit_doc(reply)
    talk.refresh = refresh(reply)
    return await talk.run(final_types=("sessionEnded",))


def _stop_on_signals(stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)


def parser(command: str) -> argparse.ArgumentParser:
    default_url = os.environ.get("SESSION_URL", DEFAULT_URL)
    p = argparse.ArgumentParser(prog=f"python -m local {command}")
    if command == "speak":
        p.description = "Create a session as its speaker and show what the server pushes."
        p.add_argument("--token", help="speaker ID token (fetched from a local stack if omitted)")
        p.add_argument("--user", default=_user(), help="user for a fetched local token")
        p.add_argument("--lang", default="en", help="source language (ISO 639-1)")
        p.add_argument("--tier", default="standard", help="quality tier: standard or premium")
    else:
        p.description = "Join a session as a listener and show what the server pushes."
        p.add_argument("session_id", metavar="SESSION_ID", help="e.g. golden-eagle-427")
        p.add_argument("--lang", required=True, help="target language (ISO 639-1)")
    p.add_argument(
        "--url", default=default_url, help=f"WebSocket URL (default $SESSION_URL or {DEFAULT_URL})"
    )
    p.add_argument("--heartbeat", type=float, default=30.0, help="seconds between heartbeats")
    p.add_argument("-v", "--verbose", action="store_true", help="also show heartbeat acks")
    return p


def _user() -> str:
    try:
        return getpass.getuser()
    except Exception:
        return "developer"


def heartbeat_limit(url: str) -> tuple[int, str]:
    """Heartbeats a minute the stack at ``url`` allows, and where that number comes from."""
    default = int(BY_KEY["heartbeatsPerMinute"].default)
    if _is_local(url):
        port = urllib.parse.urlsplit(url).port or 80
        try:
            settings = fetch_info(port).get("settings") or {}
        except NoLocalStack:
            return default, "the default"  # connecting will explain what is wrong
        limit = settings.get("heartbeatsPerMinute")
        if isinstance(limit, int) and limit > 0:
            return limit, f"the local stack's heartbeatsPerMinute on port {port}"
    return default, "the default heartbeatsPerMinute (a deployed stack may set its own)"


def check_heartbeat(interval_s: float, url: str) -> str | None:
    """Why ``--heartbeat interval_s`` would be refused by the stack, or None if it is fine."""
    if interval_s <= 0:
        return "--heartbeat must be > 0"
    limit, source = heartbeat_limit(url)
    shortest = 60 / limit
    if interval_s < shortest:
        return (
            f"--heartbeat {interval_s:g} is too often: {source} is {limit} a minute per "
            f"connection, so send one every {shortest:g} s or more (the default, 30, is safe)"
        )
    return None


def main(command: str, argv: Sequence[str]) -> int:
    args = parser(command).parse_args(argv)
    problem = check_heartbeat(args.heartbeat, args.url)
    if problem:
        fail(problem)
        return 2
    try:
        return asyncio.run(speak(args) if command == "speak" else listen(args))
    except ClientError as error:
        fail(str(error))
        return 1
    except KeyboardInterrupt:
        return 0
