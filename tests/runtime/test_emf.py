"""EMF as the functions write it, checked against the CloudWatch Embedded Metric Format
specification (``local.monitoring.emf.problems``: required members and their types, the limits,
every
referenced dimension and metric a top-level member of the same line).

The autouse ``cloudwatch_logs`` fixture applies the same check to every EMF line written in
every runtime test; these tests pin the checker itself and the packing rules.
"""

from __future__ import annotations

import copy
import importlib
import json

import pytest

from local.monitoring import emf
from runtime import metric_names
from runtime.metric_names import (
    CONNECTION_ERRORS,
    DEPENDENCY_FAILURES,
    HEARTBEAT_LATENCY,
    RATE_LIMIT_EXCEEDED,
    SERVER_ERRORS,
)
from runtime.observability import logs
from runtime.observability.metrics import MetricsBuffer
from runtime.routes import WEBSOCKET_ROUTES
from tests.runtime.helpers_entry import aws_calls, listener, new_session
from tests.runtime.helpers_lifecycle import set_env
from tests.support.lambda_events import (
    LambdaContext,
    connect_event,
    disconnect_event,
    message_event,
)

VALID = {
    "_aws": {
        "Timestamp": 1_796_000_000_000,
        "CloudWatchMetrics": [
            {
                "Namespace": "SessionManagement",
                "Dimensions": [["Stage"], ["Stage", "ErrorCode"]],
                "Metrics": [{"Name": "ConnectionErrors", "Unit": "Count"}],
            }
        ],
    },
    "Stage": "dev",
    "ErrorCode": "INVALID_ACTION",
    "ConnectionErrors": 1,
    "message": "metrics",
}


def broken(change) -> dict:
    document = copy.deepcopy(VALID)
    change(document)
    return document


def directive(document: dict) -> dict:
    return document["_aws"]["CloudWatchMetrics"][0]


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (lambda d: d.pop("_aws"), "_aws must be an object"),
        (lambda d: d["_aws"].pop("Timestamp"), "lacks ['Timestamp']"),
        (lambda d: d["_aws"].update(Timestamp="now"), "Timestamp must be"),
        (lambda d: d["_aws"].pop("CloudWatchMetrics"), "lacks ['CloudWatchMetrics']"),
        (lambda d: directive(d).pop("Namespace"), "lacks ['Namespace']"),
        (lambda d: directive(d).update(Namespace=""), "Namespace must be a non-empty"),
        (lambda d: directive(d).update(Extra=1), "unexpected members ['Extra']"),
        (lambda d: d.pop("ErrorCode"), "'ErrorCode' is not a member"),
        (lambda d: d.update(ErrorCode=400), "'ErrorCode' must be a non-empty string"),
        (lambda d: d.pop("ConnectionErrors"), "'ConnectionErrors' is not a member"),
        (lambda d: d.update(ConnectionErrors="1"), "must be a number or an array"),
        (lambda d: d.update(ConnectionErrors=[1.0] * 101), "101 values, over 100"),
        (lambda d: directive(d)["Metrics"][0].update(Unit="Requests"), "not a CloudWatch unit"),
        (lambda d: directive(d)["Metrics"][0].update(StorageResolution=5), "StorageResolution"),
        (
            lambda d: directive(d).update(Dimensions=[[f"D{i}" for i in range(31)]]),
            "31 dimensions",
        ),
        (
            lambda d: (
                directive(d).update(Metrics=[{"Name": f"M{i}"} for i in range(101)]),
                d.update({f"M{i}": 1 for i in range(101)}),
            ),
            "101 metrics, over 100",
        ),
    ],
)
def test_the_checker_finds_each_breach_of_the_specification(change, problem) -> None:
    assert emf.problems(VALID) == []
    found = emf.problems(broken(change))
    assert any(problem in p for p in found), found


def test_the_checker_refuses_a_line_over_256_kb() -> None:
    line = json.dumps({**VALID, "pad": "x" * (256 * 1024)})
    document, found = emf.parse_line(line)
    assert document is not None and any("over 262144" in p for p in found)


def test_extraction_publishes_every_metric_under_every_dimension_set() -> None:
    data = emf.metric_data({**VALID, "ConnectionErrors": [1, 1, 2]})
    assert {ns for ns, _ in data} == {"SessionManagement"}
    dims = sorted(tuple(d["Name"] for d in datum["Dimensions"]) for _, datum in data)
    assert dims == [("Stage",), ("Stage", "ErrorCode")]
    datum = data[0][1]
    assert (datum["Values"], datum["Counts"], datum["Unit"]) == ([1.0, 2.0], [2.0, 1.0], "Count")


# --- packing one invocation's metrics --------------------------------------------------------


