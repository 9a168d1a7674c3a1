"""Soak and flood through the local stack: memory per request, and fairness under a flood.

Two measurements against one ``python -m local`` subprocess (per-IP limits raised, since every
client is 127.0.0.1):

* **soak**: small frames (heartbeats) from many connections, a few in flight on each; the
  resident memory (``VmRSS``) of the stack's process and of the embedded AWS (moto) process
  after a warm-up, every 10k frames during, and a few seconds after the last reply. What is
  kept must grow with time, not with requests: the budget is < 50 MB each for 100k frames.
* **flood fairness**: one well-behaved client sends a heartbeat every 0.2 s and times each
  round trip, alone, then while 40 other connections send heartbeats as fast as their
  replies (or throttle answers) come back. API Gateway gives every invocation an environment
  of its own, so a flood does not queue the others: the budget is 3x the round trip before
  the flood (p50).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.report import Section, fmt_percentiles, median

READY_TIMEOUT_S = 90.0
REPLY_TIMEOUT_S = 30.0
HEARTBEAT = json.dumps({"action": "heartbeat"})
# Every client is 127.0.0.1: the per-IP limits would refuse most of this load.
STACK_OVERRIDES = ("connectionAttemptsPerMinute=100000", "heartbeatsPerMinute=100000")
MEMORY_BUDGET_MB = 50.0
FAIRNESS_BUDGET = 3.0


@dataclass(frozen=True)
class SoakPlan:
    # 20k keeps the section near two minutes on a 2-core machine (the rows give MB per 10k
    # frames, the slope; the budget is for 100k).
    frames: int = 20_000
    connections: int = 40
    in_flight: int = 4  # per connection
    warmup: int = 5_000
    flood_connections: int = 40
    probe_interval_s: float = 0.2
    probes: int = 40

    @classmethod
    def quick(cls) -> SoakPlan:
        return cls(frames=10_000, warmup=2_000, probes=15)


@dataclass
class Memory:
    """RSS (MB) of the stack and of the embedded AWS at the points measured."""

    points: list[tuple[int, float, float]] = field(default_factory=list)  # (frames, stack, aws)

    def add(self, frames: int, stack_pid: int, aws_pid: int) -> None:
        self.points.append((frames, rss_mb(stack_pid), rss_mb(aws_pid)))


def rss_mb(pid: int) -> float:
    """Resident memory of ``pid`` in MB (``VmRSS`` from /proc)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


async def _connect(url: str) -> Any:
    from websockets.asyncio.client import connect

    return await connect(
        url, open_timeout=REPLY_TIMEOUT_S, ping_interval=None, compression=None, max_size=None
    )


class Counter:
    def __init__(self) -> None:
        self.sent = 0
        self.replies = 0
        self.lost = 0
        self.kinds: dict[str, int] = {}

    def reply(self, text: str | bytes) -> None:
        self.replies += 1
        try:
            doc = json.loads(text)
        except ValueError:
            kind = "not JSON"
        else:
            kind = "?"
            if isinstance(doc, dict):
                kind = str(doc.get("type") or doc.get("message") or "?")
                if kind == "error":
                    kind = f"error {doc.get('code')}"
        self.kinds[kind] = self.kinds.get(kind, 0) + 1


@contextlib.asynccontextmanager
async def _counting_replies(
    ws: Any, counter: Counter, window: asyncio.Semaphore
) -> AsyncIterator[None]:
    """While inside: every reply on ``ws`` is counted and frees a place in ``window``."""

    async def receive() -> None:
        with contextlib.suppress(Exception):
            async for text in ws:
                counter.reply(text)
                window.release()

    reader = asyncio.create_task(receive())
    try:
        yield
    finally:
        reader.cancel()
        with contextlib.suppress(BaseException):
            await reader


async def _pump(ws: Any, counter: Counter, budget: list[int], in_flight: int) -> None:
    """Send heartbeats with ``in_flight`` outstanding until ``budget[0]`` frames are spent."""
    window = asyncio.Semaphore(in_flight)
    async with _counting_replies(ws, counter, window):
        while budget[0] > 0:
            try:
                await asyncio.wait_for(window.acquire(), REPLY_TIMEOUT_S)
            except TimeoutError:  # a frame never answered (a timed-out handler): go on
                counter.lost += 1
            if budget[0] <= 0:
                break
            budget[0] -= 1
            counter.sent += 1
            await ws.send(HEARTBEAT)
        for _ in range(in_flight):  # the outstanding replies
            try:
                await asyncio.wait_for(window.acquire(), REPLY_TIMEOUT_S)
            except TimeoutError:
                counter.lost += 1


