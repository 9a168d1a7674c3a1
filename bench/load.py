"""Load through the local stack: join latency, heartbeat round trip and session-end fan-out.

``python -m local`` runs as a subprocess on free 127.0.0.1 ports with the per-client limits
raised (every client shares one IP). The clients run here, in another process, as real
WebSocket clients (``websockets`` asyncio client) on one event loop. Everything is bounded:
each request has a timeout, each scenario a deadline, and the stack is stopped at the end
whatever happened. Only 127.0.0.1 is ever contacted.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import multiprocessing
import os
import resource
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.fanout_model import connections_client
from bench.report import Section, fmt_ms, fmt_percentiles, percentile
from client.cli import PUSH_TYPES, MessageReader, connect_service

ROOT = Path(__file__).resolve().parent.parent
STACK = "dev"
# Every client is 127.0.0.1, so the per-IP and per-connection limits are raised.
STACK_OVERRIDES = (
    "maxListenersPerSession=1000",
    "listenerJoinsPerMinute=100000",
    "connectionAttemptsPerMinute=100000",
    "heartbeatsPerMinute=100000",
    "sessionsPerHour=1000",
)
READY_TIMEOUT_S = 90.0
STOP_TIMEOUT_S = 45.0
REQUEST_TIMEOUT_S = 30.0
CONNECT_TIMEOUT_S = 30.0
FAN_OUT_TIMEOUT_S = 60.0
CONNECT_CONCURRENCY = 50
# Heartbeats are measured alone (1 in flight) and with some load (10 in flight).
HEARTBEAT_CONCURRENCY = (1, 10)
SETTLE_S = 2.0
SETTLE_TIMEOUT_S = 45.0
WARMUP_LISTENERS = 3


# --- Results -------------------------------------------------------------------------------------


@dataclass
class Samples:
    """Latencies in seconds plus every failure, by kind."""

    seconds: list[float] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)

    @property
    def attempts(self) -> int:
        return len(self.seconds) + sum(self.errors.values())

    def describe_errors(self) -> str:
        if not self.errors:
            return "0 errors"
        listed = ", ".join(f"{kind} ×{n}" for kind, n in sorted(self.errors.items()))
        return f"{sum(self.errors.values())} errors ({listed})"


@dataclass
class FanOut:
    """Time from the trigger until the last listener heard ``sessionEnded``."""

    listeners: int
    received: int = 0
    last_s: float | None = None
    # Time until the trigger's own work returned (the sequential loop's last post).
    sender_s: float | None = None
    errors: Counter[str] = field(default_factory=Counter)


@dataclass
class ScenarioResult:
    listeners: int
    connected: int = 0
    connect_errors: Counter[str] = field(default_factory=Counter)
    joins: Samples = field(default_factory=Samples)
    # In-flight requests → round-trip samples.
    heartbeats: dict[int, Samples] = field(default_factory=dict)
    sequential: FanOut | None = None
    fan_out: FanOut | None = None
    concurrent: FanOut | None = None
    notes: list[str] = field(default_factory=list)


# --- The stack subprocess ------------------------------------------------------------------------


def raise_nofile_limit(wanted: int) -> int:
    """Raise the soft open-files limit towards ``wanted`` (up to the hard limit)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        return target
    return soft


def stack_arguments(overrides: Sequence[str] = STACK_OVERRIDES) -> list[str]:
    """``python -m local`` arguments besides the ports (``local.process`` picks free ones)."""
    args = ["--stack", STACK, "--quiet"]
    for item in overrides:
        args += ["--set", item]
    return args


@contextlib.contextmanager
def running_stack(log_dir: Path, notes: list[str]) -> Iterator[Any]:
    """A local stack subprocess (``local.process.StackProcess``), stopped whatever happens."""
    from local.process import StackFailed, StackProcess

    stack = StackProcess(stack_arguments(), log_dir, "bench-stack")
    stack.start(timeout_s=READY_TIMEOUT_S)
    try:
        yield stack
    finally:
        try:
            code = stack.stop(timeout_s=STOP_TIMEOUT_S)
        except StackFailed as error:
            notes.append(f"the local stack had to be killed: {error}")
        else:
            if code != 0:
                notes.append(f"the local stack exited with {code}")


