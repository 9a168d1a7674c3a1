"""``runtime.iam``: the evaluator, what each call needs, and a denial as AWS answers it."""

from __future__ import annotations

import dataclasses
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from runtime import aws as runtime_aws
from runtime.config import config
from runtime.handlers import connect, create_session
from runtime.iam.calls import Enforcer, Request, required, running
from runtime.iam.evaluate import is_allowed, matches
from runtime.iam.policy import StackNames, function_policy
from runtime.routes import BY_NAME
from runtime.tables import CONNECTIONS
from tests.support.iam import TestIam
from tests.support.lambda_events import (
    LambdaContext,
    connect_event,
    message_event,
    new_connection_id,
)

NAMES = StackNames(
    account="123456789012",
    region="us-east-1",
    api_id="example",
    stage="test",
    prefix="session-management-test",
    namespace="SessionManagement",
    metrics_transport="api",
)
TABLE = "arn:aws:dynamodb:us-east-1:123456789012:table/session-management-test"


# --- the evaluator -------------------------------------------------------------------------------


def test_wildcards_match_as_iam_does():
    assert matches("arn:aws:dynamodb:*:table/T/index/*", "arn:aws:dynamodb:r:1:table/T/index/I")
    assert matches("a?c", "abc") and not matches("a?c", "abbc")
    assert not matches("arn:aws:dynamodb:r:1:table/T", "arn:aws:dynamodb:r:1:table/T/index/I")
    assert matches("DynamoDB:getitem", "dynamodb:GetItem", ignore_case=True)
    assert not matches("table/t", "table/T")  # resources are case-sensitive
    assert matches("a.b+c", "a.b+c") and not matches("a.b", "axb")  # no regex leaks


def _policy(*statements: dict[str, Any]) -> dict[str, Any]:
    return {"Version": "2012-10-17", "Statement": list(statements)}


def test_allow_deny_and_the_implicit_deny():
    allow = {"Effect": "Allow", "Action": "dynamodb:*", "Resource": f"{TABLE}-*"}
    deny = {"Effect": "Deny", "Action": ["dynamodb:DeleteItem"], "Resource": "*"}
    policy = _policy(allow, deny)
    assert is_allowed(policy, "dynamodb:GetItem", f"{TABLE}-Sessions")
    assert not is_allowed(policy, "dynamodb:DeleteItem", f"{TABLE}-Sessions")  # explicit deny
    assert not is_allowed(policy, "ssm:GetParameter", f"{TABLE}-Sessions")  # nothing allows it
    not_action = {"Effect": "Allow", "NotAction": "dynamodb:*", "Resource": "*"}
    assert is_allowed(_policy(not_action), "ssm:GetParameter", "x")
    assert not is_allowed(_policy(not_action), "dynamodb:GetItem", "x")


def test_conditions_the_program_uses_and_unknown_ones_deny():
    metrics = {
        "Effect": "Allow",
        "Action": "cloudwatch:PutMetricData",
        "Resource": "*",
        "Condition": {"StringEquals": {"cloudwatch:namespace": "SessionManagement"}},
    }
    policy = _policy(metrics)
    assert is_allowed(
        policy, "cloudwatch:PutMetricData", "*", {"cloudwatch:namespace": "SessionManagement"}
    )
    assert not is_allowed(
        policy, "cloudwatch:PutMetricData", "*", {"cloudwatch:namespace": "Other"}
    )
    assert not is_allowed(policy, "cloudwatch:PutMetricData", "*", {})  # key absent
    like = dict(metrics, Condition={"StringLike": {"cloudwatch:namespace": "Session*"}})
    assert is_allowed(
        _policy(like), "cloudwatch:PutMetricData", "*", {"cloudwatch:namespace": "SessionX"}
    )
    unknown = dict(metrics, Condition={"NumericLessThan": {"cloudwatch:namespace": "1"}})
    assert not is_allowed(
        _policy(unknown), "cloudwatch:PutMetricData", "*", {"cloudwatch:namespace": "0"}
    )


# --- what each call needs ------------------------------------------------------------------------