def test_one_invocation_is_one_line_when_its_dimension_values_agree() -> None:
    buffer = MetricsBuffer("SessionManagement", "dev")
    buffer.add(HEARTBEAT_LATENCY, 4.5)
    buffer.add(CONNECTION_ERRORS, 1, ErrorCode="SERVICE_UNAVAILABLE")
    buffer.add(SERVER_ERRORS, 1, ErrorCode="SERVICE_UNAVAILABLE")
    buffer.add(DEPENDENCY_FAILURES, 1, Operation="heartbeat")
    (document,) = buffer.emf_documents(1_796_000_000_000)
    assert emf.problems(document) == []
    assert document["ErrorCode"] == "SERVICE_UNAVAILABLE" and document["Operation"] == "heartbeat"
    # One directive per tuple of dimension sets: latency by Stage; errors; dependencies.
    directives = {
        tuple(map(tuple, d["Dimensions"])): [m["Name"] for m in d["Metrics"]]
        for d in document["_aws"]["CloudWatchMetrics"]
    }
    assert directives == {
        (("Stage",),): ["HeartbeatLatency"],
        (("Stage",), ("Stage", "ErrorCode")): ["ConnectionErrors", "ServerErrors"],
        (("Stage",), ("Stage", "Operation")): ["DependencyFailures"],
    }


def test_conflicting_dimension_values_and_over_100_values_split_into_more_lines() -> None:
    buffer = MetricsBuffer("SessionManagement", "dev")
    for _ in range(150):
        buffer.add(DEPENDENCY_FAILURES, 1, Operation="connectionPush")
    buffer.add(RATE_LIMIT_EXCEEDED, 1, Operation="heartbeat")  # another Operation value
    documents = buffer.emf_documents(1_796_000_000_000)
    assert all(emf.problems(d) == [] for d in documents)
    pushes = [d["DependencyFailures"] for d in documents if "DependencyFailures" in d]
    assert sorted(len(v) if isinstance(v, list) else 1 for v in pushes) == [50, 100]
    (limited,) = [d for d in documents if "RateLimitExceeded" in d]
    assert limited["Operation"] == "heartbeat" and "DependencyFailures" not in limited
    # Nothing lost, nothing doubled: the values extracted equal the values buffered.
    extracted = [datum for d in documents for _, datum in emf.metric_data(d)]
    total = sum(
        v * c
        for datum in extracted
        if datum["MetricName"] == "DependencyFailures" and len(datum["Dimensions"]) == 1
        for v, c in zip(datum["Values"], datum["Counts"], strict=True)
    )
    assert total == 150


# --- what the functions write -----------------------------------------------------------------


def _emf_lines(out: str) -> list[dict]:
    return [json.loads(line) for line in out.splitlines() if '"_aws"' in line]


def _handler(function):
    module, _, attribute = function.handler.rpartition(".")
    return getattr(importlib.import_module(module), attribute)


def test_every_websocket_function_writes_valid_emf_and_calls_no_cloudwatch(
    aws, issuer, connections, capsys
) -> None:
    speaker, session_id = new_session(issuer)
    member = listener()
    bodies = {
        "createSession": {"action": "createSession", "sourceLanguage": "en"},  # 2nd: FORBIDDEN
        "joinSession": {"action": "joinSession", "sessionId": session_id, "targetLanguage": "es"},
        "heartbeat": {"action": "heartbeat"},
        "refreshConnection": {"action": "refreshConnection", "sessionId": session_id},
        "$default": "not json",
    }
    capsys.readouterr()
    for function in WEBSOCKET_ROUTES:
        handler = _handler(function)
        context = LambdaContext(function_name=f"session-management-test-{function.name}")
        with aws_calls() as calls:
            if function.route_key == "$connect":
                handler(connect_event("EmfProbe0001=", token="not.a.token"), context)  # 401
            elif function.route_key == "$disconnect":
                handler(disconnect_event(member), context)
            else:
                cid = speaker if function.route_key == "createSession" else member
                handler(message_event(cid, bodies[function.route_key]), context)
        assert not [n for n in calls.names if n.startswith("cloudwatch.")], function.name
        lines = _emf_lines(capsys.readouterr().out)
        assert lines, f"{function.name} wrote no EMF line"
        for line in lines:
            assert emf.problems(line) == [], (function.name, line)
            assert line["function"] == context.function_name
            assert line["operation"] == function.operation
            assert line["requestId"] == context.aws_request_id
            assert line["Stage"] == "test"
            for d in line["_aws"]["CloudWatchMetrics"]:
                for m in d["Metrics"]:
                    assert m["Name"] in metric_names.BY_NAME  # declared metrics only


def test_the_metrics_line_is_written_whatever_the_log_level(aws, monkeypatch, capsys) -> None:
    set_env(monkeypatch, LOG_LEVEL="ERROR")
    logs.reconfigure("ERROR")
    try:
        from runtime.handlers import default

        default.handler(message_event("Quiet0000001=", "not json"), LambdaContext())
        out = capsys.readouterr().out
    finally:
        logs.reconfigure("INFO")
    every = [json.loads(line) for line in out.splitlines()]
    # The WARN for the rejected frame is below ERROR: only the metrics line is written.
    assert [line["message"] for line in every] == [logs.METRICS_MESSAGE]
    assert every[0]["ConnectionErrors"] == 1 and every[0]["ErrorCode"] == "INVALID_MESSAGE"