# --- Clients -------------------------------------------------------------------------------------


class Client:
    """One WebSocket client: one request in flight at a time, pushes recorded with arrival time."""

    def __init__(self, ws: Any, signal: asyncio.Event | None = None) -> None:
        self.ws = ws
        # Set on every sessionEnded; shared by the clients of one scenario.
        self.signal = signal or asyncio.Event()
        self._pending: asyncio.Future[tuple[float, dict[str, Any]]] | None = None
        # (arrival perf_counter, message) of every sessionEnded received.
        self.ended: list[tuple[float, dict[str, Any]]] = []
        self.unexpected = 0
        self._reader = MessageReader(ws, self._deliver, self._closed)

    def _deliver(self, arrived: float, message: dict[str, Any]) -> None:
        kind = message.get("type")
        if kind in PUSH_TYPES:
            if kind == "sessionEnded":
                self.ended.append((arrived, message))
                self.signal.set()
        elif self._pending is not None and not self._pending.done():
            self._pending.set_result((arrived, message))
        else:
            self.unexpected += 1

    def _closed(self) -> None:
        if self._pending is not None and not self._pending.done():
            self._pending.set_exception(ConnectionError("connection closed"))

    async def request(
        self, message: dict[str, Any], timeout: float = REQUEST_TIMEOUT_S
    ) -> tuple[float, dict[str, Any]]:
        """Send ``message``; (seconds from send to reply, reply)."""
        loop = asyncio.get_running_loop()
        self._pending = loop.create_future()
        sent = time.perf_counter()
        await self.ws.send(json.dumps(message))
        arrived, reply = await asyncio.wait_for(self._pending, timeout)
        return arrived - sent, reply

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.ws.close(), 10)
        await self._reader.stop()


async def open_client(url: str, signal: asyncio.Event | None = None) -> Client:
    ws = await connect_service(
        url,
        open_timeout=CONNECT_TIMEOUT_S,
        close_timeout=5,
        ping_interval=None,  # the gateway pings; the bench adds no traffic of its own
        compression=None,  # API Gateway does not negotiate permessage-deflate
        max_queue=64,
    )
    return Client(ws, signal)


def _error_kind(error: BaseException) -> str:
    status = getattr(getattr(error, "response", None), "status_code", None)
    if status is not None:
        return f"HTTP {status}"
    if isinstance(error, TimeoutError | asyncio.TimeoutError):
        return "timeout"
    return type(error).__name__


def _reply_kind(reply: dict[str, Any]) -> str:
    if reply.get("type") == "error":
        return f"error {reply.get('code')}"
    return f"unexpected {reply.get('type')}"


# --- Scenarios -----------------------------------------------------------------------------------


async def _connect_many(
    url: str, count: int, result: ScenarioResult, signal: asyncio.Event
) -> list[Client]:
    gate = asyncio.Semaphore(CONNECT_CONCURRENCY)

    async def one() -> Client | None:
        async with gate:
            try:
                return await open_client(url, signal)
            except Exception as error:
                result.connect_errors[_error_kind(error)] += 1
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
            samples.errors[_error_kind(error)] += 1
            return
        if reply.get("type") == "sessionJoined":
            samples.seconds.append(rtt)
            joined.append(client)
        else:
            samples.errors[_reply_kind(reply)] += 1

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
                samples.errors[_error_kind(error)] += 1
                return
            if reply.get("type") == "heartbeatAck":
                samples.seconds.append(rtt)
            else:
                samples.errors[_reply_kind(reply)] += 1

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


