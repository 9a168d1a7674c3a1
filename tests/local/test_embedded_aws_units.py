"""The embedded AWS server's fixes to moto, one by one (local.aws.server)."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import botocore.session
import pytest
from botocore.parsers import create_parser
from moto.cloudwatch.models import Dimension, cloudwatch_backends
from moto.core.model_instances import model_data
from moto.logs.models import logs_backends

from local.aws import server

ENVIRONS = {
    "smithy-rpc-v2-cbor": (
        "cloudwatch",
        "DescribeAlarmHistory",
        {"CONTENT_TYPE": "application/cbor", "HTTP_SMITHY_PROTOCOL": "rpc-v2-cbor"},
        "UnknownOperationException",
    ),
    "json": (
        "logs",
        "DescribeQueryDefinitions",
        {"CONTENT_TYPE": "application/x-amz-json-1.1", "HTTP_X_AMZ_TARGET": "Logs_20140328.X"},
        "UnknownOperationException",
    ),
    "query": (
        "sns",
        "ListTopics",
        {"CONTENT_TYPE": "application/x-www-form-urlencoded; charset=utf-8"},
        "InvalidAction",
    ),
}


def parse(protocol: str, service: str, operation: str, status: int, headers, body: bytes):
    model = botocore.session.get_session().get_service_model(service)
    shape = model.operation_model(operation).output_shape
    response = {"status_code": status, "headers": dict(headers), "body": body}
    return create_parser(protocol).parse(response, shape)


@pytest.mark.parametrize("protocol", sorted(ENVIRONS))
def test_unimplemented_operations_answer_as_aws_does_in_each_protocol(protocol):
    service, operation, environ, code = ENVIRONS[protocol]

    def moto(_environ, _start_response):
        raise NotImplementedError("The describe_things action has not been implemented")

    seen = {}

    def start_response(status, headers):
        seen.update(status=status, headers=headers)

    body = b"".join(server.AwsErrors(moto)(environ, start_response))
    assert seen["status"].startswith("400 ")
    parsed = parse(protocol, service, operation, 400, seen["headers"], body)
    assert parsed["Error"]["Code"] == code
    assert "describe_things" in parsed["Error"]["Message"]


def test_a_failure_inside_moto_is_one_line_and_an_aws_500():
    lines = []

    def moto(_environ, _start_response):
        raise KeyError("boom")

    seen = {}
    body = b"".join(
        server.AwsErrors(moto, report=lines.append)(
            ENVIRONS["json"][2], lambda status, headers: seen.update(status=status, h=headers)
        )
    )
    assert seen["status"].startswith("500 ")
    parsed = parse("json", "logs", "DescribeQueryDefinitions", 500, seen["h"], body)
    assert parsed["Error"]["Code"] == "InternalFailure"
    assert len(lines) == 1 and "Traceback" not in lines[0]


def test_dimension_sets_are_the_same_metric_whatever_their_order():
    a = [Dimension("ApiId", "x"), Dimension("Stage", "dev")]
    assert server.same_dimensions(a, list(reversed(a)))
    assert not server.same_dimensions(a, [Dimension("ApiId", "x"), Dimension("Stage", "prod")])
    assert not server.same_dimensions(a, a[:1])


def test_trim_bounds_metric_datums_and_log_events(monkeypatch):
    monkeypatch.setattr(server, "MAX_METRIC_DATUMS", 10)
    monkeypatch.setattr(server, "MAX_EVENTS_PER_STREAM", 5)
    cloudwatch = cloudwatch_backends["123456789012"]["eu-west-3"]
    logs = logs_backends["123456789012"]["eu-west-3"]
    now = time.time()
    old = datetime.fromtimestamp(now - server.METRIC_RETENTION_S - 60, UTC)
    try:
        cloudwatch.put_metric_data(
            "NS",
            [{"MetricName": "M", "Value": 1.0, "Timestamp": old}] * 3
            + [{"MetricName": "M", "Value": 2.0}] * 12,
        )
        logs.create_log_group("/aws/lambda/f", {})
        logs.put_retention_policy("/aws/lambda/f", 1)
        logs.create_log_stream("/aws/lambda/f", "s")
        stale = int((now - 2 * 86400) * 1000)
        logs.put_log_events(
            "/aws/lambda/f",
            "s",
            [{"timestamp": stale, "message": "old"}]
            + [{"timestamp": int(now * 1000), "message": f"m{i}"} for i in range(8)],
        )
        tracked = sum(len(m.instances_tracked) for ms in model_data.values() for m in ms.values())
        assert tracked > 0  # moto's registry of every model object it made
        datums, events = server.trim(now)
        assert (datums, events) == (5, 4)
        assert not any(m.instances_tracked for ms in model_data.values() for m in ms.values())
        assert [m.value for m in cloudwatch.metric_data] == [2.0] * 10
        stream = logs.groups["/aws/lambda/f"].streams["s"]
        assert [e.message for e in stream.events] == [f"m{i}" for i in range(3, 8)]
    finally:
        cloudwatch.metric_data = []
        logs.groups.clear()
