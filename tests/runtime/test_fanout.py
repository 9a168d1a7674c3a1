"""The @connections module against a real HTTP endpoint: gone is normal, fan-out is concurrent."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError

from runtime import aws as runtime_aws
from runtime import fanout
from runtime.observability import logs
from tests.runtime.helpers_lifecycle import log_lines

MESSAGE = {"type": "sessionEnded", "sessionId": "calm-river-101", "timestamp": 1}


def test_post_delivers_the_message_once(aws, connections) -> None:
    assert fanout.post("Abc123=", MESSAGE) is True
    assert connections.messages("Abc123=") == [MESSAGE]
    assert connections.requests == 1


def test_post_to_a_gone_connection_returns_false_without_retrying(aws, connections) -> None:
    connections.gone.add("Gone1=")
    assert fanout.post("Gone1=", MESSAGE) is False
    assert connections.requests == 1  # 410 is an answer, not a failure to retry


def test_post_raises_other_failures(aws, connections) -> None:
    connections.failing["Bad1="] = 403
    with pytest.raises(ClientError):
        fanout.post("Bad1=", MESSAGE)


def test_server_errors_are_retried_by_botocore_then_raised(aws, connections) -> None:
    connections.failing["Bad1="] = 500
    with pytest.raises(ClientError) as raised:
        fanout.post("Bad1=", MESSAGE)
    assert not fanout.is_gone(raised.value)
    # Exactly the client's attempts: retried, but never forever.
    attempts = runtime_aws.connections().meta.config.retries["total_max_attempts"]
    assert attempts > 1
    assert connections.requests == attempts


def test_close_deletes_then_reports_gone(aws, connections) -> None:
    assert fanout.close("Abc123=") is True
    assert connections.deletes == ["Abc123="]
    assert fanout.close("Abc123=") is False


def test_fan_out_isolates_gone_and_failing_connections(aws, connections) -> None:
    ids = [f"L{i:03d}=" for i in range(40)]
    connections.gone.update(ids[:3])
    connections.failing.update({ids[3]: 403, ids[4]: 403})

    result = fanout.fan_out(ids, MESSAGE)

    assert set(result.gone) == set(ids[:3])
    assert set(result.failed) == set(ids[3:5])
    assert set(result.delivered) == set(ids[5:])
    assert result.counts() == {"delivered": 35, "gone": 3, "failed": 2}
    for cid in ids[5:]:
        assert connections.messages(cid) == [MESSAGE]
    assert connections.delivered_to() == set(ids[5:])


def test_fan_out_posts_concurrently_on_a_bounded_pool(aws, connections) -> None:
    connections.delay_s = 0.05
    ids = [f"L{i:03d}=" for i in range(96)]
    result = fanout.fan_out(ids, MESSAGE)

    assert len(result.delivered) == 96
    # Far from one post after another: at least 4 held at once (counted by the server, not
    # timed, so a loaded machine cannot fail it), never more than the pool.
    assert 4 <= connections.max_in_flight <= fanout.MAX_WORKERS


def test_fan_out_posts_each_connection_once_and_nothing_for_none(aws, connections) -> None:
    assert fanout.fan_out([], MESSAGE).counts() == {"delivered": 0, "gone": 0, "failed": 0}
    assert connections.requests == 0
    result = fanout.fan_out(["A=", "B=", "A="], MESSAGE)
    assert sorted(result.delivered) == ["A=", "B="]
    assert connections.requests == 2


def test_worker_log_lines_keep_the_invocation_fields(aws, connections, capsys) -> None:
    logs.reconfigure("DEBUG")
    token = logs.start_invocation({"operation": "disconnect", "requestId": "req-42"})
    try:
        connections.gone.add("Gone1=")
        connections.failing["Bad1="] = 403
        fanout.fan_out(["Gone1=", "Bad1=", "Ok1="], MESSAGE)
    finally:
        logs.end_invocation(token)
        logs.reconfigure("INFO")
    lines = log_lines(capsys.readouterr().out)
    gone = [line for line in lines if "gone" in line["message"]]
    assert gone and gone[0]["requestId"] == "req-42"
    assert gone[0]["operation"] == "disconnect"
    warning = [line for line in lines if line["level"] == "WARN"]
    assert len(warning) == 1  # one line per fan-out, not one per failed listener
    assert warning[0]["details"] == {"delivered": 1, "gone": 1, "failed": 1}
    text = "\n".join(str(line) for line in lines)
    for cid in ("Gone1=", "Bad1=", "Ok1="):
        assert cid not in text  # never a raw connection ID in a log line
