"""The log sink's safety net: text we don't write ourselves (botocore messages, stack traces)
never carries a raw connection ID or an IP address into CloudWatch — on request paths, in
scheduled jobs and outside any invocation alike (issue 9, item 8)."""

from __future__ import annotations

import json
from urllib.parse import quote

import pytest
from botocore.exceptions import EndpointConnectionError

from runtime import aws as runtime_aws
from runtime import store
from runtime.config import config
from runtime.handlers import heartbeat, metrics_reporter, sweeper
from runtime.observability import logs
from runtime.observability.logs import REDACTED, log
from tests.support.lambda_events import message_event, new_connection_id, reply
from tests.support.runtime_env import SOURCE_IP


def test_a_dependency_error_quoting_the_connection_url_is_redacted(
    aws, context, capsys, monkeypatch
) -> None:
    connection_id = new_connection_id()
    url = f"https://example.test/dev/@connections/{quote(connection_id, safe='')}?ip={SOURCE_IP}"

    def unreachable(*args: object, **kwargs: object) -> None:
        raise EndpointConnectionError(endpoint_url=url)

    monkeypatch.setattr(store, "record_heartbeat", unreachable)
    response = heartbeat.handler(message_event(connection_id, {"action": "heartbeat"}), context)

    assert reply(response)["code"] == "SERVICE_UNAVAILABLE"
    out = capsys.readouterr().out
    lines = [json.loads(line) for line in out.splitlines()]
    error_lines = [line for line in lines if line["level"] == "ERROR"]
    assert error_lines and "stackTrace" in error_lines[0]
    assert REDACTED in error_lines[0]["stackTrace"]
    for raw in (connection_id, quote(connection_id, safe=""), SOURCE_IP):
        assert raw not in out


# ---------------------------------------------------------------------------- one path for all

ENDPOINTS = ("http://127.0.0.1:4566/", "http://[::1]:4566/", "http://10.20.30.40:4566/")


def _error_lines(out: str) -> list[dict]:
    return [json.loads(line) for line in out.splitlines() if json.loads(line)["level"] == "ERROR"]


def _assert_no_address(out: str) -> None:
    for raw in ("127.0.0.1", "::1", "10.20.30.40"):
        assert raw not in out, out


@pytest.mark.parametrize("endpoint", ENDPOINTS)
@pytest.mark.parametrize(
    ("job", "step"),
    [(sweeper, "sweep_connections"), (metrics_reporter, "active_sessions")],
)
def test_scheduled_jobs_failure_lines_redact_the_endpoint_like_request_lines(
    aws, context, capsys, monkeypatch, job, step, endpoint
) -> None:
    def unreachable(*args: object, **kwargs: object) -> None:
        raise EndpointConnectionError(endpoint_url=endpoint)

    monkeypatch.setattr(store, step, unreachable)
    with pytest.raises(EndpointConnectionError):
        job.handler({}, context)
    scheduled = capsys.readouterr().out
    (line,) = _error_lines(scheduled)
    _assert_no_address(scheduled)
    assert REDACTED in line["errorMessage"] and REDACTED in line["stackTrace"]

    # The same failure on a request path reads the same: one redaction for every line.
    monkeypatch.setattr(store, "record_heartbeat", unreachable)
    heartbeat.handler(message_event(new_connection_id(), {"action": "heartbeat"}), context)
    request = capsys.readouterr().out
    _assert_no_address(request)
    assert _error_lines(request)[0]["errorMessage"] == line["errorMessage"]


def test_a_metrics_publish_failure_line_redacts_the_endpoint(
    aws, context, capsys, monkeypatch
) -> None:
    monkeypatch.setenv("METRICS_TRANSPORT", "api")  # the one path that calls CloudWatch
    config.cache_clear()

    def unreachable(**kwargs: object) -> None:
        raise EndpointConnectionError(endpoint_url="http://127.0.0.1:4566/")

    monkeypatch.setattr(runtime_aws.cloudwatch(), "put_metric_data", unreachable)
    metrics_reporter.handler({}, context)
    out = capsys.readouterr().out
    assert "METRICS_PUBLISH_FAILED" in out
    _assert_no_address(out)


def test_lines_outside_any_invocation_are_redacted_too(capsys) -> None:
    logs.configure()
    log.bind(errorMessage="connect to 192.0.2.10 failed").warning(
        "posting to https://x.test/dev/@connections/QWERTY12345678%3D failed"
    )
    out = capsys.readouterr().out
    assert "192.0.2.10" not in out and "QWERTY12345678" not in out
    assert out.count(REDACTED) == 2


def test_timestamps_and_arns_are_not_mistaken_for_addresses() -> None:
    text = "2026-12-01T15:30:15.670Z arn:aws:lambda:us-east-1:123456789012:function:x 3.11.7"
    assert logs.redact(text) == text
