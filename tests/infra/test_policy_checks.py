"""The least-privilege check itself: a deliberately broken policy must be reported."""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable
from typing import Any

import pytest

from runtime.iam.policy import StackNames, function_policy
from runtime.routes import BY_NAME
from tests.infra.policy_checks import least_privilege_violations

NAMES = StackNames(
    account="123456789012",
    region="eu-west-1",
    api_id="a1b2c3d4e5",
    stage="dev",
    prefix="session-management-dev",
    namespace="SessionManagement",
    metrics_transport="api",
)
REGION_ACCOUNT = "eu-west-1:123456789012"
TABLE_ARNS = {
    name: f"arn:aws:dynamodb:{REGION_ACCOUNT}:table/session-management-dev-{name}"
    for name in ("Sessions", "Connections", "RateLimits")
}
LOG_GROUP = f"arn:aws:logs:{REGION_ACCOUNT}:log-group:/aws/lambda/session-management-dev-sweeper"
CONNECTIONS = f"arn:aws:execute-api:{REGION_ACCOUNT}:a1b2c3d4e5/dev"
HASH_KEY = f"arn:aws:ssm:{REGION_ACCOUNT}:parameter/session-management-dev/ip-hash-key"
SWEEPER = BY_NAME["sweeper"]


def good_policy(function: Any = SWEEPER, **names: Any) -> dict[str, Any]:
    return function_policy(function, dataclasses.replace(NAMES, **names))


def check(
    policy: dict[str, Any],
    function: Any = SWEEPER,
    tracing: bool = True,
    metrics_transport: str = "api",
) -> list[str]:
    return least_privilege_violations(
        policy,
        function,
        table_arns=TABLE_ARNS,
        log_group_arn=LOG_GROUP.replace("sweeper", function.name),
        connections_arn=CONNECTIONS,
        hash_key_parameter_arn=HASH_KEY,
        namespace="SessionManagement",
        tracing=tracing,
        metrics_transport=metrics_transport,
    )


def statement(policy: dict[str, Any], sid: str) -> dict[str, Any]:
    return next(s for s in policy["Statement"] if s["Sid"] == sid)


def wildcard_action(p: dict[str, Any]) -> None:
    statement(p, "SessionsTable")["Action"] = ["dynamodb:*"]


def any_table(p: dict[str, Any]) -> None:
    statement(p, "SessionsTable")["Resource"] = ["*"]


def other_table(p: dict[str, Any]) -> None:
    statement(p, "SessionsTable")["Resource"].append(TABLE_ARNS["RateLimits"])


def unused_action(p: dict[str, Any]) -> None:
    statement(p, "SessionsTable")["Action"].append("dynamodb:DeleteItem")


def metrics_without_condition(p: dict[str, Any]) -> None:
    del statement(p, "PutMetricsInOwnNamespace")["Condition"]


def metrics_in_another_namespace(p: dict[str, Any]) -> None:
    condition = statement(p, "PutMetricsInOwnNamespace")["Condition"]["StringEquals"]
    condition["cloudwatch:namespace"] = "Other"


def all_connections(p: dict[str, Any]) -> None:
    statement(p, "ManageOwnConnections")["Resource"] = [
        f"arn:aws:execute-api:{REGION_ACCOUNT}:*/*/POST/@connections/*"
    ]


def other_log_group(p: dict[str, Any]) -> None:
    statement(p, "WriteOwnLogs")["Resource"].append(
        f"arn:aws:logs:{REGION_ACCOUNT}:log-group:/aws/lambda/other:*"
    )


def write_on_index(p: dict[str, Any]) -> None:
    statement(p, "ConnectionsIndexes")["Action"].append("dynamodb:DeleteItem")


def scan_on_index(p: dict[str, Any]) -> None:
    statement(p, "ConnectionsIndexes")["Action"].append("dynamodb:Scan")


def query_on_table(p: dict[str, Any]) -> None:
    statement(p, "ConnectionsTable")["Action"].append("dynamodb:Query")


