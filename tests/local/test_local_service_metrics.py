"""AWS/ApiGateway and AWS/Lambda concurrency metrics of a running local stack, end to end.

Real WebSockets connect, send and close; the counts are read back from the embedded
CloudWatch (exact dimensions) and from the console's dashboard data. The stack serves only
this module, so every API Gateway count is exact.
"""

from __future__ import annotations

import asyncio
import json
import time
import urllib.request
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus

from local.functions.events import function_name
from runtime.routes import ROUTES
from tests.local.local_support import aws_client, launch, open_ws, request, wait_for

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    yield from launch(tmp_path_factory.mktemp("service-metrics"), "service-metrics", "--quiet")


def sums(stack, namespace: str, metric: str, dimensions: dict[str, str]) -> dict[str, float]:
    """Sum, SampleCount and Maximum of one series over the last ten minutes."""
    now = time.time()
    points = aws_client(stack, "cloudwatch").get_metric_statistics(
        Namespace=namespace,
        MetricName=metric,
        Dimensions=[{"Name": k, "Value": v} for k, v in dimensions.items()],
        StartTime=now - 600,
        EndTime=now + 60,
        Period=60,
        Statistics=["Sum", "SampleCount", "Maximum"],
    )["Datapoints"]
    return {
        "Sum": sum(p["Sum"] for p in points),
        "SampleCount": sum(p["SampleCount"] for p in points),
        "Maximum": max((p["Maximum"] for p in points), default=0.0),
    }


def function(stack, route_key: str) -> str:
    return function_name(stack.info["stack"], next(f for f in ROUTES if f.route_key == route_key))


def dashboard(stack) -> dict[str, dict[str, Any]]:
    url = stack.info["consoleUrl"].rsplit("/_local/", 1)[0] + "/_local/metrics?minutes=15"
    with urllib.request.urlopen(url, timeout=30) as response:
        return {w["title"]: w for w in json.load(response)["widgets"]}


def test_connects_messages_errors_and_concurrency_reach_cloudwatch_and_the_console(stack):
    heartbeats = 3

    async def scenario() -> None:
        first = await open_ws(stack.url)
        for _ in range(heartbeats):  # one at a time: one frame in, one reply out each
            assert (await request(first, {"action": "heartbeat"}))["type"] == "heartbeatAck"
        second = await open_ws(stack.url)
        await second.send(b"\x00binary")  # refused before any integration: 1003
        with pytest.raises(ConnectionClosed):
            await asyncio.wait_for(second.recv(), 20)
        assert second.close_code == 1003
        with pytest.raises(InvalidStatus) as rejected:  # $connect answers 401
            await open_ws(stack.url, "not-a-token")
        assert rejected.value.response.status_code == 401
        await first.close()

    asyncio.run(scenario())
    gateway = {"ApiId": stack.info["apiId"], "Stage": stack.info["stack"]}
    # Integrations called: 3 $connect, 3 heartbeat, 2 $disconnect.
    integrations = 3 + heartbeats + 2

    def latencies() -> float:
        return sums(stack, "AWS/ApiGateway", "IntegrationLatency", gateway)["SampleCount"]

    assert wait_for(lambda: latencies() == integrations), latencies()
    assert sums(stack, "AWS/ApiGateway", "ConnectCount", gateway)["Sum"] == 3
    # In: 3 heartbeats and the binary frame; out: 3 replies.
    assert sums(stack, "AWS/ApiGateway", "MessageCount", gateway)["Sum"] == 2 * heartbeats + 1
    client_errors = sums(stack, "AWS/ApiGateway", "ClientError", gateway)
    assert (client_errors["Sum"], client_errors["SampleCount"]) == (1, integrations + 1)
    integration_errors = sums(stack, "AWS/ApiGateway", "IntegrationError", gateway)
    assert (integration_errors["Sum"], integration_errors["SampleCount"]) == (1, integrations)
    execution_errors = sums(stack, "AWS/ApiGateway", "ExecutionError", gateway)
    assert (execution_errors["Sum"], execution_errors["SampleCount"]) == (0, integrations)

    heartbeat = {"FunctionName": function(stack, "heartbeat")}
    concurrency = sums(stack, "AWS/Lambda", "ConcurrentExecutions", heartbeat)
    # One sample per invocation started; sequential heartbeats never overlap.
    assert (concurrency["SampleCount"], concurrency["Maximum"]) == (heartbeats, 1)
    throttles = sums(stack, "AWS/Lambda", "Throttles", heartbeat)
    assert (throttles["Sum"], throttles["SampleCount"]) == (0, heartbeats)

    widgets = dashboard(stack)
    for title in (
        "Lambda throttles",
        "Lambda concurrent executions",
        "API Gateway connections and messages",
        "API Gateway errors",
    ):
        assert widgets[title]["series"], title
    drawn = {
        s["label"]: sum(p[1] if isinstance(p, list) else p["value"] for p in s["points"])
        for s in widgets["API Gateway connections and messages"]["series"]
    }
    assert drawn == {"ConnectCount": 3, "MessageCount": 2 * heartbeats + 1}, drawn


def test_every_started_connect_is_a_concurrency_sample_peaking_at_most_at_those_open(stack):
    connections = 6

    async def scenario() -> None:
        sockets = await asyncio.gather(*(open_ws(stack.url) for _ in range(connections)))
        await asyncio.gather(*(ws.close() for ws in sockets))

    asyncio.run(scenario())
    connect = {"FunctionName": function(stack, "$connect")}

    def started() -> float:
        return sums(stack, "AWS/Lambda", "ConcurrentExecutions", connect)["SampleCount"]

    # The first test's three $connects, then these.
    assert wait_for(lambda: started() == 3 + connections), started()
    peak = sums(stack, "AWS/Lambda", "ConcurrentExecutions", connect)["Maximum"]
    assert 1 <= peak <= connections
