"""The fire drills: each one's traffic and fault, until its alarm fires (docs/local.md).

A drill's pressure runs until the runner sees its alarm in ALARM, then is cancelled; the
runner clears the faults, closes the clients and waits for OK.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Coroutine
from typing import Any

from websockets.asyncio.client import ClientConnection

from local.drills.base import SLOW_CALL_MAX_MS, Drill, DrillFailed, DrillRun
from runtime.routes import ROUTES


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


async def _keep_starting(
    start: Callable[[int], Coroutine[Any, Any, None]], per_tick: int, period: float
) -> None:
    """Start ``per_tick`` clients (numbered) three times a period, until the drill is
    cancelled (its alarm fired); then cancel those still running."""
    running: set[asyncio.Task[None]] = set()
    started = 0
    try:
        while True:
            for _ in range(per_tick):
                task = asyncio.create_task(start(started))
                started += 1
                running.add(task)
                task.add_done_callback(running.discard)
            await asyncio.sleep(max(0.3, period / 3))
    finally:
        for task in running:
            task.cancel()
        await asyncio.gather(*running, return_exceptions=True)


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

    await _keep_starting(lambda _: join(), 3, period)  # a few joins every period


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


async def _creation_latency(run: DrillRun) -> None:
    """Slow DynamoDB under createSession: speakers create sessions, each slower than the
    threshold (createSession makes three calls: the connection, the rate limit, the write)."""
    # Each call under the functions' 2 s read timeout, the three past the threshold.
    delay = min(int(run.alarm["threshold"]) // 2 + 100, SLOW_CALL_MAX_MS)
    await run.fault(service="dynamodb", kind="slow", delayMs=delay, functions=["create-session"])
    run.say(f"fault: DynamoDB calls of create-session wait {delay} ms; speakers create sessions")
    period = float(run.alarm["periodRealSeconds"])

    async def create(i: int) -> None:
        ws = await run.connect(await run.token(f"drill-{run.block}-creator-{i}"))
        await run.request(ws, {"action": "createSession", "sourceLanguage": "en"})
        await ws.close()  # the session ends with its speaker: ActiveSessions stays low

    await _keep_starting(create, 2, period)  # a few creations every period


async def _dependency_failures(run: DrillRun) -> None:
    """The RateLimits table fails under $connect: handshakes still succeed (the limits fail
    open), and each one is a degradation survived."""
    await run.fault(
        service="dynamodb", kind="error", functions=["connect"], operations=["UpdateItem"]
    )
    run.say("fault: the connect function's rate-limit writes fail (limits fail open); "
            "clients keep connecting")  # fmt: skip
    while True:
        opened = await asyncio.gather(*(run.connect() for _ in range(4)), return_exceptions=True)
        await asyncio.gather(
            *(ws.close() for ws in opened if not isinstance(ws, BaseException)),
            return_exceptions=True,
        )
        await asyncio.sleep(0.3)


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
            "creation-latency",
            "slow DynamoDB under createSession: SessionCreationLatency p95 over "
            "sessionCreationP95Ms",
            ("session-creation-latency",),
            _creation_latency,
        ),
        Drill(
            "dependency-failures",
            "the rate-limit table fails under $connect: limits fail open, DependencyFailures",
            ("dependency-failures",),
            _dependency_failures,
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