class Baseline:
    """The bench's own AWS clients: the stack's DynamoDB and its @connections API."""

    def __init__(self, info: dict[str, Any]) -> None:
        import boto3
        from botocore.config import Config

        from runtime.aws import CLIENT_CONFIG
        from runtime.tables import CONNECTIONS

        self.info = info
        credentials = {
            "region_name": info.get("region") or "us-east-1",
            "aws_access_key_id": "local",
            "aws_secret_access_key": "local",
        }
        # Generous timeouts for the bench's own queries: a busy stack is slow, not broken.
        patient = Config(retries={"mode": "standard", "max_attempts": 3}, read_timeout=30)
        self.dynamodb = boto3.client(
            "dynamodb", endpoint_url=info["awsEndpoint"], config=patient, **credentials
        )
        self.connections = boto3.client(
            "apigatewaymanagementapi",
            endpoint_url=info["connectionsUrl"],
            config=CLIENT_CONFIG,
            **credentials,
        )
        tables = info.get("tables") or {}
        self.table = tables.get(CONNECTIONS.logical_name) or CONNECTIONS.physical_name(STACK)

    def listener_ids(self, session_id: str) -> list[str]:
        """The session's listener connection IDs, through the same GSI the handler queries."""
        from runtime.tables import LISTENERS_INDEX

        ids: list[str] = []
        kwargs: dict[str, Any] = {
            "TableName": self.table,
            "IndexName": LISTENERS_INDEX.name,
            "KeyConditionExpression": "sessionId = :sid",
            "ExpressionAttributeValues": {":sid": {"S": session_id}},
        }
        for _ in range(1000):  # bounded pagination
            page = self.dynamodb.query(**kwargs)
            ids += [
                item["connectionId"]["S"]
                for item in page.get("Items", [])
                if item.get("role", {}).get("S") == "listener"
            ]
            if "LastEvaluatedKey" not in page:
                break
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        return ids

    def settled_listeners(
        self, session_id: str, ceiling: int, timeout_s: float = SETTLE_TIMEOUT_S
    ) -> tuple[int, float]:
        """(listener records, seconds waited) once the count stops changing for 2 s."""
        started = time.monotonic()
        count, stable_since = -1, started
        while time.monotonic() - started < timeout_s:
            now_count = len(self.listener_ids(session_id))
            now = time.monotonic()
            if now_count != count:
                count, stable_since = now_count, now
            if count >= ceiling or now - stable_since >= 2.0:
                break
            time.sleep(0.25)
        return count, time.monotonic() - started

    def sequential(self, session_id: str, message: dict[str, Any], fan_out: FanOut) -> None:
        """Query the listeners, then ``post_to_connection`` to each, one after another."""
        from botocore.exceptions import ClientError

        from runtime.protocol import encode

        started = time.perf_counter()
        ids = self.listener_ids(session_id)
        data = encode(message).encode()
        for connection_id in ids:
            try:
                self.connections.post_to_connection(ConnectionId=connection_id, Data=data)
            except ClientError as error:
                fan_out.errors[f"post {error.response.get('Error', {}).get('Code')}"] += 1
        fan_out.sender_s = time.perf_counter() - started
        if len(ids) != fan_out.listeners:
            fan_out.errors[f"query found {len(ids)} listeners"] += 1

    def concurrent(self, session_id: str, message: dict[str, Any], fan_out: FanOut) -> None:
        """Query the listeners, then the service's own ``runtime.fanout.fan_out``."""
        from runtime import fanout

        started = time.perf_counter()
        ids = self.listener_ids(session_id)
        with connections_client(self.connections):
            result = fanout.fan_out(ids, message)
        fan_out.sender_s = time.perf_counter() - started
        for kind in ("gone", "failed"):
            if getattr(result, kind):
                fan_out.errors[f"fan_out {kind}"] += len(getattr(result, kind))
        if len(ids) != fan_out.listeners:
            fan_out.errors[f"query found {len(ids)} listeners"] += 1


# The senders run in a worker process, so neither the sequential loop nor fan_out's threads
# compete with the clients' event loop (which timestamps the arrivals) for this process's GIL.
_worker_baseline: Baseline | None = None


def _init_sender(info: dict[str, Any]) -> None:
    global _worker_baseline
    _worker_baseline = Baseline(info)


def _sender_ready() -> bool:
    return _worker_baseline is not None