def test_dynamodb_calls_are_authorised_per_table_index_and_item():
    assert required(
        "dynamodb", "GetItem", {"TableName": "session-management-test-Sessions"}, NAMES
    ) == [Request("dynamodb:GetItem", f"{TABLE}-Sessions")]
    query = {"TableName": "session-management-test-Connections", "IndexName": "by-session"}
    assert required("dynamodb", "Query", query, NAMES) == [
        Request("dynamodb:Query", f"{TABLE}-Connections/index/by-session")
    ]
    transaction = {
        "TransactItems": [
            {"Put": {"TableName": "session-management-test-Sessions"}},
            {"Update": {"TableName": "session-management-test-Sessions"}},
            {"Update": {"TableName": "session-management-test-Sessions"}},
            {"ConditionCheck": {"TableName": "session-management-test-Connections"}},
            {"Delete": {"TableName": "session-management-test-RateLimits"}},
        ]
    }
    assert required("dynamodb", "TransactWriteItems", transaction, NAMES) == [
        Request("dynamodb:PutItem", f"{TABLE}-Sessions"),
        Request("dynamodb:UpdateItem", f"{TABLE}-Sessions"),
        Request("dynamodb:ConditionCheckItem", f"{TABLE}-Connections"),
        Request("dynamodb:DeleteItem", f"{TABLE}-RateLimits"),
    ]
    batch = {
        "RequestItems": {
            "session-management-test-Sessions": [],
            "session-management-test-Connections": [],
        }
    }
    assert required("dynamodb", "BatchWriteItem", batch, NAMES) == [
        Request("dynamodb:BatchWriteItem", f"{TABLE}-Sessions"),
        Request("dynamodb:BatchWriteItem", f"{TABLE}-Connections"),
    ]
    assert required("dynamodb", "BatchGetItem", batch, NAMES)[1] == Request(
        "dynamodb:BatchGetItem", f"{TABLE}-Connections"
    )


def test_connections_ssm_and_metrics_calls():
    connections = "arn:aws:execute-api:us-east-1:123456789012:example/test"
    for operation, method in (("PostToConnection", "POST"), ("GetConnection", "GET"),
                              ("DeleteConnection", "DELETE")):  # fmt: skip
        assert required("apigatewaymanagementapi", operation, {"ConnectionId": "Ab="}, NAMES) == [
            Request("execute-api:ManageConnections", f"{connections}/{method}/@connections/Ab=")
        ]
    assert required(
        "ssm", "GetParameter", {"Name": "/session-management-test/ip-hash-key"}, NAMES
    ) == [
        Request(
            "ssm:GetParameter",
            "arn:aws:ssm:us-east-1:123456789012:parameter/session-management-test/ip-hash-key",
        )
    ]
    assert required("cloudwatch", "PutMetricData", {"Namespace": "N"}, NAMES) == [
        Request("cloudwatch:PutMetricData", "*", {"cloudwatch:namespace": "N"})
    ]


def test_the_policies_allow_exactly_their_grants():
    sweeper = function_policy(BY_NAME["sweeper"], NAMES)
    heartbeat = function_policy(BY_NAME["heartbeat"], NAMES)
    close = required("apigatewaymanagementapi", "DeleteConnection", {"ConnectionId": "c"}, NAMES)[0]
    assert is_allowed(sweeper, close.action, close.resource)
    assert not is_allowed(heartbeat, close.action, close.resource)  # posts, never closes
    listeners = f"{TABLE}-Connections/index/sessionId-targetLanguage-index"
    assert is_allowed(sweeper, "dynamodb:Query", listeners)
    assert not is_allowed(sweeper, "dynamodb:Query", f"{TABLE}-Connections")  # index only
    assert not is_allowed(sweeper, "dynamodb:Scan", listeners)  # table only
    reporter = function_policy(BY_NAME["metrics-reporter"], NAMES)
    key = "arn:aws:ssm:us-east-1:123456789012:parameter/session-management-test/ip-hash-key"
    assert not is_allowed(reporter, "ssm:GetParameter", key)
    assert is_allowed(heartbeat, "ssm:GetParameter", key)
    emf = function_policy(BY_NAME["heartbeat"], dataclasses.replace(NAMES, metrics_transport="emf"))
    context = {"cloudwatch:namespace": "SessionManagement"}
    assert is_allowed(heartbeat, "cloudwatch:PutMetricData", "*", context)
    assert not is_allowed(emf, "cloudwatch:PutMetricData", "*", context)


# --- a denial, as AWS answers it -----------------------------------------------------------------