async def _drive(sockets: list[Any], frames: int, in_flight: int, counter: Counter) -> float:
    budget = [frames]
    started = time.perf_counter()
    await asyncio.gather(*(_pump(ws, counter, budget, in_flight) for ws in sockets))
    return time.perf_counter() - started


async def soak(url: str, stack_pid: int, aws_pid: int, plan: SoakPlan) -> dict[str, Any]:
    sockets = [await _connect(url) for _ in range(plan.connections)]
    counter = Counter()
    try:
        await _drive(sockets, plan.warmup, plan.in_flight, counter)
        await asyncio.sleep(3)  # the batches of the warm-up published
        memory = Memory()
        memory.add(0, stack_pid, aws_pid)
        done, seconds = 0, 0.0
        while done < plan.frames:
            step = min(10_000, plan.frames - done)
            seconds += await _drive(sockets, step, plan.in_flight, counter)
            done += step
            memory.add(done, stack_pid, aws_pid)
    finally:
        for ws in sockets:
            with contextlib.suppress(Exception):
                await ws.close()
    await asyncio.sleep(5)  # batches published, connections' $disconnect run
    memory.add(done, stack_pid, aws_pid)
    return {"memory": memory, "seconds": seconds, "counter": counter, "frames": done}


async def _probe(ws: Any, count: int, interval_s: float) -> list[float]:
    rtts = []
    for _ in range(count):
        started = time.perf_counter()
        await ws.send(HEARTBEAT)
        while True:
            doc = json.loads(await asyncio.wait_for(ws.recv(), REPLY_TIMEOUT_S))
            if isinstance(doc, dict) and doc.get("type") == "heartbeatAck":
                break
        rtts.append(time.perf_counter() - started)
        await asyncio.sleep(interval_s)
    return rtts


async def _flooder(ws: Any, counter: Counter, stop: asyncio.Event) -> None:
    """Heartbeats as fast as answers come back, a few in flight."""
    window = asyncio.Semaphore(8)
    async with _counting_replies(ws, counter, window):
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(window.acquire(), 1.0)
                counter.sent += 1
                await ws.send(HEARTBEAT)


async def flood_fairness(url: str, plan: SoakPlan) -> dict[str, Any]:
    probe = await _connect(url)
    flooders = [await _connect(url) for _ in range(plan.flood_connections)]
    counter = Counter()
    try:
        await _probe(probe, 5, plan.probe_interval_s)  # warm-up
        before = await _probe(probe, plan.probes, plan.probe_interval_s)
        stop = asyncio.Event()
        tasks = [asyncio.create_task(_flooder(ws, counter, stop)) for ws in flooders]
        await asyncio.sleep(2)  # the flood is on
        started = time.perf_counter()
        during = await _probe(probe, plan.probes, plan.probe_interval_s)
        flood_s = time.perf_counter() - started
        stop.set()
        await asyncio.gather(*tasks, return_exceptions=True)
    finally:
        for ws in [probe, *flooders]:
            with contextlib.suppress(Exception):
                await ws.close()
    return {"before": before, "during": during, "counter": counter, "flood_s": flood_s}


@contextlib.contextmanager
def soak_stack(notes: list[str]) -> Iterator[Any]:
    from local.process import StackFailed, StackProcess

    args = ["--stack", "dev", "--quiet"]
    for item in STACK_OVERRIDES:
        args += ["--set", item]
    log_dir = Path(tempfile.mkdtemp(prefix="bench-soak-"))
    stack = StackProcess(args, log_dir, "bench-soak-stack").start(timeout_s=READY_TIMEOUT_S)
    try:
        yield stack
    finally:
        tracebacks = stack.stderr().count("Traceback (most recent call last)")
        if tracebacks:
            notes.append(f"the stack's stderr has {tracebacks} traceback(s): {log_dir}")
        try:
            code = stack.stop(timeout_s=60)
        except StackFailed as error:
            notes.append(f"the local stack had to be killed: {error}")
        else:
            if code != 0:
                notes.append(f"the local stack exited with {code}")


