"""Fire drills: drive a running local stack until an alarm fires, then let it recover.

    python -m local drill --list
    python -m local drill NAME [--port 8080]

Each drill sends real traffic (WebSocket clients speaking the protocol) and injects a real
fault (``/_local/faults``) until its alarm reaches ALARM, then removes the fault, stops the
traffic and waits for OK, printing every alarm transition on the way. It exits 0 only if
both happened. Start the stack with ``--alarm-time-scale 60`` so a drill takes about a
minute (at scale 1 a 5-minute alarm takes minutes to move).

Clients connect from distinct loopback addresses (127.x.y.z, a fresh block per run), as
distinct users: the per-IP and per-user rate limits of the stack stay in force and are not
what the drill measures.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any

from websockets.asyncio.client import ClientConnection

from client.connection import ClientError, open_connection
from runtime.aws import READ_TIMEOUT_S
from runtime.routes import ROUTES
from runtime.terminal import printable

ALARM, OK = "ALARM", "OK"
POLL_S = 0.25
REPLY_TIMEOUT_S = 30.0
CONNECTIONS_PER_ADDRESS = 8  # under the default connectionAttemptsPerMinute (20)
SLOW_CALL_MAX_MS = READ_TIMEOUT_S * 1000 - 200  # a slow call, not yet a read timeout


class DrillFailed(Exception):
    """The drill could not run (no stack, no such alarm…): exit 2."""


# --- the running stack ---------------------------------------------------------------------------


class Stack:
    """HTTP access to a running local stack's local-only endpoints."""

    def __init__(self, port: int, host: str = "127.0.0.1") -> None:
        self.base = f"http://{host}:{port}"
        self.port = port

    def call(self, method: str, path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.base + path, data=data, method=method)  # noqa: S310
        request.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
                return json.loads(response.read() or b"null")
        except urllib.error.HTTPError as error:
            detail = error.read().decode(errors="replace")[:300]
            raise DrillFailed(f"{method} {path}: HTTP {error.code} {detail}") from None
        except OSError as error:
            raise DrillFailed(
                f"no local stack on port {self.port} ({error}); start one with "
                "python -m local --alarm-time-scale 60"
            ) from None

    async def acall(self, method: str, path: str, body: Any = None) -> Any:
        return await asyncio.to_thread(self.call, method, path, body)


@dataclass
class Drill:
    name: str
    summary: str
    # The alarm it fires: the first of these slugs the stack has (function alarms: by name).
    targets: tuple[str, ...]
    pressure: Callable[[DrillRun], Coroutine[Any, Any, None]]


@dataclass
class DrillRun:
    """One run of a drill: the stack, its target alarm, the clients it opened."""

    stack: Stack
    info: dict[str, Any]
    alarm: dict[str, Any]
    clients: list[ClientConnection] = field(default_factory=list)
    block: int = field(default_factory=lambda: random.randint(1, 254))
    opened: int = 0
    replies: dict[str, int] = field(default_factory=dict)

    @property
    def ws_url(self) -> str:
        return str(self.info["websocketUrl"])

    def say(self, text: str) -> None:
        say(text)

    def source(self) -> str:
        """A loopback source address; a new one every CONNECTIONS_PER_ADDRESS connections."""
        n = self.opened // CONNECTIONS_PER_ADDRESS
        self.opened += 1
        return f"127.{self.block}.{n // 250 + 1}.{n % 250 + 1}"

    async def connect(self, token: str | None = None) -> ClientConnection:
        ws = await open_connection(self.ws_url, token, local_addr=(self.source(), 0))
        self.clients.append(ws)
        return ws

    async def token(self, user: str) -> str:
        doc = await self.stack.acall("GET", f"/_local/token?user={user}")
        return str(doc["token"])

    async def request(self, ws: ClientConnection, payload: dict[str, Any]) -> dict[str, Any]:
        """Send ``payload`` and return the reply (an ``error`` reply too), counted by kind."""
        await ws.send(json.dumps(payload))
        while True:
            doc: dict[str, Any] = json.loads(await asyncio.wait_for(ws.recv(), REPLY_TIMEOUT_S))
            if doc.get("type") in ("heartbeatAck",) and payload.get("action") != "heartbeat":
                continue
            kind = doc.get("code") or doc.get("type") or "?"
            self.replies[kind] = self.replies.get(kind, 0) + 1
            return doc

    async def fault(self, **fault: Any) -> None:
        await self.stack.acall("POST", "/_local/faults", fault)

    async def close_all(self) -> None:
        clients, self.clients = self.clients, []
        await asyncio.gather(*(ws.close() for ws in clients), return_exceptions=True)