def test_a_denied_call_fails_through_botocore_as_on_aws_and_is_never_sent(aws: None):
    sent: list[str] = []
    denied = []
    enforcer = Enforcer(lambda: NAMES, on_denied=denied.append)
    client = enforcer.attach(boto3.client("dynamodb"))
    client.meta.events.register("before-send", lambda request, **_: sent.append(request.url))
    table = config().rate_limits_table
    with running(BY_NAME["heartbeat"]), pytest.raises(ClientError) as raised:
        client.get_item(TableName=table, Key={"identifier": {"S": "x"}})
    error = raised.value.response
    assert error["Error"]["Code"] == "AccessDeniedException"
    assert error["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert error["ResponseMetadata"]["RetryAttempts"] == 0  # never retried
    assert error["Error"]["Message"] == (
        "User: arn:aws:sts::123456789012:assumed-role/session-management-test-heartbeat-role/"
        "session-management-test-heartbeat is not authorized to perform: dynamodb:GetItem on "
        f"resource: {TABLE}-RateLimits because no identity-based policy allows the "
        "dynamodb:GetItem action"
    )
    assert sent == []  # refused before anything is sent
    assert [(d.function, d.action) for d in denied] == [("heartbeat", "dynamodb:GetItem")]
    # Outside a function nothing is checked (a test seeding a table).
    client.get_item(TableName=table, Key={"identifier": {"S": "x"}})
    assert len(sent) == 1


def test_metrics_and_connections_are_denied_with_their_services_codes(aws: None):
    enforcer = Enforcer(lambda: dataclasses.replace(NAMES, metrics_transport="emf"))
    cloudwatch = enforcer.attach(boto3.client("cloudwatch"))
    with running(BY_NAME["heartbeat"]), pytest.raises(ClientError) as raised:
        cloudwatch.put_metric_data(
            Namespace="SessionManagement", MetricData=[{"MetricName": "M", "Value": 1}]
        )
    assert (raised.value.response["Error"]["Code"], runtime_aws.http_status(raised.value)) == (
        "AccessDenied",
        403,
    )
    assert raised.value.response["Error"]["Message"].endswith(
        "is not authorized to perform: cloudwatch:PutMetricData because no identity-based "
        "policy allows the cloudwatch:PutMetricData action"
    )
    posts = enforcer.attach(
        boto3.client(
            "apigatewaymanagementapi",
            endpoint_url="https://example.execute-api.us-east-1.amazonaws.com/test",
        )
    )
    with running(BY_NAME["join-session"]), pytest.raises(ClientError) as raised:
        posts.post_to_connection(ConnectionId="Ab=", Data=b"{}")
    assert (raised.value.response["Error"]["Code"], runtime_aws.http_status(raised.value)) == (
        "AccessDeniedException",
        403,
    )
    assert (
        "execute-api:ManageConnections on resource: "
        "arn:aws:execute-api:us-east-1:123456789012:example/test/POST/@connections/Ab="
    ) in raised.value.response["Error"]["Message"]


def test_a_denial_inside_a_handler_takes_the_handlers_own_error_path(aws: None, iam: TestIam):
    """$connect without PutItem on Connections: AWS would deny the write, and the handshake
    fails with the handler's INTERNAL_ERROR (500) — the client is refused, nothing retried."""
    function = BY_NAME["connect"]
    iam.expect_denials()
    tables = {**function.tables, CONNECTIONS.logical_name: ()}
    iam.enforcer.overrides[function.name] = dataclasses.replace(function, tables=tables)
    response = connect.handler(connect_event(new_connection_id()), LambdaContext())
    assert response["statusCode"] == 500
    assert [(d.action, d.operation) for d in iam.denials] == [("dynamodb:PutItem", "PutItem")]


def test_runtime_tests_check_every_function_call(aws: None, iam: TestIam):
    """The enforcement is on: a function's calls are checked under its own name."""
    cid = new_connection_id()
    connect.handler(connect_event(cid), LambdaContext())
    body = '{"action": "createSession", "sourceLanguage": "en"}'
    create_session.handler(message_event(cid, body), LambdaContext())
    functions = {seen.function for seen in iam.requests}
    assert functions == {"connect", "create-session"}
    assert all(seen.allowed for seen in iam.requests)
