"""``metricsReporter``: ActiveSessions and TotalListeners from the sparse index, zeros included."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import boto3
import pytest

from runtime.handlers import disconnect, metrics_reporter
from runtime.metric_names import DEFAULT_NAMESPACE
from tests.support.lambda_events import LambdaContext, disconnect_event
from tests.support.runtime_env import STAGE


def report() -> dict:
    return metrics_reporter.handler({"source": "aws.events"}, LambdaContext())


def published(name: str) -> list[float]:
    """Each value published for ``name`` with [Stage], read back from CloudWatch."""
    now = datetime.now(UTC)
    stats = boto3.client("cloudwatch").get_metric_statistics(
        Namespace=DEFAULT_NAMESPACE,
        MetricName=name,
        Dimensions=[{"Name": "Stage", "Value": STAGE}],
        StartTime=now - timedelta(minutes=5),
        EndTime=now + timedelta(minutes=5),
        Period=60,
        Statistics=["Maximum", "SampleCount"],
    )
    return [p["Maximum"] for p in stats["Datapoints"]]


def test_nothing_active_still_publishes_zeros(aws) -> None:
    assert report() == {"activeSessions": 0, "totalListeners": 0}
    assert published("ActiveSessions") == [0.0]
    assert published("TotalListeners") == [0.0]


def test_counts_active_sessions_and_their_listeners_not_history(aws, service, connections) -> None:
    sessions = [service.start_session() for _ in range(3)]
    for (_, session_id), listeners in zip(sessions, (2, 0, 5), strict=True):
        for _ in range(listeners):
            service.listener(session_id)
    ended_speaker, ended = service.start_session()
    service.listener(ended)
    disconnect.handler(disconnect_event(ended_speaker), LambdaContext())

    assert report() == {"activeSessions": 3, "totalListeners": 7}
    assert published("ActiveSessions") == [3.0]
    assert published("TotalListeners") == [7.0]


@pytest.mark.parametrize("name", ["ActiveSessions", "TotalListeners"])
def test_gauges_carry_only_the_stage_dimension(aws, name) -> None:
    report()
    metrics = boto3.client("cloudwatch").list_metrics(Namespace=DEFAULT_NAMESPACE, MetricName=name)[
        "Metrics"
    ]
    assert [m["Dimensions"] for m in metrics] == [[{"Name": "Stage", "Value": STAGE}]]