# --- the drills ----------------------------------------------------------------------------------


async def _server_errors(run: DrillRun) -> None:
    """A DynamoDB outage: every request that needs the tables fails after its retries."""
    clients = [await run.connect() for _ in range(8)]
    await run.fault(service="dynamodb", kind="error", errorCode="InternalServerError")
    run.say("fault: DynamoDB answers every call with 500 InternalServerError")

    async def keep_asking(ws: ClientConnection) -> None:
        while True:
            await run.request(ws, {"action": "joinSession", "sessionId": "golden-eagle-427",
                                   "targetLanguage": "es"})  # fmt: skip
            await asyncio.sleep(0.2)

    await asyncio.gather(*(keep_asking(ws) for ws in clients))


async def _join_latency(run: DrillRun) -> None:
    """Slow DynamoDB under joinSession: listeners join, each join slower than the threshold."""
    token = await run.token(f"drill-{run.block}-speaker")
    speaker = await run.connect(token)
    created = await run.request(speaker, {"action": "createSession", "sourceLanguage": "en"})
    if created.get("type") != "sessionCreated":
        raise DrillFailed(f"could not create a session: {created}")
    session = created["sessionId"]
    # Each join makes several DynamoDB calls; a delay past the functions' 2 s read timeout
    # would turn into timeouts (SERVICE_UNAVAILABLE) instead of slowness.
    delay = min(int(run.alarm["threshold"]) + 100, SLOW_CALL_MAX_MS)
    await run.fault(service="dynamodb", kind="slow", delayMs=delay, functions=["join-session"])
    run.say(f"fault: DynamoDB calls of join-session wait {delay} ms; listeners join {session}")
    period = float(run.alarm["periodRealSeconds"])

    async def join() -> None:
        ws = await run.connect()
        await run.request(ws, {"action": "joinSession", "sessionId": session,
                               "targetLanguage": "es"})  # fmt: skip

    joins: set[asyncio.Task[None]] = set()
    try:
        while True:  # a few joins in every period, until the alarm fires
            for _ in range(3):
                task = asyncio.create_task(join())
                joins.add(task)
                task.add_done_callback(joins.discard)
            await asyncio.sleep(max(0.3, period / 3))
    finally:
        for task in joins:
            task.cancel()
        await asyncio.gather(*joins, return_exceptions=True)


async def _active_sessions(run: DrillRun) -> None:
    """Speakers create sessions until ActiveSessions reaches the alarm's threshold."""
    target = int(run.alarm["threshold"])
    run.say(f"opening {target} sessions (alarm at ActiveSessions >= {target})")
    created = 0

    async def one(i: int) -> bool:
        ws = await run.connect(await run.token(f"drill-{run.block}-speaker-{i}"))
        reply = await run.request(ws, {"action": "createSession", "sourceLanguage": "en"})
        return reply.get("type") == "sessionCreated"

    batch = 10
    for start in range(0, target, batch):
        results = await asyncio.gather(*(one(i) for i in range(start, min(target, start + batch))))
        created += sum(results)
    run.say(f"{created} sessions open; waiting for the scheduled reporter")
    await asyncio.Event().wait()  # hold them open until the alarm fires


