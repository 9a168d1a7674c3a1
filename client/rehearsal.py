"""``python -m local rehearse``: play a live event through a running local stack.

One speaker and N listeners (default 300), every one from the same address (a venue's Wi-Fi
NAT), join one session within a minute; everyone heartbeats; when the service tells a
connection ``connectionRefreshRequired`` it opens a new connection, refreshes onto it and
closes the old one; once everyone has refreshed, the speaker leaves and every listener
must be told ``sessionEnded``. Against a stack started with ``--alarm-time-scale 60`` the
refresh due at 100 minutes of connection age comes after 100 s (the local stack ages
connections on the alarms' clock), so the whole event plays in about three minutes.

It prints joined/refused, join latency p50/p95, the spread of the refresh pushes, the peak
of new connections per second, every alarm that fired and how many listeners were told
``sessionEnded``; it exits 1 if any listener was refused, any alarm fired, anyone missed
its refresh or its ``sessionEnded``. It starts nothing and so stops nothing but its own
sockets; every wait is bounded.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from client.connection import PUSH_TYPES, ClientError, MessageReader, open_connection
from client.local_stack import (
    NoLocalStack,
    NoStackFound,
    fetch_info,
    fetch_token,
    the_running_stack,
)
from client.rehearsal_report import Outcome, alarms_now, fired_since, render

REPLY_TIMEOUT_S = 30.0
# Transient failures a client tries again (after RETRY_S, then twice that, …).
TRANSIENT = frozenset({"SERVICE_UNAVAILABLE", "INTERNAL_ERROR"})
TRIES = 4
# How long listeners wait for sessionEnded once the speaker left: its $disconnect tells them
# at once; if that failed, the sweeper ends the session once the speaker's record has been
# missing for 30 s.
ENDED_TIMEOUT_S = 60.0
RETRY_S = 1.0
HEARTBEAT_S = 20.0  # 3 a minute: inside the committed heartbeatsPerMinute (4)
LANGUAGES = ("es", "fr", "de", "it", "pt")
# The longest a rehearsal may take before it refuses to start (a stack at real time would
# take two hours to reach the refresh point).
MAX_MINUTES_DEFAULT = 15.0


@dataclass(frozen=True)
class Plan:
    port: int = 8080
    listeners: int = 300
    join_window_s: float = 60.0
    heartbeat_s: float = HEARTBEAT_S
    max_minutes: float = MAX_MINUTES_DEFAULT


class SocketClosed(Exception):
    """The socket closed while a request waited for its reply."""


_CLOSED = {"type": "(closed)"}


class Socket:
    """One WebSocket: replies to its requests in order, pushes handed to ``member``."""

    def __init__(self, ws: ClientConnection, member: Member) -> None:
        self.ws = ws
        self.replies: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.lock = asyncio.Lock()
        self.member = member
        self.reader = MessageReader(ws, self._deliver, lambda: self.replies.put_nowait(_CLOSED))

    def _deliver(self, _at: float, doc: dict[str, Any]) -> None:
        if doc.get("type") in PUSH_TYPES:
            self.member.pushed(self, doc)
        else:
            self.replies.put_nowait(doc)

    async def request(self, body: dict[str, Any]) -> dict[str, Any]:
        """Send ``body``; its reply. SocketClosed if the socket closes first."""
        async with self.lock:
            if self.reader.closed.is_set():
                raise SocketClosed
            try:
                await self.ws.send(json.dumps(body))
            except ConnectionClosed:
                raise SocketClosed from None
            reply = await asyncio.wait_for(self.replies.get(), REPLY_TIMEOUT_S)
            if reply is _CLOSED:
                raise SocketClosed
            return reply

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self.ws.close()
        await self.reader.stop()


@dataclass
class Member:
    """A speaker or a listener: its current socket, heartbeats, refresh and what it saw."""

    rehearsal: Rehearsal
    role: str
    language: str | None = None
    token: str | None = None
    socket: Socket | None = None
    refresh_pushed_at: float | None = None
    refreshed: bool = False
    ended: asyncio.Event = field(default_factory=asyncio.Event)
    tasks: set[asyncio.Task[None]] = field(default_factory=set)

    async def open(self) -> Socket:
        """A new connection (counted as a new connection at this second); ClientError if
        the handshake is refused."""
        ws = await open_connection(self.rehearsal.url, self.token)
        self.rehearsal.outcome.new_connection(time.time())
        return Socket(ws, self)

    def pushed(self, socket: Socket, doc: dict[str, Any]) -> None:
        kind = doc.get("type")
        if kind == "sessionEnded" and socket is self.socket:
            self.ended.set()
        elif kind == "connectionRefreshRequired" and self.refresh_pushed_at is None:
            self.refresh_pushed_at = time.time()
            self._spawn(self.refresh(doc))

    def _spawn(self, coroutine: Any) -> None:
        task = asyncio.create_task(coroutine)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def start_heartbeats(self) -> None:
        self._spawn(self._heartbeats())

    async def _heartbeats(self) -> None:
        outcome = self.rehearsal.outcome
        await asyncio.sleep(random.uniform(0, self.rehearsal.plan.heartbeat_s))
        while not self.ended.is_set() and self.socket is not None:
            socket = self.socket
            try:
                reply = await socket.request({"action": "heartbeat"})
            except (SocketClosed, TimeoutError):
                if socket is self.socket:
                    return  # the current socket is gone: the event is over for it
                continue  # the old socket closed during a refresh: beat on the new one
            outcome.heartbeats += 1
            if reply.get("type") != "heartbeatAck":
                outcome.heartbeat_errors.append(str(reply.get("code")))
            await asyncio.sleep(self.rehearsal.plan.heartbeat_s)

    async def connect_and_send(
        self, body: dict[str, Any], expected: str
    ) -> tuple[Socket | None, str | None]:
        """A new connection and ``body`` sent on it, answered with ``expected``: (socket, None);
        or (None, why not). A transient failure (503, a timeout, a dropped socket) is tried
        again, as clients do, up to ``TRIES`` times; a refusal (429, an error reply) is not."""
        why = ""
        for attempt in range(TRIES):
            if attempt:
                self.rehearsal.outcome.retries += 1
                await asyncio.sleep(RETRY_S * attempt)
            try:
                socket = await self.open()
            except ClientError as error:
                why = f"handshake: {error}"
                if "HTTP 503" in str(error) or "timed out" in str(error):
                    continue
                return None, why
            try:
                reply = await socket.request(body)
            except (SocketClosed, TimeoutError) as error:
                why = f"{body['action']}: {type(error).__name__}"
                await socket.close()
                continue
            if reply.get("type") == expected:
                return socket, None
            await socket.close()
            why = f"{body['action']}: {reply.get('code')}"
            if reply.get("code") not in TRANSIENT:
                return None, why
        return None, f"{why} ({TRIES} tries)"

    async def refresh(self, notice: dict[str, Any]) -> None:
        """Open a new connection, refresh onto it, close the old one (as clients must)."""
        body: dict[str, Any] = {
            "action": "refreshConnection",
            "sessionId": self.rehearsal.session_id,
            "role": self.role,
        }
        if self.language:
            body["targetLanguage"] = notice.get("targetLanguage") or self.language
        if notice.get("refreshToken"):  # proof of the connection replaced, as real clients send
            body["refreshToken"] = notice["refreshToken"]
        new, why = await self.connect_and_send(body, "connectionRefreshComplete")
        if new is None:
            self.rehearsal.outcome.refused.append(f"{self.role} refresh {why}")
            return
        old, self.socket = self.socket, new
        self.refreshed = True
        if old is not None:
            await old.close()

    async def leave(self) -> None:
        for task in list(self.tasks):
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        if self.socket is not None:
            await self.socket.close()


class Rehearsal:
    def __init__(self, plan: Plan, info: dict[str, Any]) -> None:
        self.plan = plan
        self.info = info
        self.url = str(info["websocketUrl"])
        self.session_id = ""
        settings = info.get("settings") or {}
        self.scale = float(info.get("alarmTimeScale") or 1.0)
        refresh = float(settings.get("connectionRefreshMinutes", 100))
        spread = float(settings.get("connectionRefreshSpreadMinutes", 0))
        self.refresh_window_s = (refresh * 60 / self.scale, (refresh + spread) * 60 / self.scale)
        self.outcome = Outcome(listeners=plan.listeners, refresh_window_s=self.refresh_window_s)

    def expected_minutes(self) -> float:
        last = self.plan.join_window_s + self.refresh_window_s[1] + 2 * self.plan.heartbeat_s
        return (last + 60) / 60

    async def run(self) -> Outcome:
        outcome = self.outcome
        outcome.started_at = time.time()
        before = await asyncio.to_thread(alarms_now, self.plan.port)
        user = f"rehearsal-{uuid.uuid4().hex[:8]}"
        token = await asyncio.to_thread(fetch_token, user, self.plan.port)
        speaker = Member(self, "speaker", token=token)
        speaker.socket = await speaker.open()
        created = await speaker.socket.request({"action": "createSession", "sourceLanguage": "en"})
        if created.get("type") != "sessionCreated":
            raise ClientError(f"the speaker could not create a session: {created}")
        self.session_id = str(created["sessionId"])
        speaker.start_heartbeats()
        listeners = [
            Member(self, "listener", language=LANGUAGES[i % len(LANGUAGES)])
            for i in range(self.plan.listeners)
        ]
        # Everyone arrives within the first three quarters of the window (a room filling up).
        arrivals = sorted(random.uniform(0, 0.75 * self.plan.join_window_s) for _ in listeners)
        began = time.perf_counter()
        planned = zip(listeners, arrivals, strict=True)
        await asyncio.gather(*(self._join(m, began + at) for m, at in planned))
        outcome.joins_took_s = time.perf_counter() - began
        await self._until_refreshed([speaker, *listeners])
        await speaker.leave()  # the speaker leaves: everyone must be told
        present = [m for m in listeners if m.socket is not None]
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(
                asyncio.gather(*(m.ended.wait() for m in present)), ENDED_TIMEOUT_S
            )
        outcome.ended = sum(m.ended.is_set() for m in listeners)
        outcome.refresh_pushes = sorted(
            m.refresh_pushed_at for m in listeners if m.refresh_pushed_at is not None
        )
        outcome.refreshed = sum(m.refreshed for m in listeners)
        outcome.speaker_refreshed = speaker.refreshed
        await asyncio.gather(*(m.leave() for m in listeners))
        # Give the alarms two of their periods to see the last data, then read them.
        await asyncio.sleep(min(30.0, 2 * 300 / self.scale))
        after = await asyncio.to_thread(alarms_now, self.plan.port)
        outcome.alarms = fired_since(before, after, outcome.started_at)
        outcome.finished_at = time.time()
        return outcome

    async def _join(self, member: Member, at: float) -> None:
        await asyncio.sleep(max(0.0, at - time.perf_counter()))
        body = {
            "action": "joinSession",
            "sessionId": self.session_id,
            "targetLanguage": member.language,
        }
        sent = time.perf_counter()
        socket, why = await member.connect_and_send(body, "sessionJoined")
        if socket is None:
            self.outcome.refused.append(f"listener join {why}")
            return
        # Client-side: from opening the connection to the join's reply (retries included).
        self.outcome.join_ms.append((time.perf_counter() - sent) * 1000)
        member.socket = socket
        member.start_heartbeats()

    async def _until_refreshed(self, members: Sequence[Member]) -> None:
        """Until every member still connected has refreshed, bounded by the refresh window,
        two heartbeats and a margin after the last join."""
        deadline = time.perf_counter() + self.refresh_window_s[1] + 2 * self.plan.heartbeat_s + 30
        while time.perf_counter() < deadline:
            waiting = [m for m in members if m.socket is not None and not m.refreshed]
            if not waiting:
                return
            await asyncio.sleep(0.5)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m local rehearse",
        description="Play an event (one speaker, N listeners from one address) through a "
        'running local stack: start it with make dev ARGS="--alarm-time-scale 60".',
    )
    p.add_argument(
        "--port", type=int, default=None, help="the local stack's port (default: the one running)"
    )
    p.add_argument("--listeners", type=int, default=300, help="listeners (default 300)")
    p.add_argument(
        "--join-window", type=float, default=60.0, metavar="SECONDS", help="joins within this"
    )
    p.add_argument(
        "--max-minutes",
        type=float,
        default=MAX_MINUTES_DEFAULT,
        help="refuse to start if the event would take longer (a stack at real time)",
    )
    return p


def main(argv: Sequence[str]) -> int:
    args = parser().parse_args(argv)
    try:
        port = args.port if args.port is not None else the_running_stack().port
        info = fetch_info(port)
    except (NoLocalStack, NoStackFound) as error:
        print(f"error: {error}")
        return 2
    plan = Plan(port, args.listeners, args.join_window, max_minutes=args.max_minutes)
    rehearsal = Rehearsal(plan, info)
    if rehearsal.expected_minutes() > plan.max_minutes:
        print(
            f"error: at this stack's time scale (×{rehearsal.scale:g}) the refresh point is "
            f"{rehearsal.refresh_window_s[0] / 60:.0f} min away; start the stack with "
            'make dev ARGS="--alarm-time-scale 60" (or raise --max-minutes)'
        )
        return 2
    try:
        outcome = asyncio.run(rehearsal.run())
    except (ClientError, NoLocalStack) as error:
        print(f"error: {error}")
        return 1
    print(render(outcome, info, plan.port))
    return 0 if outcome.passed else 1
