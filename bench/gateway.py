"""Handshake and message round-trip latency of the local gateway's HTTP/WebSocket stack.

Two setups, each in a process of its own with the clients here (one at a time, so the rows
are latencies, not throughput):

* the gateway alone (``bench.gateway_server``: stand-in functions that answer at once), so
  the rows isolate the gateway's own stack: a WebSocket handshake (TCP connect → 101), a
  frame's round trip (send → the route's reply), an @connections POST (request → 200);
* the whole local stack (``python -m local``), where the handshake runs the real ``$connect``
  (a DynamoDB write) and a heartbeat runs the real handler.

``BEFORE`` holds what the same rows measured on the previous stack (the websockets library
behind a hand-written HTTP/1.1 server and request-head sniffing), shown as the reference.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import json
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from bench.report import Section, fmt_percentiles

ROOT = Path(__file__).resolve().parent.parent
PERCENTILES = (50, 95, 99)
READY_TIMEOUT_S = 60.0
REQUEST_TIMEOUT_S = 10.0
# The stack's per-IP limits, raised: every client here is 127.0.0.1.
STACK_OVERRIDES = ("connectionAttemptsPerMinute=100000", "heartbeatsPerMinute=100000")

# Row key → the same measurement on the previous stack (filled in from its bench run).
# Measured with `python -m bench --only gateway` at commit "bench: gateway handshake and
# message latency rows" (websockets 17 with local/front_door.py and local/http.py).
BEFORE: dict[str, str] = {
    "handshake": "p50 0.87 ms · p95 1.15 ms · p99 2.12 ms",
    "message": "p50 0.14 ms · p95 0.19 ms · p99 0.23 ms",
    "post": "p50 0.13 ms · p95 0.33 ms · p99 0.41 ms",
    "stack_handshake": "p50 14.0 ms · p95 19.4 ms · p99 23.4 ms",
    "stack_message": "p50 9.33 ms · p95 15.9 ms · p99 22.7 ms",
}
BEFORE_LABEL = "before (websockets + hand-written HTTP)"


@dataclass(frozen=True)
class GatewayPlan:
    handshakes: int = 200
    messages: int = 500
    posts: int = 300
    stack_handshakes: int = 100
    stack_messages: int = 200

    @classmethod
    def quick(cls) -> GatewayPlan:
        return cls(handshakes=50, messages=100, posts=50, stack_handshakes=30, stack_messages=50)


@dataclass
class Timings:
    seconds: list[float]
    failures: int = 0
    first_error: str = ""

    def failed(self, error: BaseException) -> None:
        self.failures += 1
        self.first_error = self.first_error or f"{type(error).__name__}: {error}"


# --- Measurements (clients on this process's event loop) -----------------------------------------


async def _connect(url: str):
    from websockets.asyncio.client import connect

    return await connect(
        url, open_timeout=REQUEST_TIMEOUT_S, ping_interval=None, compression=None, max_size=None
    )


async def time_handshakes(url: str, count: int) -> Timings:
    """``count`` handshakes one after another: TCP connect until the 101 is read."""
    timings = Timings([])
    for _ in range(count):
        started = time.perf_counter()
        try:
            ws = await _connect(url)
        except Exception as error:
            timings.failed(error)
            continue
        timings.seconds.append(time.perf_counter() - started)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(ws.close(), REQUEST_TIMEOUT_S)
    return timings


async def time_messages(url: str, count: int, frame: dict[str, object], expect: str) -> Timings:
    """``count`` frames on one connection, one in flight: send until the reply is read."""
    timings = Timings([])
    ws = await _connect(url)
    text = json.dumps(frame)
    try:
        for _ in range(count):
            started = time.perf_counter()
            try:
                await ws.send(text)
                reply = json.loads(await asyncio.wait_for(ws.recv(), REQUEST_TIMEOUT_S))
            except Exception as error:
                timings.failed(error)
                continue
            if isinstance(reply, dict) and (reply.get("type") == expect or expect == "*"):
                timings.seconds.append(time.perf_counter() - started)
            else:
                timings.failed(ValueError(f"unexpected reply {str(reply)[:80]}"))
    finally:
        await ws.close()
    return timings


def _post_many(port: int, path: str, count: int, timings: Timings) -> None:
    """``count`` POSTs on one keep-alive HTTP connection (as boto3 pools them)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=REQUEST_TIMEOUT_S)
    try:
        for _ in range(count):
            started = time.perf_counter()
            try:
                conn.request("POST", path, body=b'{"type":"push"}')
                response = conn.getresponse()
                response.read()
            except Exception as error:
                timings.failed(error)
                conn.close()
                continue
            if response.status == 200:
                timings.seconds.append(time.perf_counter() - started)
            else:
                timings.failed(RuntimeError(f"HTTP {response.status}"))
    finally:
        conn.close()