async def _function_errors(run: DrillRun) -> None:
    """The heartbeat function crashes (its runtime exits during its DynamoDB call)."""
    heartbeat = next(f for f in ROUTES if f.route_key == "heartbeat")
    count = 2 * (int(run.alarm["threshold"]) + 1)
    clients = [await run.connect() for _ in range(count)]
    await run.fault(service="dynamodb", kind="crash", functions=[heartbeat.name])
    run.say(
        f"fault: {heartbeat.name} crashes during its DynamoDB call (as when Lambda's runtime "
        f"exits); {count} clients send heartbeats"
    )
    while True:
        await asyncio.gather(
            *(ws.send(json.dumps({"action": "heartbeat"})) for ws in clients),
            return_exceptions=True,
        )
        await asyncio.sleep(float(run.alarm["periodRealSeconds"]))


DRILLS: dict[str, Drill] = {
    d.name: d
    for d in (
        Drill(
            "server-errors",
            "DynamoDB outage: requests answered SERVICE_UNAVAILABLE fire the server-errors alarm",
            ("server-errors",),
            _server_errors,
        ),
        Drill(
            "join-latency",
            "slow DynamoDB under joinSession: ListenerJoinLatency p95 over listenerJoinP95Ms",
            ("listener-join-latency",),
            _join_latency,
        ),
        Drill(
            "active-sessions",
            "sessions up to activeSessionsAlarmRatio × maxActiveSessions fire active-sessions",
            ("active-sessions",),
            _active_sessions,
        ),
        Drill(
            "function-errors",
            "the heartbeat function crashes (its runtime exits): its Lambda Errors alarm",
            ("heartbeat-errors",),
            _function_errors,
        ),
    )
}


# --- running one ---------------------------------------------------------------------------------


def say(text: str) -> None:
    sys.stdout.write(f"{time.strftime('%H:%M:%S')}  {text}\n")
    sys.stdout.flush()


def runbook_link(alarm: dict[str, Any], stack: Stack) -> str:
    """The alarm's runbook address; the default (a path in the repository) with the copy the
    running stack serves."""
    address = str(alarm.get("runbook") or "")
    if address.startswith(("http://", "https://")) or "#" not in address:
        return address
    return f"{address}  ({stack.base}/_local/runbooks#{address.split('#', 1)[1]})"


def find_alarm(alarms: Sequence[dict[str, Any]], drill: Drill) -> dict[str, Any]:
    for slug in drill.targets:
        for alarm in alarms:
            if alarm["slug"] == slug or alarm["name"].endswith(f"-{slug}"):
                return alarm
    raise DrillFailed(f"the stack has no alarm {' or '.join(drill.targets)}")


class Watcher:
    """Polls ``/_local/alarms`` and prints every new transition (the drill's alarm marked)."""

    def __init__(self, stack: Stack, target: str) -> None:
        self.stack = stack
        self.target = target
        self.seen: set[tuple[str, str, str]] = set()
        self.state = ""
        self.changed = asyncio.Event()

    async def prime(self) -> None:
        for alarm in await self.stack.acall("GET", "/_local/alarms"):
            for t in alarm["transitions"]:
                self.seen.add((t["name"], t["at"], t["to"]))
            if alarm["name"] == self.target:
                self.state = alarm["state"]

    async def run(self) -> None:
        while True:
            await self.poll()
            await asyncio.sleep(POLL_S)

    async def poll(self) -> None:
        alarms = await self.stack.acall("GET", "/_local/alarms")
        for alarm in alarms:
            for t in alarm["transitions"]:
                key = (t["name"], t["at"], t["to"])
                if key in self.seen:
                    continue
                self.seen.add(key)
                mark = "*" if t["name"] == self.target else " "
                say(f"{mark} {t['name']}: {t['from']} -> {t['to']}  ({t['reason']})")
            if alarm["name"] == self.target and alarm["state"] != self.state:
                self.state = alarm["state"]
                self.changed.set()

    async def until(self, state: str, timeout_s: float) -> float | None:
        """Seconds until the target alarm is in ``state``, or None after ``timeout_s``."""
        began = time.monotonic()
        deadline = began + timeout_s
        while self.state != state:
            self.changed.clear()
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.changed.wait(), left)
        return time.monotonic() - began


