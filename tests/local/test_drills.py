"""Fire drills end to end: each drives a real local stack until its alarm fires and clears.

One stack (alarm time ×60) serves every drill in turn; each drill cleans up after itself
(faults cleared, clients closed). The alarm topic has an SQS queue subscribed, so the
notifications CloudWatch would send are read back as a subscriber receives them.
"""

from __future__ import annotations

import asyncio
import json
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from typing import Any

import pytest

from local.drills.runner import DRILLS, LEASE_S
from local.process import project_root
from runtime.alarms import stack_alarms
from runtime.routes import ROUTES
from runtime.settings import PROJECT, parse_settings
from tests.local.local_support import aws_client, heartbeat_once, launch

pytestmark = pytest.mark.slow

MAX_ACTIVE_SESSIONS = 20  # the active-sessions drill opens 18 sessions, not 90


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    for running in launch(
        tmp_path_factory.mktemp("drills"),
        "drills",
        "--alarm-time-scale",
        "60",
        "--set",
        f"maxActiveSessions={MAX_ACTIVE_SESSIONS}",
        "--quiet",
    ):
        # One request first, so the functions have logged whichever of this module's tests
        # a pytest-xdist worker runs (the teardown checks every stdout line).
        asyncio.run(heartbeat_once(running.url))
        yield running


@pytest.fixture(scope="module")
def alarm_queue(stack) -> str:
    """An SQS queue subscribed to the stack's alarm topic (raw delivery: the message itself)."""
    sqs, sns = aws_client(stack, "sqs"), aws_client(stack, "sns")
    url = sqs.create_queue(QueueName="alarm-subscriber")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    sns.subscribe(
        TopicArn=stack.info["alarmTopicArn"],
        Protocol="sqs",
        Endpoint=arn,
        Attributes={"RawMessageDelivery": "true"},
    )
    return url


def get(stack, path: str) -> Any:
    with urllib.request.urlopen(f"http://127.0.0.1:{stack.port}{path}", timeout=10) as response:
        return json.loads(response.read())


def notifications(stack, queue_url: str, alarm_name: str) -> list[dict[str, Any]]:
    sqs = aws_client(stack, "sqs")
    found: list[dict[str, Any]] = []
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        batch = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1)
        for message in batch.get("Messages", []):
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
            doc = json.loads(message["Body"])
            if doc["AlarmName"] == alarm_name:
                found.append(doc)
        states = [d["NewStateValue"] for d in found]
        if "ALARM" in states and "OK" in states[states.index("ALARM") :]:
            break
    return found


def test_every_alarm_of_the_stack_is_served_with_its_state(stack):
    alarms = get(stack, "/_local/alarms")
    settings = parse_settings("dev", {"maxActiveSessions": MAX_ACTIVE_SESSIONS})
    expected = stack_alarms(settings, [f"{PROJECT}-dev-{f.name}" for f in ROUTES])
    assert [a["name"] for a in alarms] == [a.name for a in expected]
    for alarm, definition in zip(alarms, expected, strict=True):
        assert alarm["state"] in ("OK", "ALARM", "INSUFFICIENT_DATA")
        assert alarm["reason"] and re.fullmatch(r"\d{4}-\d\d-\d\dT[\d:.]+Z", alarm["updatedAt"])
        assert alarm["threshold"] == definition.threshold
        assert alarm["periodRealSeconds"] == definition.period / 60
        assert alarm["runbook"] == definition.runbook
        assert alarm["runbook"].startswith("docs/runbooks.md#")


def test_bad_faults_are_refused_with_the_reason(stack):
    request = urllib.request.Request(
        f"http://127.0.0.1:{stack.port}/_local/faults",
        data=json.dumps({"service": "dynamodb", "kind": "melt"}).encode(),
        method="POST",
    )
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=10)
    assert refused.value.code == 400
    assert "'kind' must be one of error, slow" in refused.value.read().decode()
    assert get(stack, "/_local/faults") == []
    # Another site's page cannot take the stack down through the developer's browser.
    foreign = urllib.request.Request(
        f"http://127.0.0.1:{stack.port}/_local/faults",
        data=json.dumps({"service": "dynamodb", "kind": "error"}).encode(),
        method="POST",
        headers={"Origin": "http://evil.example"},
    )
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(foreign, timeout=10)
    assert refused.value.code == 403
    assert get(stack, "/_local/faults") == []


