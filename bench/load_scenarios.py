"""The load's scenario: one session with N listeners — joins, heartbeats, the fan-outs.

Each scenario runs against a running local stack; every wait is bounded.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from typing import Any

from bench.load_clients import Baseline, Client, error_kind, open_client, reply_kind, send_phase
from bench.load_results import FanOut, Samples, ScenarioResult

FAN_OUT_TIMEOUT_S = 60.0
CONNECT_CONCURRENCY = 50
# Heartbeats are measured alone (1 in flight) and with some load (10 in flight).
HEARTBEAT_CONCURRENCY = (1, 10)
SETTLE_S = 2.0


async def _connect_many(
    url: str, count: int, result: ScenarioResult, signal: asyncio.Event
) -> list[Client]:
    gate = asyncio.Semaphore(CONNECT_CONCURRENCY)

    async def one() -> Client | None:
        async with gate:
            try:
                return await open_client(url, signal)
            except Exception as error:
                result.connect_errors[error_kind(error)] += 1
                return None

    clients = [c for c in await asyncio.gather(*(one() for _ in range(count))) if c is not None]
    result.connected = len(clients)
    return clients


async def _join_all(clients: list[Client], session_id: str, samples: Samples) -> list[Client]:
    """All clients send joinSession at the same moment; each times send → reply."""
    start = asyncio.Event()
    joined: list[Client] = []

    async def one(client: Client, index: int) -> None:
        await start.wait()
        language = ("es", "fr", "de", "it", "pt")[index % 5]
        try:
            rtt, reply = await client.request(
                {"action": "joinSession", "sessionId": session_id, "targetLanguage": language}
            )
        except Exception as error:
            samples.errors[error_kind(error)] += 1
            return
        if reply.get("type") == "sessionJoined":
            samples.seconds.append(rtt)
            joined.append(client)
        else:
            samples.errors[reply_kind(reply)] += 1

    tasks = [asyncio.create_task(one(c, i)) for i, c in enumerate(clients)]
    await asyncio.sleep(0)  # every task is now waiting on the start line
    start.set()
    await asyncio.gather(*tasks)
    return joined


async def _heartbeats(
    clients: list[Client], count: int, samples: Samples, concurrency: int
) -> None:
    """``count`` heartbeats round-robin over ``clients``, at most ``concurrency`` in flight."""
    gate = asyncio.Semaphore(concurrency)
    busy = [asyncio.Lock() for _ in clients]  # one request in flight per client

    async def one(index: int) -> None:
        slot = index % len(clients)
        async with gate, busy[slot]:
            try:
                rtt, reply = await clients[slot].request({"action": "heartbeat"})
            except Exception as error:
                samples.errors[error_kind(error)] += 1
                return
            if reply.get("type") == "heartbeatAck":
                samples.seconds.append(rtt)
            else:
                samples.errors[reply_kind(reply)] += 1

    if clients:
        await asyncio.gather(*(one(i) for i in range(count)))


async def _await_ended(
    clients: list[Client],
    match: Any,
    started: float,
    deadline_s: float,
    fan_out: FanOut,
    signal: asyncio.Event,
) -> None:
    """Wait until ``fan_out.listeners`` clients hold a matching sessionEnded, or the deadline.

    Counted over every connected client: a client whose join timed out may still have become
    a listener (the stack finishes the invocation), and then it is sent the message too.
    """

    def arrivals() -> list[float]:
        found = []
        for client in clients:
            for arrived, message in client.ended:
                if match(message):
                    found.append(arrived)
                    break
        return found

    deadline = time.monotonic() + deadline_s
    received = arrivals()
    while len(received) < fan_out.listeners:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        signal.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(signal.wait(), remaining)
        received = arrivals()
    fan_out.received = len(received)
    if received:
        fan_out.last_s = max(received) - started
    missing = fan_out.listeners - len(received)
    if missing > 0:
        fan_out.errors[f"not received within {deadline_s:.0f}s"] += missing


async def _timed_fan_out(
    clients: list[Client],
    marker: int,
    fan_out: FanOut,
    send: Callable[[], tuple[float | None, dict[str, int]]],
    signal: asyncio.Event,
    pool: ProcessPoolExecutor,
) -> None:
    """Start the clock, run ``send`` in the worker, wait for every listener's message."""
    loop = asyncio.get_running_loop()
    started = time.perf_counter()
    waiter = asyncio.create_task(
        _await_ended(
            clients,
            lambda m: m.get("timestamp") == marker,
            started,
            FAN_OUT_TIMEOUT_S,
            fan_out,
            signal,
        )
    )
    try:
        sender_s, errors = await asyncio.wait_for(
            loop.run_in_executor(pool, send), FAN_OUT_TIMEOUT_S
        )
        fan_out.sender_s = sender_s
        fan_out.errors.update(errors)
    except Exception as error:
        fan_out.errors[f"sender {type(error).__name__}"] += 1
    await waiter