async def run_drill(name: str, port: int, host: str = "127.0.0.1") -> int:
    drill = DRILLS[name]
    stack = Stack(port, host)
    info = await stack.acall("GET", "/_local/info")
    alarm = find_alarm(await stack.acall("GET", "/_local/alarms"), drill)
    period = float(alarm["periodRealSeconds"])
    periods = int(alarm["evaluationPeriods"])
    say(
        f"drill {name}: {drill.summary}\n"
        f"  alarm {alarm['name']}: {alarm['statistic']} of {alarm['metricName']} "
        f"{alarm['comparison']} {alarm['threshold']:g} ({alarm['thresholdSetting']}), "
        f"{alarm['datapointsToAlarm']} of {periods} periods of {alarm['period']} s "
        f"(= {period:g} s at time ×{info.get('alarmTimeScale', 1):g})"
    )
    say(f"  runbook: {runbook_link(alarm, stack)}")
    if period > 60:
        say("  note: periods this long make a slow drill; start the stack with "
            "--alarm-time-scale 60")  # fmt: skip
    await stack.acall("DELETE", "/_local/faults")
    watcher = Watcher(stack, alarm["name"])
    await watcher.prime()
    if watcher.state == ALARM:
        say(f"  waiting for {alarm['name']} to leave ALARM first")
    watching = asyncio.create_task(watcher.run())
    run = DrillRun(stack, info, alarm)
    fire_budget = 45.0 + period * (periods + 2)
    clear_budget = 20.0 + period * (periods + 2)
    to_alarm = to_ok = None
    try:
        if await watcher.until(OK, clear_budget) is None:
            raise DrillFailed(f"{alarm['name']} is {watcher.state}, not OK: nothing to drill")
        pressure = asyncio.create_task(drill.pressure(run))
        fired = asyncio.create_task(watcher.until(ALARM, fire_budget))
        await asyncio.wait({pressure, fired}, return_when=asyncio.FIRST_COMPLETED)
        if pressure.done() and pressure.exception() is not None:
            fired.cancel()
            raise pressure.exception()  # type: ignore[misc]
        to_alarm = await fired
        pressure.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await pressure
        say("recovering: faults cleared, traffic stopped")
        await stack.acall("DELETE", "/_local/faults")
        await run.close_all()
        if to_alarm is not None:
            to_ok = await watcher.until(OK, clear_budget)
    except ClientError as error:
        raise DrillFailed(str(error)) from None
    finally:
        watching.cancel()
        await stack.acall("DELETE", "/_local/faults")
        await run.close_all()
    replies = ", ".join(f"{k} {v}" for k, v in sorted(run.replies.items())) or "none"
    say(f"replies seen: {replies}")
    fired_text = f"ALARM after {to_alarm:.1f}s" if to_alarm is not None else "never reached ALARM"
    ok_text = f"OK {to_ok:.1f}s after recovery began" if to_ok is not None else "never back to OK"
    passed = to_alarm is not None and to_ok is not None
    say(f"drill {name}: {'PASSED' if passed else 'FAILED'}: {fired_text}; {ok_text}")
    return 0 if passed else 1


def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m local drill",
        description="Drive a running local stack until an alarm fires and clears "
        "(start it with --alarm-time-scale 60 for minute-long drills).",
    )
    parser.add_argument("name", nargs="?", choices=sorted(DRILLS), help="the drill to run")
    parser.add_argument("--list", action="store_true", help="list the drills")
    parser.add_argument("--port", type=int, default=8080, help="port of the running local stack")
    args = parser.parse_args(argv)
    if args.list or not args.name:
        for drill in DRILLS.values():
            print(f"{drill.name:<16} {drill.summary}")
        return 0 if args.list else 2
    try:
        return asyncio.run(run_drill(args.name, args.port))
    except DrillFailed as error:
        print(f"error: {printable(error)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