def _send(
    mode: str, session_id: str, message: dict[str, Any], expected: int
) -> tuple[float | None, dict[str, int]]:
    """In the worker: one phase's query and posts; (seconds until done, errors)."""
    assert _worker_baseline is not None, "sender worker not initialised"
    phase = FanOut(expected)
    getattr(_worker_baseline, mode)(session_id, message, phase)
    return phase.sender_s, dict(phase.errors)


def sender_pool(info: dict[str, Any]) -> ProcessPoolExecutor:
    """One warm worker process holding the bench's boto3 clients."""
    pool = ProcessPoolExecutor(
        max_workers=1,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=_init_sender,
        initargs=(info,),
    )
    pool.submit(_sender_ready).result(timeout=60)
    return pool


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
                    functools.partial(_send, mode, session_id, message, expected),
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


@dataclass(frozen=True)
class LoadPlan:
    listeners: tuple[int, ...] = (100, 500)
    heartbeats: int = 200
    deadline_s: float = 240.0


async def run_load(plan: LoadPlan, stack: Any) -> list[ScenarioResult]:
    """Every scenario of ``plan`` against a running stack, within ``plan.deadline_s``."""
    token = await asyncio.to_thread(stack.token, "bench-speaker")
    baseline = await asyncio.to_thread(Baseline, stack.info)
    pool = await asyncio.to_thread(sender_pool, stack.info)
    results: list[ScenarioResult] = []

    async def all_scenarios() -> None:
        # Warm-up, not reported: the stack's handlers and clients are created on first use,
        # as in a Lambda container's first invocation; the bench's own clients likewise.
        await run_scenario(
            stack, WARMUP_LISTENERS, token, heartbeats=2, baseline=baseline, pool=pool
        )
        for index, listeners in enumerate(plan.listeners):
            results.append(
                await run_scenario(
                    stack,
                    listeners,
                    token,
                    heartbeats=plan.heartbeats if index == 0 else 0,
                    baseline=baseline,
                    pool=pool,
                )
            )

    try:
        await asyncio.wait_for(all_scenarios(), plan.deadline_s)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    return results


def _is_problem(line: str) -> bool:
    """A stack stderr line worth surfacing: a handler failure, a traceback, a fatal error."""
    return line[9:11] == "! " or "Traceback" in line or line.startswith("Fatal Python error")


def measure(plan: LoadPlan) -> tuple[list[ScenarioResult], list[str]]:
    """Start the stack, run the plan, stop the stack; (results, notes)."""
    notes: list[str] = []
    soft = raise_nofile_limit(max(plan.listeners, default=0) * 2 + 1024)
    if soft < max(plan.listeners, default=0) + 256:
        notes.append(f"open-files limit {soft} is low for {max(plan.listeners)} clients")
    log_dir = Path(tempfile.mkdtemp(prefix="bench-local-"))
    results: list[ScenarioResult] = []
    with running_stack(log_dir, notes) as stack:
        try:
            results = asyncio.run(run_load(plan, stack))
        except TimeoutError:
            notes.append(f"load did not finish within {plan.deadline_s:.0f}s")
    stderr = stack.stderr()
    problems = [line for line in stderr.splitlines() if _is_problem(line)]
    if problems:
        notes.append(f"{len(problems)} problem line(s) on the stack's stderr, e.g. {problems[0]!r}")
    notes.append(f"stack logs kept in {log_dir}")
    return results, notes


# --- Table ---------------------------------------------------------------------------------------


def _fan_out_cell(fan_out: FanOut | None) -> str:
    if fan_out is None or fan_out.last_s is None:
        return "no samples"
    return fmt_ms(fan_out.last_s)


def _fan_out_status(fan_out: FanOut | None) -> str:
    if fan_out is None:
        return ""
    missing = fan_out.listeners - fan_out.received
    return "OK" if not missing and not fan_out.errors else "ERRORS"


def _fan_out_detail(fan_out: FanOut) -> str:
    text = f"{fan_out.received}/{fan_out.listeners} received"
    if fan_out.errors:
        text += "; " + ", ".join(f"{k} ×{n}" for k, n in sorted(fan_out.errors.items()))
    return text