def _memory_rows(section: Section, result: dict[str, Any], plan: SoakPlan) -> None:
    memory: Memory = result["memory"]
    frames = result["frames"]
    (_, stack0, aws0), *during, (_, stack_after, aws_after) = memory.points
    last_frames, stack_last, aws_last = during[-1]
    per_10k = 10_000 / max(last_frames, 1)
    counter: Counter = result["counter"]
    rate = frames / result["seconds"] if result["seconds"] else 0.0
    section.add(
        f"soak: {frames:,} heartbeats from {plan.connections} connections "
        f"({plan.in_flight} in flight each), {rate:,.0f}/s",
        ", ".join(f"{k} {v:,}" for k, v in sorted(counter.kinds.items())),
        f"{counter.sent:,} sent, {counter.replies:,} answered",
        "OK" if counter.replies >= counter.sent else "ERRORS",
    )
    for name, start, last, after in (
        ("stack", stack0, stack_last, stack_after),
        ("embedded AWS", aws0, aws_last, aws_after),
    ):
        grown = after - start
        section.add(
            f"soak: {name} RSS after warm-up → after the last frame → 5 s later",
            f"{start:.0f} → {last:.0f} → {after:.0f} MB: {(last - start) * per_10k:+.1f} MB "
            f"per 10k frames during, {grown:+.1f} MB retained",
            f"< {MEMORY_BUDGET_MB:.0f} MB retained per 100k frames",
            "OK" if grown * 100_000 / max(frames, 1) < MEMORY_BUDGET_MB else "OVER",
        )
    section.notes.append(
        "soak RSS (frames: stack MB / embedded AWS MB): "
        + "; ".join(f"{n:,}: {s:.0f} / {a:.0f}" for n, s, a in memory.points)
    )


def _fairness_rows(section: Section, result: dict[str, Any], plan: SoakPlan) -> None:
    before, during = result["before"], result["during"]
    counter: Counter = result["counter"]
    ratio = median(during) / median(before)
    section.add(
        f"flood fairness: a heartbeat every {plan.probe_interval_s:g} s, alone ×{len(before)}",
        fmt_percentiles(before, (50, 95, 99), 0),
    )
    answered = ", ".join(f"{k} {v:,}" for k, v in sorted(counter.kinds.items()))
    section.add(
        f"flood fairness: the same during a flood from {plan.flood_connections} connections "
        f"×{len(during)} (flood: {counter.sent / result['flood_s']:,.0f} frames/s; {answered})",
        f"{fmt_percentiles(during, (50, 95, 99), 0)}: p50 {ratio:.1f}x alone",
        f"p50 ≤ {FAIRNESS_BUDGET:g}x alone",
        "OK" if ratio <= FAIRNESS_BUDGET else "OVER",
    )


def _health_row(section: Section, stack: Any) -> None:
    """The supervisor under this load: probes missed while merely busy, and whether the
    embedded AWS was ever declared not answering (which refuses handshakes with 503)."""
    from client.local_stack import fetch_info

    info = fetch_info(stack.port)
    declared = stack.stderr().count("is not answering")
    section.add(
        "health check under the soak and the flood: probes missed while busy, "
        "times declared not answering",
        f"{info.get('awsSlowProbes', 0)} missed, declared {declared} time(s), now "
        f"{info.get('awsState')}",
        "never declared while merely busy",
        "OK" if declared == 0 else "DECLARED",
    )


def soak_section(plan: SoakPlan) -> Section:
    section = Section("Soak and flood through the local stack (memory, fairness)")
    with soak_stack(section.notes) as stack:
        stack_pid, aws_pid = int(stack.info["pid"]), int(stack.info["awsPid"])
        result = asyncio.run(soak(stack.url, stack_pid, aws_pid, plan))
        _memory_rows(section, result, plan)
        _fairness_rows(section, asyncio.run(flood_fairness(stack.url, plan)), plan)
        _health_row(section, stack)
    return section


if __name__ == "__main__":
    import sys

    from bench.report import render_notes, render_table

    chosen = SoakPlan.quick() if "--quick" in sys.argv else SoakPlan()
    built = soak_section(chosen)
    print(render_table([built]))
    print(render_notes([built]))
