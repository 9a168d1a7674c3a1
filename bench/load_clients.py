"""The load's clients: WebSocket clients that time their requests, the bench's own AWS clients
(the stack's DynamoDB and @connections), and the worker process the fan-out senders run in.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import multiprocessing
import time
from concurrent.futures import ProcessPoolExecutor
from typing import Any

from bench.fanout_model import connections_client
from bench.load_results import FanOut
from client.connection import PUSH_TYPES, MessageReader, connect_service

STACK = "dev"
REQUEST_TIMEOUT_S = 30.0
CONNECT_TIMEOUT_S = 30.0
SETTLE_TIMEOUT_S = 45.0


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


def error_kind(error: BaseException) -> str:
    status = getattr(getattr(error, "response", None), "status_code", None)
    if status is not None:
        return f"HTTP {status}"
    if isinstance(error, TimeoutError | asyncio.TimeoutError):
        return "timeout"
    return type(error).__name__


def reply_kind(reply: dict[str, Any]) -> str:
    if reply.get("type") == "error":
        return f"error {reply.get('code')}"
    return f"unexpected {reply.get('type')}"


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


def send_phase(
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
