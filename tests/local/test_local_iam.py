"""IAM in the local stack: a call a function's policy does not allow fails as on AWS.

The stack runs with ``--iam-deny refresh-connection=dynamodb:GetItem@*-RateLimits``: the
speaker refresh's read of the refresh limits is denied (as it was on AWS before issue 19
gave refreshConnection its RateLimits grant). The refresh still succeeds — the limits fail
open, as the handler does on AWS — and the denial shows where an operator would look: one
stderr line naming the function, the action and the resource, the DependencyFailures metric
(Operation=rateLimits) in the embedded CloudWatch, and ``/_local/info``. Every other
local-stack test fails on any such line (``local_support.launch``), so a grant missing from
the route table fails them.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from client.local_stack import fetch_info
from tests.local.local_support import (
    IAM_DENIED,
    aws_client,
    launch,
    open_ws,
    request,
    speaker,
    wait_for,
)

DENIED = "dynamodb:GetItem"


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    yield from launch(
        tmp_path_factory.mktemp("iam"),
        "iam",
        "--quiet",
        "--iam-deny",
        f"refresh-connection={DENIED}@*-RateLimits",
        iam_denials=True,
    )


def dependency_failures(stack, operation: str) -> float:
    now = time.time()
    points = aws_client(stack, "cloudwatch").get_metric_statistics(
        Namespace=stack.info["settings"]["metricsNamespace"],
        MetricName="DependencyFailures",
        Dimensions=[
            {"Name": "Stage", "Value": stack.info["stack"]},
            {"Name": "Operation", "Value": operation},
        ],
        StartTime=now - 600,
        EndTime=now + 60,
        Period=60,
        Statistics=["Sum"],
    )["Datapoints"]
    return sum(p["Sum"] for p in points)


def test_the_stack_says_iam_is_enforced(stack):
    iam = stack.info["iam"]
    assert iam["enforced"] is True
    assert iam["denied"] == {"refresh-connection": [f"{DENIED}@*-RateLimits"]}
    assert {"service control policies (SCPs)", "KMS key policies"} <= set(iam["notEmulated"])


def test_a_denied_call_fails_as_on_aws_and_is_reported(stack):
    user = "iam-speaker"

    async def scenario() -> tuple[dict, str]:
        ws, session_id = await speaker(stack.url, stack.token(user))
        fresh = await open_ws(stack.url, stack.token(user))
        body = {"action": "refreshConnection", "sessionId": session_id, "role": "speaker"}
        reply = await request(fresh, body)
        await ws.close()
        await fresh.close()
        return reply, session_id

    reply, session_id = asyncio.run(scenario())
    # The handler's own path on AWS: the limits fail open, the refresh goes through.
    assert reply["type"] == "connectionRefreshComplete", reply
    assert reply["sessionId"] == session_id

    table = stack.info["tables"]["RateLimits"]
    line = wait_for(lambda: next((x for x in stack.stderr().splitlines() if IAM_DENIED in x), None))
    assert f"session-management-{stack.info['stack']}-refresh-connection may not {DENIED}" in line
    assert f":table/{table} " in line
    assert "arn:aws:dynamodb:" in line
    # The same metrics as on AWS: the handler's DependencyFailures, extracted from its EMF.
    assert wait_for(lambda: dependency_failures(stack, "rateLimits") >= 1)
    assert fetch_info(stack.port)["iam"]["denialsByFunction"] == {"refresh-connection": 1}
    # The function's log line carries AWS's message shape.
    assert any(
        "is not authorized to perform: dynamodb:GetItem on resource: arn:aws:dynamodb:"
        in r.get("errorMessage", "")
        for r in stack.log_records()
    )
