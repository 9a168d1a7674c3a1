"""The log sink's safety net: text we don't write ourselves (botocore messages, stack traces)
never carries the invocation's raw connection ID or client IP into CloudWatch."""

from __future__ import annotations

import json
from urllib.parse import quote

from botocore.exceptions import EndpointConnectionError

from runtime import store
from runtime.handlers import heartbeat
from runtime.observability.logs import REDACTED
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
