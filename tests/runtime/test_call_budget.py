"""AWS call budgets per operation (each includes the one PutMetricData), counted exactly.

The scenarios are the ones ``python -m bench.call_counter`` prints, so the published table is
the tested one. Counts come from botocore's ``before-call`` event: API calls, not attempts.
"""

from __future__ import annotations

import math
import threading

import boto3
import pytest

from bench import call_scenarios
from bench.call_counter import CallCounter, format_table
from runtime import aws as runtime_aws

PUT_METRICS = "cloudwatch:PutMetricData"
POST = "apigatewaymanagementapi:PostToConnection"


@pytest.fixture
def harness(aws, connections) -> call_scenarios.Harness:
    return call_scenarios.Harness()


def test_create_session_makes_4_calls(harness) -> None:
    calls = call_scenarios.create(harness)
    assert calls == {
        PUT_METRICS: 1,
        "dynamodb:GetItem": 1,  # who is this connection (verified user, no role yet)
        "dynamodb:TransactWriteItems": 1,  # limit + unique ID + speaker role, atomically
        "dynamodb:UpdateItem": 1,  # sessionsPerHour
    }
    assert sum(calls.values()) <= 4


def test_join_makes_4_calls(harness) -> None:
    calls = call_scenarios.join(harness)
    # Rate limit, listener count, listener role.
    assert calls == {PUT_METRICS: 1, "dynamodb:UpdateItem": 3}
    assert sum(calls.values()) <= 4


def test_heartbeat_makes_2_calls(harness) -> None:
    assert call_scenarios.heartbeat_once(harness) == {PUT_METRICS: 1, "dynamodb:UpdateItem": 1}


def test_heartbeat_that_pushes_a_notice_adds_only_the_post(harness) -> None:
    assert call_scenarios.heartbeat_with_notice(harness) == {
        PUT_METRICS: 1,
        "dynamodb:UpdateItem": 1,
        POST: 1,
    }


def test_listener_disconnect_makes_3_calls(harness) -> None:
    assert call_scenarios.listener_disconnect(harness) == {
        PUT_METRICS: 1,
        "dynamodb:DeleteItem": 1,
        "dynamodb:UpdateItem": 1,
    }


@pytest.mark.parametrize("listeners", [0, 10, 500])
def test_speaker_disconnect_is_5_plus_posts_plus_batched_deletes(harness, listeners) -> None:
    calls = call_scenarios.speaker_disconnect(listeners)(harness)
    batches = math.ceil(listeners / 25)
    expected = {
        PUT_METRICS: 1,
        "dynamodb:DeleteItem": 1,  # this connection's record (returns it)
        "dynamodb:TransactWriteItems": 1,  # end the session + release its active slot
        "dynamodb:Query": 1,  # the listeners, one page
    }
    if listeners:
        expected[POST] = listeners
        expected["dynamodb:BatchWriteItem"] = batches
    assert calls == expected
    assert sum(calls.values()) <= 5 + listeners + batches


def test_metrics_reporter_makes_one_query_and_one_put(harness) -> None:
    assert call_scenarios.report(harness) == {PUT_METRICS: 1, "dynamodb:Query": 1}


def test_every_scenario_is_printed_in_the_bench_table(harness) -> None:
    rows = {"heartbeat": call_scenarios.heartbeat_once(harness)}
    table = format_table(rows)
    assert "| heartbeat | dynamodb:UpdateItem | 1 |" in table
    assert "| heartbeat | **total** | **2** |" in table
    assert set(call_scenarios.SCENARIOS) >= {
        "createSession",
        "joinSession",
        "heartbeat",
        "$disconnect (listener)",
        "$disconnect (speaker, 10 listeners)",
        "$disconnect (speaker, 500 listeners)",
    }


# --- the counter ---------------------------------------------------------------------------------


def test_counter_counts_calls_from_every_thread_and_stops_when_detached(aws) -> None:
    ddb = runtime_aws.dynamodb()
    with CallCounter([ddb], default_session=False) as counter:
        threads = [threading.Thread(target=ddb.list_tables) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        ddb.describe_table(TableName="session-management-test-Sessions")
    ddb.list_tables()  # after stop: not counted
    assert counter.counts() == {"dynamodb:DescribeTable": 1, "dynamodb:ListTables": 8}
    assert counter.total() == 9
    assert counter.total("cloudwatch") == 0


def test_counter_sees_clients_created_later_through_the_default_session(aws) -> None:
    with CallCounter() as counter:
        boto3.client("cloudwatch").list_metrics()
    assert counter["cloudwatch:ListMetrics"] == 1