def one_index_only(p: dict[str, Any]) -> None:
    index = statement(p, "ConnectionsIndexes")
    index["Resource"] = [r.replace("/index/*", "/index/other") for r in index["Resource"]]


def get_connections(p: dict[str, Any]) -> None:
    statement(p, "ManageOwnConnections")["Resource"].append(f"{CONNECTIONS}/GET/@connections/*")


def extra_service(p: dict[str, Any]) -> None:
    p["Statement"].append({"Sid": "S3", "Effect": "Allow", "Action": ["s3:GetObject"],
                           "Resource": ["arn:aws:s3:::bucket/*"]})  # fmt: skip


def missing_grant(p: dict[str, Any]) -> None:
    p["Statement"] = [s for s in p["Statement"] if s["Sid"] != "SessionsTable"]


def every_parameter(p: dict[str, Any]) -> None:
    statement(p, "ReadHashKey")["Resource"] = [HASH_KEY.rsplit("/", 2)[0] + "/*"]


def parameters_by_path(p: dict[str, Any]) -> None:
    statement(p, "ReadHashKey")["Action"] = ["ssm:GetParameter", "ssm:GetParametersByPath"]


def no_hash_key(p: dict[str, Any]) -> None:
    p["Statement"] = [s for s in p["Statement"] if s["Sid"] != "ReadHashKey"]


BREAKAGES: list[Callable[[dict[str, Any]], None]] = [
    every_parameter,
    parameters_by_path,
    no_hash_key,
    wildcard_action,
    any_table,
    other_table,
    unused_action,
    metrics_without_condition,
    metrics_in_another_namespace,
    all_connections,
    other_log_group,
    write_on_index,
    scan_on_index,
    query_on_table,
    one_index_only,
    get_connections,
    extra_service,
    missing_grant,
]


def test_the_generated_policy_passes():
    assert check(good_policy()) == []


@pytest.mark.parametrize("breakage", BREAKAGES, ids=lambda b: b.__name__)
def test_a_broken_policy_is_reported(breakage: Callable[[dict[str, Any]], None]):
    policy = copy.deepcopy(good_policy())
    breakage(policy)
    assert check(policy) != []


def test_xray_without_tracing_and_connections_without_need_are_reported():
    assert check(good_policy(), tracing=False) != []
    default = BY_NAME["default"]  # posts nothing, touches no table
    assert check(good_policy(), function=default) != []


@pytest.mark.parametrize("function", list(BY_NAME.values()), ids=lambda f: f.name)
@pytest.mark.parametrize("transport", ["emf", "api"])
def test_every_function_policy_passes_in_either_transport(function: Any, transport: str):
    policy = good_policy(function, metrics_transport=transport)
    assert check(policy, function=function, metrics_transport=transport) == []


def test_put_metric_data_only_with_the_api_transport():
    emf = good_policy(metrics_transport="emf")
    assert "cloudwatch:PutMetricData" not in str(emf)
    # The api transport's grant is an over-grant under emf.
    assert check(good_policy(), metrics_transport="emf") != []


def test_delete_on_connections_only_for_a_function_that_closes_them():
    heartbeat = BY_NAME["heartbeat"]  # posts (refresh pushes), never closes
    assert check(good_policy(), function=heartbeat) != []  # the sweeper's DELETE is too much
    resources = statement(good_policy(heartbeat), "ManageOwnConnections")["Resource"]
    assert resources == [f"{CONNECTIONS}/POST/@connections/*"]
    sweeper = statement(good_policy(), "ManageOwnConnections")["Resource"]
    assert sweeper == [f"{CONNECTIONS}/POST/@connections/*", f"{CONNECTIONS}/DELETE/@connections/*"]


def test_the_metrics_reporter_may_not_read_the_hash_key():
    reporter = BY_NAME["metrics-reporter"]
    assert "ssm:" not in str(good_policy(reporter))
    assert check(good_policy(), function=reporter) != []
