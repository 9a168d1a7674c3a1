"""Fan-out with a modelled @connections round trip: sequential loop vs ``runtime.fanout``.

On 127.0.0.1 a post costs the local gateway ~1-2 ms of CPU and no network wait, so the two
strategies end up CPU-bound on the same interpreter and finish close together. On AWS a
``PostToConnection`` is a network round trip. This measurement keeps everything real except
that wait: ``bench.connections_server.ConnectionsServer(delay_s=…)`` (the recording stand-in
the tests use) holds each request for ``delay_s`` before answering, and the same N posts are
sent once one by one and once through the service's ``runtime.fanout.fan_out``.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from bench.report import Section, fmt_ms

DEFAULT_DELAY_S = 0.010


@dataclass(frozen=True)
class ModelledFanOut:
    listeners: int
    delay_s: float
    sequential_s: float
    concurrent_s: float
    delivered_sequential: int
    delivered_concurrent: int
    max_in_flight: int

    @property
    def speedup(self) -> float:
        return self.sequential_s / self.concurrent_s if self.concurrent_s else 0.0


@contextlib.contextmanager
def connections_client(client: Any) -> Iterator[None]:
    """Make ``runtime.aws.connections()`` return ``client`` for the duration."""
    from runtime import aws

    original = aws.connections
    aws.connections = lambda: client  # type: ignore[assignment]
    try:
        yield
    finally:
        aws.connections = original  # type: ignore[assignment]


def _client(endpoint: str) -> Any:
    import boto3

    from runtime.aws import CLIENT_CONFIG

    return boto3.client(
        "apigatewaymanagementapi",
        endpoint_url=endpoint,
        config=CLIENT_CONFIG,
        region_name="us-east-1",
        aws_access_key_id="bench",
        aws_secret_access_key="bench",
    )


def measure(listeners: int, delay_s: float = DEFAULT_DELAY_S) -> ModelledFanOut:
    """Post one message to ``listeners`` IDs sequentially, then with ``fan_out``."""
    from bench.connections_server import ConnectionsServer
    from runtime import fanout
    from runtime.protocol import encode, server_message

    message = server_message("sessionEnded", sessionId="bench-model-001", reason="bench")
    data = encode(message).encode()
    ids = [f"bench-{i:05d}=" for i in range(listeners)]
    with ConnectionsServer(stage="bench", delay_s=delay_s) as server:
        client = _client(server.endpoint)
        client.post_to_connection(ConnectionId="warm-up", Data=data)  # connection + model
        server.reset()
        started = time.perf_counter()
        for connection_id in ids:
            client.post_to_connection(ConnectionId=connection_id, Data=data)
        sequential_s = time.perf_counter() - started
        delivered_sequential = len(server.delivered_to())
        server.reset()
        with connections_client(client):
            started = time.perf_counter()
            result = fanout.fan_out(ids, message)
            concurrent_s = time.perf_counter() - started
        return ModelledFanOut(
            listeners=listeners,
            delay_s=delay_s,
            sequential_s=sequential_s,
            concurrent_s=concurrent_s,
            delivered_sequential=delivered_sequential,
            delivered_concurrent=len(result.delivered),
            max_in_flight=server.max_in_flight,
        )


def modelled_section(sizes: tuple[int, ...], delay_s: float = DEFAULT_DELAY_S) -> Section:
    """The table section: both strategies with a modelled per-post round trip."""
    section = Section(
        f"Fan-out with a modelled {delay_s * 1000:g} ms @connections round trip "
        "(recording stand-in, no WebSocket clients)"
    )
    for n in sizes:
        try:
            m = measure(n, delay_s)
        except Exception as error:
            section.add(f"{n} posts", "failed", "", "ERROR")
            section.notes.append(f"{n} posts: {type(error).__name__}: {error}")
            continue
        ok = m.delivered_sequential == n and m.delivered_concurrent == n
        section.add(
            f"{n} posts one by one (`post_to_connection` loop)",
            fmt_ms(m.sequential_s),
            f"{m.delivered_sequential}/{n} delivered",
            "OK" if m.delivered_sequential == n else "ERRORS",
        )
        section.add(
            f"{n} posts through `runtime.fanout.fan_out`",
            fmt_ms(m.concurrent_s),
            f"{m.delivered_concurrent}/{n} delivered; {m.max_in_flight} in flight at most; "
            f"{m.speedup:.1f}× faster",
            "OK" if ok else "ERRORS",
        )
    return section
