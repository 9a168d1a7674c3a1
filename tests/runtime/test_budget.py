"""A dependency that hangs: every request still gets its reply within the function's time.

DynamoDB and CloudWatch point at a socket that accepts connections and never answers (a
stopped process looks like this). Without the budget, botocore's attempts (2 s read timeout
each, three per call) and the final PutMetricData add up past the function's timeout: the
client gets no reply at all, or a 500 on ``$connect``.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from runtime import aws as runtime_aws
from runtime import budget
from runtime.config import config
from runtime.handlers import connect, heartbeat
from tests.runtime.helpers_lifecycle import heartbeat_event, log_lines
from tests.support.lambda_events import LambdaContext, connect_event, new_connection_id, reply


@dataclass
class TimedContext(LambdaContext):
    """A context whose remaining time runs down, like Lambda's."""

    seconds: float = 10.0
    deadline: float = field(init=False)

    def __post_init__(self) -> None:
        self.deadline = time.monotonic() + self.seconds

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self.deadline - time.monotonic()) * 1000))


@pytest.fixture
def hanging_aws(runtime_env, monkeypatch) -> Iterator[None]:
    """Every AWS endpoint accepts TCP connections and never answers."""
    with socket.create_server(("127.0.0.1", 0), backlog=128) as silent:
        monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{silent.getsockname()[1]}")
        runtime_aws.reset_clients()
        yield
        runtime_aws.reset_clients()


@pytest.mark.parametrize("transport", ["api", "emf"])
def test_a_heartbeat_gets_503_before_its_time_runs_out(
    hanging_aws, capsys, monkeypatch, transport
) -> None:
    monkeypatch.setenv("METRICS_TRANSPORT", transport)
    config.cache_clear()
    context = TimedContext(seconds=4.5)
    response = heartbeat.handler(heartbeat_event(new_connection_id()), context)
    assert time.monotonic() < context.deadline, "the reply came after the function's timeout"
    assert response["statusCode"] == 503
    assert reply(response)["code"] == "SERVICE_UNAVAILABLE"
    lines = log_lines(capsys.readouterr().out)
    failed = next(line for line in lines if line.get("errorCode") == "SERVICE_UNAVAILABLE")
    assert "budget" in failed["errorMessage"]
    published = [line for line in lines if line.get("errorCode") == "METRICS_PUBLISH_FAILED"]
    if transport == "api":  # the final PutMetricData is refused too, not left to time out
        (line,) = published
        assert "budget" in line["errorMessage"]
    else:  # EMF: no call to refuse, the 503 is counted in the invocation's own log line
        assert published == []
        (emf,) = [line for line in lines if "_aws" in line]
        assert emf["ServerErrors"] == 1


def test_a_handshake_gets_503_not_a_timeout(hanging_aws) -> None:
    context = TimedContext(seconds=10)
    response = connect.handler(connect_event(new_connection_id()), context)
    assert time.monotonic() < context.deadline, "the reply came after the function's timeout"
    assert response["statusCode"] == 503
    assert reply(response)["code"] == "SERVICE_UNAVAILABLE"


def test_outside_an_invocation_nothing_is_refused() -> None:
    assert budget.remaining_s() is None
    budget.check_attempt(3.0)  # no deadline: botocore's own bounds apply


def test_an_attempt_the_budget_cannot_hold_is_refused() -> None:
    token = budget.start(TimedContext(seconds=3.5))
    try:
        with pytest.raises(budget.OutOfTime):
            budget.check_attempt(3.0)  # 3 s attempt + 1 s reserve > 3.5 s left
        budget.check_attempt(2.0)
    finally:
        budget.end(token)
    assert budget.remaining_s() is None
