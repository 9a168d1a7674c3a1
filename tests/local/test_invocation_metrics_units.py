"""The invoker's running-invocation count (Lambda's ConcurrentExecutions) and the metrics'
datums, without a stack."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from local.functions.events import function_name
from local.functions.invoker import LambdaInvoker
from local.functions.metrics import LambdaMetrics
from local.gateway.metrics import ApiGatewayMetrics
from runtime.routes import ROUTES

FUNCTION = next(f for f in ROUTES if f.route_key == "heartbeat")


def test_overlapping_invocations_are_counted_while_they_run_and_a_failure_ends_its_count():
    release = threading.Event()
    calls: list[int] = []

    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        calls.append(1)
        release.wait(10)
        if event.get("fail"):
            raise RuntimeError("boom")
        return {"statusCode": 200}

    invoker = LambdaInvoker("dev", "us-east-1", workers=4, resolve=lambda f: handler)
    seen: list[tuple[str, int]] = []
    invoker.running = lambda function, in_flight: seen.append((function.name, in_flight))

    async def scenario() -> None:
        both = asyncio.gather(
            invoker.invoke(FUNCTION, {}), invoker.invoke(FUNCTION, {"fail": True})
        )
        while len(calls) < 2:
            await asyncio.sleep(0.01)
        release.set()
        assert await both == [{"statusCode": 200}, None]
        await invoker.invoke(FUNCTION, {})  # after both ended: alone again

    try:
        asyncio.run(scenario())
    finally:
        invoker.shutdown()
    assert seen == [(FUNCTION.name, 1), (FUNCTION.name, 2), (FUNCTION.name, 1)]


def test_lambda_datums_carry_throttles_and_concurrency_by_function_name():
    sent: list[dict[str, Any]] = []
    metrics = LambdaMetrics("dev", lambda **call: sent.append(call))
    metrics.observe(FUNCTION, 0.0123, failed=False)
    metrics.running(FUNCTION, 3)
    metrics.flush()
    [call] = sent
    assert call["Namespace"] == "AWS/Lambda"
    by_name = {d["MetricName"]: d["Value"] for d in call["MetricData"]}
    assert by_name == {
        "Invocations": 1.0,
        "Errors": 0.0,
        "Throttles": 0.0,
        "Duration": 12.3,
        "ConcurrentExecutions": 3.0,
    }
    dimensions = [d["Dimensions"] for d in call["MetricData"]]
    expected = [{"Name": "FunctionName", "Value": function_name("dev", FUNCTION)}]
    assert dimensions == [expected] * 5


def test_api_gateway_integration_outcomes():
    sent: list[dict[str, Any]] = []
    metrics = ApiGatewayMetrics("abc123defg", "dev", lambda **call: sent.append(call))
    metrics.integration(0.005, 200)
    metrics.integration(0.005, 401)
    metrics.integration(0.005, None)
    metrics.flush()
    [call] = sent
    assert call["Namespace"] == "AWS/ApiGateway"
    assert all(
        d["Dimensions"]
        == [{"Name": "ApiId", "Value": "abc123defg"}, {"Name": "Stage", "Value": "dev"}]
        for d in call["MetricData"]
    )
    totals: dict[str, list[float]] = {}
    for datum in call["MetricData"]:
        totals.setdefault(datum["MetricName"], []).append(datum["Value"])
    assert totals == {
        "ClientError": [0.0, 0.0, 0.0],
        "ExecutionError": [0.0, 0.0, 1.0],
        "IntegrationError": [0.0, 1.0, 0.0],
        "IntegrationLatency": [5.0, 5.0],  # none for a call that failed
    }
