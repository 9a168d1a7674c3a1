"""The least-privilege check itself: a deliberately broken policy must be reported."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest

from components.function import function_policy
from runtime.routes import BY_NAME
from tests.infra.policy_checks import least_privilege_violations

REGION_ACCOUNT = "eu-west-1:123456789012"
TABLE_ARNS = {
    name: f"arn:aws:dynamodb:{REGION_ACCOUNT}:table/{name}-dev"
    for name in ("Sessions", "Connections", "RateLimits")
}
LOG_GROUP = f"arn:aws:logs:{REGION_ACCOUNT}:log-group:/aws/lambda/session-management-dev-sweeper"
CONNECTIONS = f"arn:aws:execute-api:{REGION_ACCOUNT}:a1b2c3d4e5/dev"
HASH_KEY = f"arn:aws:ssm:{REGION_ACCOUNT}:parameter/session-management-dev/ip-hash-key"
SWEEPER = BY_NAME["sweeper"]


def good_policy() -> dict[str, Any]:
    return function_policy(
        SWEEPER,
        log_group_arn=LOG_GROUP,
        table_arns=TABLE_ARNS,
        connections_arn=CONNECTIONS,
        hash_key_parameter_arn=HASH_KEY,
        metrics_namespace="SessionManagement",
        tracing=True,
    )


def check(policy: dict[str, Any], function: Any = SWEEPER, tracing: bool = True) -> list[str]:
    return least_privilege_violations(
        policy,
        function,
        table_arns=TABLE_ARNS,
        log_group_arn=LOG_GROUP,
        connections_arn=CONNECTIONS,
        hash_key_parameter_arn=HASH_KEY,
        namespace="SessionManagement",
        tracing=tracing,
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