def _of_those(samples: Samples) -> str:
    """Percentiles of the successes alone, when some attempts failed."""
    if not samples.errors or not samples.seconds:
        return ""
    return f" ({fmt_percentiles(samples.seconds, (50, 99))} of those)"


def _compare(sequential_s: float, concurrent_s: float) -> str:
    """``fan_out is 2.0× faster`` (or ``… slower``), never a ratio below 1 called faster."""
    if concurrent_s <= sequential_s:
        return f"fan_out is {sequential_s / concurrent_s:.1f}× faster"
    return f"fan_out is {concurrent_s / sequential_s:.1f}× slower"


def _sender(fan_out: FanOut) -> str:
    return f"; sender done at {fmt_ms(fan_out.sender_s)}" if fan_out.sender_s else ""


def load_section(results: Sequence[ScenarioResult], notes: Sequence[str] = ()) -> Section:
    """The table section for the local-stack measurements."""
    section = Section(
        "Through the local stack (real WebSocket clients in their own process, 127.0.0.1)"
    )
    for result in results:
        n = result.listeners
        joins = result.joins
        ok = not joins.errors and not result.connect_errors and result.connected == n
        connected = f"{result.connected}/{n} connected"
        if result.connect_errors:
            connected += " (" + ", ".join(f"{k} ×{v}" for k, v in result.connect_errors.items())
            connected += ")"
        section.add(
            f"join latency, {n} listeners at once (send → sessionJoined)",
            fmt_percentiles(joins.seconds, failures=sum(joins.errors.values())),
            f"{len(joins.seconds)}/{n} joined{_of_those(joins)}, {joins.describe_errors()}; "
            f"{connected}",
            "OK" if ok else "ERRORS",
        )
        for concurrency, hb in result.heartbeats.items():
            section.add(
                f"heartbeat round trip, {concurrency} in flight (send → heartbeatAck)",
                fmt_percentiles(hb.seconds, (50, 95), sum(hb.errors.values())),
                f"{len(hb.seconds)}/{hb.attempts} acked, {hb.describe_errors()}",
                "OK" if not hb.errors else "ERRORS",
            )
        concurrent, direct, sequential = result.concurrent, result.fan_out, result.sequential
        if concurrent is not None:
            section.add(
                f"speaker close → last of {n} has sessionEnded (real path: $disconnect handler)",
                _fan_out_cell(concurrent),
                _fan_out_detail(concurrent),
                _fan_out_status(concurrent),
            )
        if direct is not None:
            section.add(
                f"query + `runtime.fanout.fan_out` to {n} → last received (concurrent)",
                _fan_out_cell(direct),
                _fan_out_detail(direct) + _sender(direct),
                _fan_out_status(direct),
            )
        if sequential is not None:
            speedup = ""
            if sequential.last_s and direct is not None and direct.last_s:
                speedup = "; " + _compare(sequential.last_s, direct.last_s)
            section.add(
                f"query + {n} × `post_to_connection` one by one → last received (sequential)",
                _fan_out_cell(sequential),
                _fan_out_detail(sequential) + _sender(sequential) + speedup,
                _fan_out_status(sequential),
            )
        section.notes += [f"{n} listeners: {note}" for note in result.notes]
    section.notes += list(notes)
    return section


def percentile_summary(seconds: Sequence[float]) -> dict[str, float]:
    """p50/p95/p99 in seconds (for callers that want the raw numbers)."""
    return {f"p{p}": percentile(seconds, p) for p in (50, 95, 99)} if seconds else {}


def iter_sizes(text: str) -> Iterator[int]:
    """``"100,500"`` → 100, 500."""
    for part in text.split(","):
        if part.strip():
            value = int(part)
            if value < 1:
                raise ValueError("listener counts must be ≥ 1")
            yield value


def environment_ok() -> str | None:
    """Why the load cannot run here (None when it can)."""
    try:
        import websockets  # noqa: F401
    except ImportError:
        return "websockets is not installed (uv sync installs the local group)"
    for needed in ("__main__.py", "process.py"):
        if not (ROOT / "local" / needed).is_file():
            return f"local/{needed} does not exist yet"
    return None if os.name == "posix" else "the load bench needs a POSIX system"
