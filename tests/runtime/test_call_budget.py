"""AWS call budgets per operation, counted exactly.

The budgets are for the default ``metricsTransport: emf``: metrics ride in the log lines, so no
function calls CloudWatch. With ``api`` every invocation that measured something adds exactly
one PutMetricData, and nothing else changes.

The scenarios are the ones ``python -m bench.call_counter`` prints, so the published table is
the tested one. Counts come from botocore's ``before-call`` event: API calls, not attempts.
"""

from __future__ import annotations

import math
import threading

import boto3
import pytest

from bench import call_scenarios, calls
from bench.call_counter import CallCounter, format_table
from runtime import aws as runtime_aws
from tests.runtime.helpers_lifecycle import set_env

PUT_METRICS = "cloudwatch:PutMetricData"
POST = "apigatewaymanagementapi:PostToConnection"


@pytest.fixture
def harness(aws, connections) -> call_scenarios.Harness:
    return call_scenarios.Harness()


def test_listener_connect_makes_2_calls(harness) -> None:
    calls_made = call_scenarios.connect_listener(harness)
    # The handshake rate limit and the connection record; no token, so no JWKS (not AWS).
    assert calls_made == {"dynamodb:UpdateItem": 1, "dynamodb:PutItem": 1}
    assert sum(calls_made.values()) <= 2


def test_a_connect_from_an_address_in_use_makes_3_calls(harness) -> None:
    # A venue: its address's bucket is in use, so the idle-bucket write fails its condition
    # and the in-use write takes the token; then the record.
    assert call_scenarios.connect_at_a_venue(harness) == {
        "dynamodb:UpdateItem": 2,
        "dynamodb:PutItem": 1,
    }


def test_create_session_makes_3_calls(harness) -> None:
    calls_made = call_scenarios.create(harness)
    assert calls_made == {
        "dynamodb:GetItem": 1,  # who is this connection (verified user, no role yet)
        "dynamodb:TransactWriteItems": 1,  # limit + unique ID + speaker role, atomically
        "dynamodb:UpdateItem": 1,  # sessionsPerHour
    }
    assert sum(calls_made.values()) <= 3


def test_join_makes_3_calls(harness) -> None:
    calls_made = call_scenarios.join(harness)
    # Rate limit, listener count, listener role.
    assert calls_made == {"dynamodb:UpdateItem": 3}
    assert sum(calls_made.values()) <= 3


def test_a_join_of_an_unknown_session_makes_3_calls(harness) -> None:
    calls_made = call_scenarios.join_unknown(harness)
    # Join limit + failed-lookup budget (one conditional write), the lookup, the failure.
    assert calls_made == {"dynamodb:UpdateItem": 3}


def test_a_listener_refresh_makes_2_calls(harness) -> None:
    calls_made = call_scenarios.refresh_listener(harness)
    # The join limit (a refresh counts as a join) and the count + role transaction.
    assert calls_made == {"dynamodb:UpdateItem": 1, "dynamodb:TransactWriteItems": 1}


def test_a_speaker_refresh_makes_3_calls(harness) -> None:
    calls_made = call_scenarios.refresh_speaker(harness)
    # Its connection record, the failed-lookup budget, the swap transaction.
    assert calls_made == {"dynamodb:GetItem": 2, "dynamodb:TransactWriteItems": 1}


def test_a_listener_refresh_without_a_token_makes_2_calls(harness) -> None:
    calls_made = call_scenarios.refresh_listener_unproven(harness)
    # Held to the cap like a join: the same two calls.
    assert calls_made == {"dynamodb:UpdateItem": 1, "dynamodb:TransactWriteItems": 1}


def test_a_speaker_refresh_without_a_token_makes_4_calls(harness) -> None:
    calls_made = call_scenarios.refresh_speaker_unproven(harness)
    # The session's GetItem says which connection it replaces (the token would have).
    assert calls_made == {"dynamodb:GetItem": 3, "dynamodb:TransactWriteItems": 1}


def test_heartbeat_makes_1_call(harness) -> None:
    assert call_scenarios.heartbeat_once(harness) == {"dynamodb:UpdateItem": 1}


def test_heartbeat_that_pushes_a_notice_adds_only_the_post(harness) -> None:
    assert call_scenarios.heartbeat_with_notice(harness) == {"dynamodb:UpdateItem": 1, POST: 1}


def test_listener_disconnect_makes_2_calls(harness) -> None:
    assert call_scenarios.listener_disconnect(harness) == {
        "dynamodb:DeleteItem": 1,
        "dynamodb:UpdateItem": 1,
    }


@pytest.mark.parametrize("listeners", [0, 10, 500])
def test_speaker_disconnect_is_3_plus_posts_plus_batched_deletes(harness, listeners) -> None:
    calls_made = call_scenarios.speaker_disconnect(listeners)(harness)
    batches = math.ceil(listeners / 25)
    reads = math.ceil(listeners / 100)
    expected = {
        "dynamodb:DeleteItem": 1,  # this connection's record (returns it)
        "dynamodb:TransactWriteItems": 1,  # end the session + release its active slot
        "dynamodb:Query": 1,  # the listeners (keys and role), one page
    }
    if listeners:
        expected[POST] = listeners
        # Their whole records, by key: the index projects only keys and role.
        expected["dynamodb:BatchGetItem"] = reads
        expected["dynamodb:BatchWriteItem"] = batches
    assert calls_made == expected
    assert sum(calls_made.values()) <= 3 + listeners + reads + batches
    assert calls.speaker_disconnect_budget(listeners) == 3 + listeners + reads + batches


def test_metrics_reporter_makes_one_query(harness) -> None:
    assert call_scenarios.report(harness) == {"dynamodb:Query": 1}


@pytest.mark.parametrize(
    ("scenario", "without_metrics"),
    [
        (call_scenarios.create, {"dynamodb:GetItem": 1, "dynamodb:TransactWriteItems": 1,
                                 "dynamodb:UpdateItem": 1}),
        (call_scenarios.join, {"dynamodb:UpdateItem": 3}),
        (call_scenarios.heartbeat_once, {"dynamodb:UpdateItem": 1}),
        (call_scenarios.listener_disconnect, {"dynamodb:DeleteItem": 1, "dynamodb:UpdateItem": 1}),
        (call_scenarios.report, {"dynamodb:Query": 1}),
    ],
)  # fmt: skip
def test_the_api_transport_adds_exactly_one_put_metric_data(
    harness, monkeypatch, scenario, without_metrics
) -> None:
    set_env(monkeypatch, METRICS_TRANSPORT="api")
    assert scenario(harness) == {**without_metrics, PUT_METRICS: 1}


def test_every_budgeted_operation_is_within_budget_in_the_bench_table(harness) -> None:
    measured = {name: scenario(harness) for name, scenario in call_scenarios.SCENARIOS.items()}
    section = calls.rows_section(measured)
    statuses = {row.status for row in section.rows if row.status}
    assert statuses == {"OK"}, [(row.measurement, row.result, row.status) for row in section.rows]
    for operation in calls.ORDER:
        assert calls.budget_for(operation) is not None, operation


def test_every_scenario_is_printed_in_the_bench_table(harness) -> None:
    rows = {"heartbeat": call_scenarios.heartbeat_once(harness)}
    table = format_table(rows)
    assert "| heartbeat | dynamodb:UpdateItem | 1 |" in table
    assert "| heartbeat | **total** | **1** |" in table
    assert set(call_scenarios.SCENARIOS) >= {
        "$connect (listener)",
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
