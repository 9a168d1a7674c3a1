"""The embedded AWS tells the truth about a running local stack, through boto3 (issue 20).

What the deployed stack would have in CloudWatch is there: the alarms (states kept in step
with the local evaluator), the dashboard, the functions' log groups with their lines; a call
moto does not implement answers once with an AWS error botocore parses; list_metrics lists a
metric once; and the stack's stderr never shows a traceback.
"""

from __future__ import annotations

import asyncio
import json
import urllib.request

import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from local.functions.events import function_name
from runtime.dashboard import layout
from runtime.routes import ROUTES
from tests.local.local_support import aws_client, launch, open_ws, request, speaker, wait_for

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    # One active session puts ActiveSessions at the alarm's threshold (ceil(0.9 × 1) = 1);
    # at time ×60 its 1-minute period lasts a second.
    yield from launch(
        tmp_path_factory.mktemp("embedded-aws"),
        "embedded-aws",
        "--quiet",
        "--alarm-time-scale",
        "60",
        "--set",
        "maxActiveSessions=1",
    )


def local_alarms(stack) -> dict[str, dict]:
    url = stack.info["consoleUrl"].rsplit("/_local/", 1)[0] + "/_local/alarms"
    with urllib.request.urlopen(url, timeout=30) as response:
        doc = json.load(response)
    return {a["name"]: a for a in (doc["alarms"] if isinstance(doc, dict) else doc)}


def described(stack, **kwargs) -> dict[str, dict]:
    pages = aws_client(stack, "cloudwatch").get_paginator("describe_alarms").paginate(**kwargs)
    return {a["AlarmName"]: a for page in pages for a in page["MetricAlarms"]}


def test_every_alarm_is_registered_with_its_definition_and_state(stack):
    local = local_alarms(stack)
    assert wait_for(lambda: all(a["state"] != "INSUFFICIENT_DATA" for a in local_alarms(stack)
                                .values()))  # fmt: skip
    remote = described(stack)
    assert set(remote) == set(local) and len(remote) == stack.info["alarms"]
    topic = stack.info["alarmTopicArn"]
    for name, alarm in remote.items():
        mine = local[name]
        assert alarm["MetricName"] == mine["metricName"]
        assert alarm["Namespace"] == mine["namespace"]
        assert {d["Name"]: d["Value"] for d in alarm["Dimensions"]} == mine["dimensions"]
        assert alarm["Threshold"] == float(mine["threshold"])
        assert alarm["AlarmActions"] == [topic] and alarm["OKActions"] == [topic]
        assert (alarm.get("ExtendedStatistic") or alarm.get("Statistic")) == mine["statistic"]


def test_an_alarm_in_alarm_is_in_alarm_in_cloudwatch_with_the_evaluators_reason(stack):
    name = f"session-management-{stack.info['stack']}-active-sessions"

    async def hold_a_session() -> dict:
        ws, _ = await speaker(stack.url, stack.token("alarmist"))
        try:
            return await asyncio.to_thread(
                wait_for, lambda: described(stack, StateValue="ALARM").get(name), 30
            )
        finally:
            await ws.close()

    alarm = asyncio.run(hold_a_session())
    assert alarm, f"{name} never reached ALARM in the embedded CloudWatch"
    local = local_alarms(stack)[name]
    assert wait_for(lambda: described(stack, AlarmNames=[name])[name]["StateReason"]
                    == local_alarms(stack)[name]["reason"] or None)  # fmt: skip
    assert local["state"] in ("ALARM", "OK")
    assert json.loads(alarm["StateReasonData"])["recentDatapoints"]


def test_the_dashboard_is_there_with_every_widget(stack):
    cloudwatch = aws_client(stack, "cloudwatch")
    name = f"session-management-{stack.info['stack']}"
    assert [d["DashboardName"] for d in cloudwatch.list_dashboards()["DashboardEntries"]] == [name]
    body = json.loads(cloudwatch.get_dashboard(DashboardName=name)["DashboardBody"])
    assert len(body["widgets"]) == len(layout())
    alarms_widget = next(w for w in body["widgets"] if w["type"] == "alarm")
    assert sorted(alarms_widget["properties"]["alarms"]) == sorted(
        a["AlarmArn"] for a in described(stack).values()
    )


def test_the_functions_lines_are_in_their_log_groups(stack):
    async def heartbeat() -> None:
        ws = await open_ws(stack.url)
        assert (await request(ws, {"action": "heartbeat"}))["type"] == "heartbeatAck"
        await ws.close()

    asyncio.run(heartbeat())
    logs = aws_client(stack, "logs")
    groups = {g["logGroupName"]: g for g in logs.describe_log_groups()["logGroups"]}
    stage = stack.info["stack"]
    for function in ROUTES:
        group = groups[f"/aws/lambda/{function_name(stage, function)}"]
        assert group["retentionInDays"] == stack.info["settings"]["logRetentionDays"]
    connect = f"/aws/lambda/{function_name(stage, next(f for f in ROUTES if f.name == 'connect'))}"
    events = wait_for(
        lambda: logs.filter_log_events(logGroupName=connect, filterPattern="connect")["events"]
    )
    assert events, "no $connect line reached CloudWatch Logs"
    record = json.loads(events[-1]["message"])
    assert {"timestamp", "level", "message"} <= set(record)


def test_an_unimplemented_call_is_one_aws_error_that_botocore_parses(stack):
    config = Config(retries={"mode": "standard", "max_attempts": 5})
    for service, call in (
        ("cloudwatch", lambda c: c.describe_alarm_history()),  # Smithy RPC v2 CBOR
        ("logs", lambda c: c.describe_query_definitions()),  # JSON 1.1
    ):
        client = aws_client(stack, service, config=config)
        with pytest.raises(ClientError) as raised:
            call(client)
        response = raised.value.response
        assert response["Error"]["Code"] == "UnknownOperationException", response
        assert "does not implement" in response["Error"]["Message"]
        assert response["ResponseMetadata"]["HTTPStatusCode"] == 400
        assert response["ResponseMetadata"]["RetryAttempts"] == 0
    assert stack.info["savedQueries"] is False  # moto 5.2 has no PutQueryDefinition


def test_list_metrics_lists_each_metric_and_dimension_set_once(stack):
    cloudwatch = aws_client(stack, "cloudwatch")
    assert wait_for(lambda: cloudwatch.list_metrics(Namespace="AWS/ApiGateway")["Metrics"])
    metrics = [
        m for page in cloudwatch.get_paginator("list_metrics").paginate() for m in page["Metrics"]
    ]
    keys = [
        (
            m["Namespace"],
            m["MetricName"],
            frozenset((d["Name"], d["Value"]) for d in m["Dimensions"]),
        )
        for m in metrics
    ]
    assert len(keys) == len(set(keys)), sorted(k for k in keys if keys.count(k) > 1)[:5]


def test_no_traceback_on_the_stacks_terminal(stack):
    assert "Traceback" not in stack.stderr()