@pytest.mark.parametrize("name", sorted(DRILLS))
def test_the_drill_fires_its_alarm_and_clears_it(stack, alarm_queue, name):
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "local", "drill", name, "--port", str(stack.port)],
        cwd=project_root(),
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    output = result.stdout + result.stderr
    print(f"\n{output}\n(drill {name} took {time.monotonic() - started:.1f}s)")
    assert result.returncode == 0, output
    target = re.search(r"alarm (\S+):", output).group(1)
    assert re.search(rf"\* {re.escape(target)}: OK -> ALARM", output), output
    assert re.search(rf"\* {re.escape(target)}: ALARM -> OK", output), output
    assert f"drill {name}: PASSED" in output
    # It prints the alarm's runbook, and the running stack serves that section.
    alarm = next(a for a in get(stack, "/_local/alarms") if a["name"] == target)
    anchor = alarm["runbook"].split("#", 1)[1]
    served = f"http://127.0.0.1:{stack.port}/_local/runbooks#{anchor}"
    assert f"runbook: {alarm['runbook']}  ({served})" in output, output
    with urllib.request.urlopen(served, timeout=10) as page:
        assert f'id="{anchor}"' in page.read().decode()
    # The same transitions reached the alarm topic's subscriber, as CloudWatch sends them.
    sent = notifications(stack, alarm_queue, target)
    states = [d["NewStateValue"] for d in sent]
    assert "ALARM" in states and "OK" in states[states.index("ALARM") :], sent
    fired = sent[states.index("ALARM")]
    assert fired["OldStateValue"] == "OK"
    assert fired["NewStateReason"].startswith("Threshold Crossed:")
    assert fired["AlarmDescription"].endswith(f"Runbook: {alarm['runbook']}")
    assert fired["Trigger"]["Period"] in (60, 300)
    trigger_keys = {"MetricName", "Namespace", "StatisticType", "Dimensions", "EvaluationPeriods",
                    "ComparisonOperator", "Threshold", "TreatMissingData"}  # fmt: skip
    assert trigger_keys <= set(fired["Trigger"])
    assert get(stack, "/_local/faults") == []


def test_stderr_summarises_the_start_up_settling_and_prints_every_later_transition(stack):
    alarms_url = f"http://127.0.0.1:{stack.port}/_local/alarms"
    count = len(get(stack, "/_local/alarms"))
    deadline = time.monotonic() + 30
    while "evaluated: " not in stack.stderr().split("Ctrl-C stops.", 1)[1]:
        assert time.monotonic() < deadline, stack.stderr()
        time.sleep(0.2)
    after_banner = stack.stderr().split("Ctrl-C stops.", 1)[1]
    # One line for the first evaluation (every alarm leaves INSUFFICIENT_DATA), not one each.
    (summary,) = re.findall(rf"^\S+ alarms  {count} evaluated: .*$", after_banner, re.MULTILINE)
    assert summary.endswith(f"  {alarms_url}") and f"{count} OK" in summary, summary
    assert "INSUFFICIENT_DATA -> OK" not in after_banner
    # Every later transition (those of the drills, when they ran first) has its own line.
    history = get(stack, "/_local/alarms/history")
    later = [t for t in history if t["from"] != "INSUFFICIENT_DATA"]
    for transition in later:
        line = f"{transition['name']}: {transition['from']} -> {transition['to']} (time ×60)"
        assert line in after_banner, (line, after_banner)


def test_every_invocation_reaches_the_embedded_cloudwatch_as_lambda_metrics(stack):
    cloudwatch = aws_client(stack, "cloudwatch")
    reporter = f"{PROJECT}-dev-metrics-reporter"  # runs every second at time ×60
    time.sleep(2)  # at least one scheduled run, published within a second
    for name in ("Invocations", "Errors", "Duration"):
        metrics = cloudwatch.list_metrics(Namespace="AWS/Lambda", MetricName=name)["Metrics"]
        assert {"Name": "FunctionName", "Value": reporter} in [
            d for m in metrics for d in m["Dimensions"]
        ], name
    now = time.time()
    invocations = cloudwatch.get_metric_statistics(
        Namespace="AWS/Lambda",
        MetricName="Invocations",
        Dimensions=[{"Name": "FunctionName", "Value": reporter}],
        StartTime=now - 600,
        EndTime=now + 60,
        Period=60,
        Statistics=["Sum"],
    )["Datapoints"]
    assert sum(p["Sum"] for p in invocations) >= 1


