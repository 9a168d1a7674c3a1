"""Each function's IAM policy, a pure function of its route-table entry and the stack's names.

``components.function`` renders this document into the function's role; the local stack and
the runtime tests evaluate the same document against every AWS call the function makes
(``runtime.iam.calls``). Nothing here imports Pulumi: the names are plain strings, resolved
by the caller (from Pulumi outputs, the local stack's config or a test's environment).

Least privilege, statement by statement:

* logs: its own log group only (written by the Lambda runtime, not by the handler's boto3);
* DynamoDB: the actions of ``Function.tables`` on each table's ARN, and those of
  ``Function.indexes`` on ``<table arn>/index/*`` only;
* execute-api: ``ManageConnections`` on the stage's ``POST`` @connections for a function that
  ``manages_connections``, ``DELETE`` too only when it ``closes_connections`` (GET: none calls it);
* SSM: ``GetParameter`` on the stack's HMAC key parameter, for functions that ``reads_hash_key``;
* CloudWatch: ``PutMetricData`` (no resource-level permissions: ``Resource: "*"``, narrowed by
  the ``cloudwatch:namespace`` condition) only with ``metricsTransport: api``;
* X-Ray put actions (``Resource: "*"``, no resource-level permissions) only with tracing on.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from runtime import hash_key
from runtime.routes import Function

LOG_ACTIONS = ("logs:CreateLogStream", "logs:PutLogEvents")
MANAGE_CONNECTIONS = "execute-api:ManageConnections"
PUT_METRIC_DATA = "cloudwatch:PutMetricData"
NAMESPACE_CONDITION = "cloudwatch:namespace"
XRAY_ACTIONS = ("xray:PutTraceSegments", "xray:PutTelemetryRecords")
API_TRANSPORT = "api"
VERSION = "2012-10-17"


@dataclass(frozen=True)
class StackNames:
    """The names a stack's policies refer to.

    ``prefix`` is what every physical name starts with (``session-management-<stack>``):
    tables are ``<prefix>-<logical name>``, functions ``<prefix>-<function name>`` and the
    HMAC key parameter ``/<prefix>/ip-hash-key``, as ``components.naming`` builds them.
    """

    account: str
    region: str
    api_id: str
    stage: str
    prefix: str
    namespace: str
    metrics_transport: str
    tracing: bool = True
    partition: str = "aws"

    def _arn(self, service: str, rest: str) -> str:
        return f"arn:{self.partition}:{service}:{self.region}:{self.account}:{rest}"

    def table_name(self, logical_name: str) -> str:
        return f"{self.prefix}-{logical_name}"

    def table_arn(self, logical_name: str) -> str:
        return self._arn("dynamodb", f"table/{self.table_name(logical_name)}")

    def function_name(self, function: Function) -> str:
        return f"{self.prefix}-{function.name}"

    def role_name(self, function: Function) -> str:
        """The execution role's name as the local stack and the tests call it (Pulumi adds a
        random suffix on AWS; only error messages show it)."""
        return f"{self.function_name(function)}-role"

    def log_group_arn(self, function: Function) -> str:
        return self._arn("logs", f"log-group:/aws/lambda/{self.function_name(function)}")

    @property
    def hash_key_parameter(self) -> str:
        return hash_key.parameter_name_for(self.prefix)

    @property
    def hash_key_parameter_arn(self) -> str:
        # A parameter's ARN drops its name's leading slash: …:parameter/a/b for "/a/b".
        return self._arn("ssm", "parameter/" + self.hash_key_parameter.lstrip("/"))

    @property
    def connections_arn(self) -> str:
        """The stage's execute-api ARN (``…:{api_id}/{stage}``)."""
        return self._arn("execute-api", f"{self.api_id}/{self.stage}")

    def connection_arn(self, method: str, connection_id: str) -> str:
        """What ``ManageConnections`` is checked on for one @connections request."""
        return f"{self.connections_arn}/{method}/@connections/{connection_id}"

    def assumed_role_arn(self, function: Function) -> str:
        """The principal a function's calls are made as (in AWS's error messages)."""
        return (
            f"arn:{self.partition}:sts::{self.account}:assumed-role/"
            f"{self.role_name(function)}/{self.function_name(function)}"
        )


def connection_methods(function: Function) -> tuple[str, ...]:
    """The @connections methods a function may call: POST to push, DELETE to close."""
    if not function.manages_connections:
        return ()
    return ("POST", "DELETE") if function.closes_connections else ("POST",)


def function_policy(function: Function, names: StackNames) -> dict[str, Any]:
    """The least-privilege identity policy of ``function`` in the stack ``names`` describes."""
    log_group = names.log_group_arn(function)
    statements: list[dict[str, Any]] = [
        {
            "Sid": "WriteOwnLogs",
            "Effect": "Allow",
            "Action": list(LOG_ACTIONS),
            "Resource": [log_group, f"{log_group}:*"],
        }
    ]
    for table in sorted(set(function.tables) | set(function.indexes)):
        arn = names.table_arn(table)
        if function.tables.get(table):
            statements.append(
                {
                    "Sid": f"{table}Table",
                    "Effect": "Allow",
                    "Action": sorted(set(function.tables[table])),
                    "Resource": [arn],
                }
            )
        if function.indexes.get(table):
            statements.append(
                {
                    "Sid": f"{table}Indexes",
                    "Effect": "Allow",
                    "Action": sorted(set(function.indexes[table])),
                    "Resource": [f"{arn}/index/*"],
                }
            )
    methods = connection_methods(function)
    if methods:
        statements.append(
            {
                "Sid": "ManageOwnConnections",
                "Effect": "Allow",
                "Action": [MANAGE_CONNECTIONS],
                "Resource": [
                    f"{names.connections_arn}/{method}/@connections/*" for method in methods
                ],
            }
        )
    if function.reads_hash_key:
        # This one parameter. It is encrypted with the AWS-managed aws/ssm key, whose key
        # policy already lets the account's principals decrypt through SSM: no kms:Decrypt.
        statements.append(
            {
                "Sid": "ReadHashKey",
                "Effect": "Allow",
                "Action": ["ssm:GetParameter"],
                "Resource": [names.hash_key_parameter_arn],
            }
        )
    if names.metrics_transport == API_TRANSPORT:
        statements.append(
            {
                "Sid": "PutMetricsInOwnNamespace",
                "Effect": "Allow",
                "Action": [PUT_METRIC_DATA],
                "Resource": "*",
                "Condition": {"StringEquals": {NAMESPACE_CONDITION: names.namespace}},
            }
        )
    if names.tracing:
        statements.append(
            {"Sid": "XRay", "Effect": "Allow", "Action": list(XRAY_ACTIONS), "Resource": "*"}
        )
    return {"Version": VERSION, "Statement": statements}
