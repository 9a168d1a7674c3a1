"""Measure the local stack: join latency and sessionEnded fan-out time (127.0.0.1 only).

    python -m local bench [--listeners 100] [--fanout 100 500] [--rounds 3]

Starts its own stack (free ports, limits raised: every client shares 127.0.0.1), then:

* join latency: ``--listeners`` connected clients send ``joinSession`` at once; each
  latency is send → ``sessionJoined``. A warm-up round is not counted. Also 30 joins one
  at a time (``joinAlone``): the latency without contention.
* fan-out: N listeners joined, the speaker closes its connection; the time is from the
  close until the last listener has received ``sessionEnded``.

Numbers describe this machine and the emulation (moto, in-process handlers), not AWS.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import tempfile
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from websockets.asyncio.client import ClientConnection, connect

from local.process import StackProcess

TIMEOUT_S = 60.0


def percentile(samples: Sequence[float], q: float) -> float:
    ordered = sorted(samples)
    index = min(len(ordered) - 1, max(0, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[index]


async def _open(url: str, token: str | None = None) -> ClientConnection:
    target = f"{url}?token={token}" if token else url
    return await connect(target, open_timeout=TIMEOUT_S, max_size=None)


async def _ask(ws: ClientConnection, payload: dict[str, Any]) -> dict[str, Any]:
    await ws.send(json.dumps(payload))
    return json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT_S))


async def _session(stack: StackProcess) -> tuple[ClientConnection, str]:
    speaker = await _open(stack.url, stack.token(f"bench-{uuid.uuid4().hex[:8]}"))
    reply = await _ask(speaker, {"action": "createSession", "sourceLanguage": "en"})
    if reply.get("type") != "sessionCreated":
        raise RuntimeError(f"createSession failed: {reply}")
    return speaker, str(reply["sessionId"])


async def _join_all(
    stack: StackProcess, session_id: str, count: int
) -> tuple[list[ClientConnection], list[float]]:
    """Open ``count`` connections, then send every joinSession at once; latencies in ms."""
    sockets = list(await asyncio.gather(*(_open(stack.url) for _ in range(count))))
    join = {"action": "joinSession", "sessionId": session_id, "targetLanguage": "es"}

    async def one(ws: ClientConnection) -> float:
        started = time.perf_counter()
        reply = await _ask(ws, join)
        if reply.get("type") != "sessionJoined":
            raise RuntimeError(f"joinSession failed: {reply}")
        return (time.perf_counter() - started) * 1000

    latencies = list(await asyncio.gather(*(one(ws) for ws in sockets)))
    return sockets, latencies


async def _wait_ended(ws: ClientConnection) -> float:
    deadline = time.monotonic() + TIMEOUT_S
    while time.monotonic() < deadline:
        message = json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT_S))
        if message.get("type") == "sessionEnded":
            return time.perf_counter()
    raise TimeoutError("no sessionEnded")


async def join_round(stack: StackProcess, count: int) -> list[float]:
    speaker, session_id = await _session(stack)
    sockets, latencies = await _join_all(stack, session_id, count)
    await asyncio.gather(*(ws.close() for ws in sockets))
    await speaker.close()
    return latencies


async def sequential_joins(stack: StackProcess, count: int) -> list[float]:
    """One join at a time (connection already open): latency without contention, in ms."""
    speaker, session_id = await _session(stack)
    sockets, samples = [], []
    for _ in range(count):
        joined, latency = await _join_all(stack, session_id, 1)
        sockets += joined
        samples += latency
    await asyncio.gather(*(ws.close() for ws in sockets))
    await speaker.close()
    return samples


async def fanout_round(stack: StackProcess, count: int) -> float:
    """Seconds from the speaker's close to the last listener's sessionEnded."""
    speaker, session_id = await _session(stack)
    sockets, _ = await _join_all(stack, session_id, count)
    waiters = [asyncio.create_task(_wait_ended(ws)) for ws in sockets]
    started = time.perf_counter()
    await speaker.close()
    ended = await asyncio.gather(*waiters)
    took = max(ended) - started
    await asyncio.gather(*(ws.close() for ws in sockets))
    return took


async def measure(stack: StackProcess, listeners: int, fanouts: list[int], rounds: int) -> dict:
    await join_round(stack, min(listeners, 20))  # warm-up: imports, cold starts
    samples: list[float] = []
    for _ in range(rounds):
        samples += await join_round(stack, listeners)
    alone = await sequential_joins(stack, 30)
    results: dict[str, Any] = {
        "joinAlone": {
            "joins": len(alone),
            "p50_ms": round(statistics.median(alone), 1),
            "p95_ms": round(percentile(alone, 95), 1),
        },
        "join": {
            "listeners": listeners,
            "rounds": rounds,
            "p50_ms": round(statistics.median(samples), 1),
            "p95_ms": round(percentile(samples, 95), 1),
            "max_ms": round(max(samples), 1),
        },
        "fanout": {},
    }
    for count in fanouts:
        times = [await fanout_round(stack, count) for _ in range(rounds)]
        results["fanout"][str(count)] = {
            "median_ms": round(statistics.median(times) * 1000, 1),
            "max_ms": round(max(times) * 1000, 1),
        }
    return results


def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m local bench", description=__doc__)
    parser.add_argument("--listeners", type=int, default=100, help="concurrent joins")
    parser.add_argument("--fanout", type=int, nargs="+", default=[100, 500])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    biggest = max([args.listeners, *args.fanout])
    settings = {
        "maxListenersPerSession": biggest,
        "maxActiveSessions": 1000,
        "listenerJoinsPerMinute": 1_000_000,
        "connectionAttemptsPerMinute": 1_000_000,
        "sessionsPerHour": 1000,
    }
    overrides = [a for k, v in settings.items() for a in ("--set", f"{k}={v}")]
    with tempfile.TemporaryDirectory(prefix="local-bench-") as logs:
        stack = StackProcess([*overrides, "--quiet"], Path(logs), "bench").start()
        try:
            results = asyncio.run(measure(stack, args.listeners, args.fanout, args.rounds))
        finally:
            code = stack.stop()
    results["machine"] = {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "stackReadySeconds": round(stack.ready_s, 2),
        "stackExit": code,
    }
    print(json.dumps(results, indent=2))
    return 0 if code == 0 else 1