def test_drill_list_names_every_drill():
    result = subprocess.run(
        [sys.executable, "-m", "local", "drill", "--list"],
        cwd=project_root(),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert [line.split()[0] for line in result.stdout.splitlines()] == list(DRILLS)


def test_a_drill_without_a_stack_says_how_to_start_one(unused_port):
    result = subprocess.run(
        [sys.executable, "-m", "local", "drill", "server-errors", "--port", str(unused_port)],
        cwd=project_root(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert f"no local stack on port {unused_port}" in result.stderr
    assert "--alarm-time-scale 60" in result.stderr


def call(stack, method: str, path: str, body: Any = None) -> Any:
    request = urllib.request.Request(
        f"http://127.0.0.1:{stack.port}{path}",
        data=None if body is None else json.dumps(body).encode(),
        method=method,
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read() or b"null")


def test_a_fault_naming_a_function_that_does_not_exist_is_refused_with_the_names(stack):
    doc = {"service": "dynamodb", "kind": "error", "functions": ["join-sesion"]}
    with pytest.raises(urllib.error.HTTPError) as refused:
        call(stack, "POST", "/_local/faults", doc)
    assert refused.value.code == 400
    message = json.loads(refused.value.read())["message"]
    assert "no function 'join-sesion' (did you mean join-session?)" in message
    assert all(f.name in message for f in ROUTES)
    assert get(stack, "/_local/faults") == []


# A fault a developer set by hand, which no drill may remove: it never matches a call.
BY_HAND = {"service": "cloudwatch", "kind": "error", "operations": ["DescribeAlarmHistory"]}


def start_drill(stack, tmp_path, name: str = "join-latency") -> tuple[subprocess.Popen, Any]:
    """A drill in the background, and its fault once it has set it (a list of one)."""
    output = (tmp_path / "drill.out").open("w+")
    drill = subprocess.Popen(
        [sys.executable, "-m", "local", "drill", name, "--port", str(stack.port)],
        cwd=project_root(),
        stdout=output,
        stderr=subprocess.STDOUT,
        text=True,
    )
    deadline = time.monotonic() + 120
    while True:
        mine = [f for f in get(stack, "/_local/faults") if f.get("owner", "").startswith("drill")]
        if mine:
            return drill, mine
        assert drill.poll() is None and time.monotonic() < deadline, output.read()
        time.sleep(0.1)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP], ids=str)
def test_a_drill_stopped_by_a_signal_removes_its_faults_and_no_other(stack, tmp_path, sig):
    (by_hand,) = call(stack, "POST", "/_local/faults", BY_HAND)["faults"]
    try:
        drill, (fault,) = start_drill(stack, tmp_path)
        assert fault["owner"] == f"drill join-latency (pid {drill.pid})"
        assert 0 < fault["expiresInSeconds"] <= LEASE_S  # on a lease
        drill.send_signal(sig)
        assert drill.wait(60) == 128 + sig
        output = (tmp_path / "drill.out").read_text()
        assert f"stopped: removed its fault(s) {fault['id']}; closed " in output, output
        assert "Traceback" not in output
        assert [f["id"] for f in get(stack, "/_local/faults")] == [by_hand["id"]]
    finally:
        call(stack, "DELETE", f"/_local/faults/{by_hand['id']}")


def test_a_drill_killed_with_sigkill_leaves_its_faults_until_their_lease_ends(stack, tmp_path):
    (by_hand,) = call(stack, "POST", "/_local/faults", BY_HAND)["faults"]
    try:
        drill, (fault,) = start_drill(stack, tmp_path)
        drill.kill()
        drill.wait(60)
        left = {f["id"] for f in get(stack, "/_local/faults")}
        assert left == {by_hand["id"], fault["id"]}  # nobody removed it: the lease will
        deadline = time.monotonic() + LEASE_S + 30
        while fault["id"] in {f["id"] for f in get(stack, "/_local/faults")}:
            assert time.monotonic() < deadline, "the drill's fault outlived its lease"
            time.sleep(0.2)
        assert [f["id"] for f in get(stack, "/_local/faults")] == [by_hand["id"]]
        assert f"fault {fault['id']} (set by drill join-latency" in stack.stderr()
        assert "expired: its lease ran out" in stack.stderr()
    finally:
        call(stack, "DELETE", f"/_local/faults/{by_hand['id']}")