async def time_posts(port: int, url: str, stage: str, count: int) -> Timings:
    """@connections POSTs to one open connection; the client drains what arrives."""
    timings = Timings([])
    ws = await _connect(url)
    connection_id = await _own_connection_id(ws)
    drained = 0

    async def drain() -> None:
        nonlocal drained
        with contextlib.suppress(Exception):
            async for _ in ws:
                drained += 1

    reader = asyncio.create_task(drain())
    path = f"/{stage}/@connections/{connection_id}"
    try:
        await asyncio.to_thread(_post_many, port, path, count, timings)
    finally:
        await ws.close()
        reader.cancel()
        with contextlib.suppress(BaseException):
            await reader
    if drained < len(timings.seconds):
        timings.first_error = timings.first_error or f"only {drained} frames arrived"
    return timings


async def _own_connection_id(ws) -> str:
    """The connection's ID, as the stand-in functions tell it."""
    from bench.gateway_server import WHOAMI

    await ws.send(WHOAMI)
    reply = json.loads(await asyncio.wait_for(ws.recv(), REQUEST_TIMEOUT_S))
    return str(reply["connectionId"])


# --- Processes -----------------------------------------------------------------------------------


@contextlib.contextmanager
def echo_gateway() -> Iterator[int]:
    """``bench.gateway_server`` in a subprocess; yields its port; stopped whatever happens."""
    process = subprocess.Popen(
        [sys.executable, "-m", "bench.gateway_server"],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    try:
        assert process.stdout is not None
        line = _read_line(process, READY_TIMEOUT_S)
        if not line.startswith("READY "):
            raise RuntimeError(f"bench.gateway_server did not start: {line!r}")
        yield int(line.split()[1])
    finally:
        if process.stdin is not None:
            with contextlib.suppress(OSError):
                process.stdin.close()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


def _read_line(process: subprocess.Popen[bytes], timeout_s: float) -> str:
    lines: list[bytes] = []
    reader = threading.Thread(
        target=lambda: lines.append(process.stdout.readline()),  # type: ignore[union-attr]
        daemon=True,
    )
    reader.start()
    reader.join(timeout_s)
    return lines[0].decode(errors="replace").strip() if lines else ""


@contextlib.contextmanager
def local_stack(notes: list[str]) -> Iterator[object]:
    from local.process import StackFailed, StackProcess

    args = ["--stack", "dev", "--quiet"]
    for item in STACK_OVERRIDES:
        args += ["--set", item]
    log_dir = Path(tempfile.mkdtemp(prefix="bench-gateway-"))
    stack = StackProcess(args, log_dir, "bench-gateway-stack").start(timeout_s=READY_TIMEOUT_S)
    try:
        yield stack
    finally:
        try:
            code = stack.stop(timeout_s=45)
        except StackFailed as error:
            notes.append(f"the local stack had to be killed: {error}")
        else:
            if code != 0:
                notes.append(f"the local stack exited with {code}")


# --- The section ---------------------------------------------------------------------------------


async def _measure_gateway(port: int, plan: GatewayPlan) -> dict[str, Timings]:
    from bench.gateway_server import STAGE

    url = f"ws://127.0.0.1:{port}/{STAGE}"
    # Warm-up (not reported): first connection, first frame, first HTTP request.
    await time_handshakes(url, 3)
    await time_messages(url, 3, {"action": "heartbeat"}, "*")
    return {
        "handshake": await time_handshakes(url, plan.handshakes),
        "message": await time_messages(url, plan.messages, {"action": "heartbeat"}, "*"),
        "post": await time_posts(port, url, STAGE, plan.posts),
    }


async def _measure_stack(url: str, plan: GatewayPlan) -> dict[str, Timings]:
    await time_handshakes(url, 3)
    await time_messages(url, 3, {"action": "heartbeat"}, "heartbeatAck")
    return {
        "stack_handshake": await time_handshakes(url, plan.stack_handshakes),
        "stack_message": await time_messages(
            url, plan.stack_messages, {"action": "heartbeat"}, "heartbeatAck"
        ),
    }


ROWS = {
    "handshake": "gateway alone: WebSocket handshake (TCP connect → 101), one at a time",
    "message": "gateway alone: frame round trip (send → route reply), one in flight",
    "post": "gateway alone: @connections POST (request → 200), keep-alive",
    "stack_handshake": "local stack: handshake with the real $connect, one at a time",
    "stack_message": "local stack: heartbeat round trip (send → heartbeatAck), one in flight",
}


def gateway_section(plan: GatewayPlan) -> Section:
    section = Section("Gateway HTTP/WebSocket stack (handshake and message latency)")
    results: dict[str, Timings] = {}
    with echo_gateway() as port:
        results.update(asyncio.run(_measure_gateway(port, plan)))
    with local_stack(section.notes) as stack:
        results.update(asyncio.run(_measure_stack(stack.url, plan)))  # type: ignore[attr-defined]
    for key, title in ROWS.items():
        timings = results[key]
        before = BEFORE.get(key)
        reference = f"{BEFORE_LABEL}: {before}" if before else ""
        section.add(
            f"{title} ×{len(timings.seconds) + timings.failures}",
            fmt_percentiles(timings.seconds, PERCENTILES, timings.failures),
            reference,
            "OK" if not timings.failures else "ERRORS",
        )
        if timings.first_error:
            section.notes.append(f"{key}: {timings.failures} failed, first: {timings.first_error}")
    return section