async def run_scenario(
    stack: Any,
    listeners: int,
    token: str,
    *,
    heartbeats: int = 0,
    baseline: Baseline | None = None,
    pool: ProcessPoolExecutor | None = None,
) -> ScenarioResult:
    """One session with ``listeners`` listeners: joins, heartbeats, the fan-outs."""
    from runtime.protocol import now_ms, server_message

    result = ScenarioResult(listeners)
    url = stack.url
    signal = asyncio.Event()
    speaker = await open_client(f"{url}?token={token}")
    clients: list[Client] = []
    try:
        _, created = await speaker.request({"action": "createSession", "sourceLanguage": "en"})
        if created.get("type") != "sessionCreated":
            result.notes.append(f"createSession answered {created}")
            return result
        session_id = str(created["sessionId"])
        clients = await _connect_many(url, listeners, result, signal)
        joined = await _join_all(clients, session_id, result.joins)
        expected = len(joined)
        if baseline is not None:
            # Joins the stack gave up on (function timeout) may still land: wait for the
            # listener set to stop changing, so the next phases start on an idle stack.
            expected, waited = await asyncio.to_thread(
                baseline.settled_listeners, session_id, len(clients)
            )
            if expected != len(joined):
                result.notes.append(
                    f"{expected} listener records after {waited:.0f}s of settling, "
                    f"{len(joined)} joins answered"
                )
        if heartbeats:
            for concurrency in HEARTBEAT_CONCURRENCY:
                samples = result.heartbeats[concurrency] = Samples()
                await _heartbeats(joined, heartbeats, samples, concurrency)
        markers: set[int] = set()
        if pool is not None:
            # Distinct timestamps tell each phase's sessionEnded apart from the others.
            first = now_ms() - 10_000
            for marker, attribute, mode in (
                (first, "sequential", "sequential"),
                (first + 1, "fan_out", "concurrent"),
            ):
                message = server_message(
                    "sessionEnded",
                    sessionId=session_id,
                    reason="speakerDisconnected",
                    timestamp=marker,
                )
                phase = FanOut(expected)
                setattr(result, attribute, phase)
                markers.add(marker)
                await _timed_fan_out(
                    clients,
                    marker,
                    phase,
                    functools.partial(send_phase, mode, session_id, message, expected),
                    signal,
                    pool,
                )
        result.concurrent = FanOut(expected)
        started = time.perf_counter()
        waiter = asyncio.create_task(
            _await_ended(
                clients,
                lambda m: m.get("timestamp") not in markers,
                started,
                FAN_OUT_TIMEOUT_S,
                result.concurrent,
                signal,
            )
        )
        await speaker.close()
        await waiter
    finally:
        await speaker.close()
        await asyncio.gather(*(c.close() for c in clients))
        unexpected = sum(c.unexpected for c in clients)
        if unexpected:
            result.notes.append(f"{unexpected} unexpected messages")
        await asyncio.sleep(SETTLE_S)  # let the stack run the listeners' $disconnect
    return result
