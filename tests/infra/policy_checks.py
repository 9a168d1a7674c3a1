"""What a function's IAM policy may grant, checked statement by statement.

Independent of ``runtime.iam.policy.function_policy`` (which builds the policies): this
derives what is allowed from the route table and the stack's resources, and lists every
statement that grants more (and every grant the route table asks for that is missing).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from runtime.routes import Function

XRAY_PUT_ACTIONS = {"xray:PutTraceSegments", "xray:PutTelemetryRecords"}
LOG_ACTIONS = {"logs:CreateLogStream", "logs:PutLogEvents"}


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def least_privilege_violations(
    policy: Mapping[str, Any],
    function: Function,
    *,
    table_arns: Mapping[str, str],
    log_group_arn: str,
    connections_arn: str,
    hash_key_parameter_arn: str,
    namespace: str,
    tracing: bool,
    metrics_transport: str,
) -> list[str]:
    """Every way ``policy`` grants more than ``function`` needs (empty when least-privilege)."""
    problems: list[str] = []
    granted_dynamodb: dict[tuple[str, bool], set[str]] = {}
    granted_hash_key = False
    methods = ({"POST"} if function.manages_connections else set()) | (
        {"DELETE"} if function.manages_connections and function.closes_connections else set()
    )
    connection_resource = re.compile(
        re.escape(connections_arn) + r"/(POST|DELETE|GET)/@connections/\*"
    )
    granted_methods: set[str] = set()
    arn_to_table = {arn: name for name, arn in table_arns.items()}

    for statement in policy["Statement"]:
        sid = statement.get("Sid", "?")
        if statement.get("Effect") != "Allow":
            continue
        if "NotAction" in statement or "NotResource" in statement:
            problems.append(f"{sid}: NotAction/NotResource grant everything else")
            continue
        actions = set(_as_list(statement["Action"]))
        resources = _as_list(statement["Resource"])
        for action in actions:
            if "*" in action:
                problems.append(f"{sid}: wildcard action {action}")
        services = {a.split(":", 1)[0] for a in actions}
        if len(services) != 1:
            problems.append(f"{sid}: mixes services {sorted(services)}")
            continue
        service = services.pop()

        if "*" in resources:
            if actions <= XRAY_PUT_ACTIONS:
                if not tracing:
                    problems.append(f"{sid}: X-Ray granted without tracing")
            elif actions == {"cloudwatch:PutMetricData"}:
                if metrics_transport != "api":
                    problems.append(f"{sid}: PutMetricData without metricsTransport api")
                condition = statement.get("Condition", {}).get("StringEquals", {})
                if condition.get("cloudwatch:namespace") != namespace:
                    problems.append(f"{sid}: PutMetricData without the namespace condition")
            else:
                problems.append(f"{sid}: Resource '*' for {sorted(actions)}")
            continue

        if service == "dynamodb":
            for resource in resources:
                table_arn, _, index = resource.partition("/index/")
                table = arn_to_table.get(table_arn)
                if table is None:
                    problems.append(f"{sid}: DynamoDB on {resource}, not a named table ARN")
                    continue
                if index and index != "*":
                    problems.append(f"{sid}: {sorted(actions)} on one index {resource}")
                declared = function.indexes if index else function.tables
                allowed = set(declared.get(table, ()))
                where = f"{table} indexes" if index else table
                if not actions <= allowed:
                    problems.append(
                        f"{sid}: {sorted(actions - allowed)} on {where}, which "
                        f"{function.name} does not call"
                    )
                granted_dynamodb.setdefault((table, bool(index)), set()).update(actions)
        elif service == "logs":
            if not actions <= LOG_ACTIONS:
                problems.append(f"{sid}: log actions {sorted(actions - LOG_ACTIONS)}")
            for resource in resources:
                if resource not in (log_group_arn, f"{log_group_arn}:*"):
                    problems.append(f"{sid}: logs on {resource}, not its own log group")
        elif service == "ssm":
            if actions != {"ssm:GetParameter"}:
                problems.append(f"{sid}: SSM actions {sorted(actions)}")
            if resources != [hash_key_parameter_arn]:
                problems.append(f"{sid}: SSM on {resources}, not the stack's HMAC key parameter")
            if not function.reads_hash_key:
                problems.append(f"{sid}: {function.name} never reads the HMAC key")
            granted_hash_key = True
        elif service == "execute-api":
            if not function.manages_connections:
                problems.append(f"{sid}: execute-api for a function that posts nothing")
            if actions != {"execute-api:ManageConnections"}:
                problems.append(f"{sid}: execute-api actions {sorted(actions)}")
            for resource in resources:
                match = connection_resource.fullmatch(resource)
                if not match:
                    problems.append(f"{sid}: ManageConnections on {resource}")
                elif match.group(1) not in methods:
                    problems.append(f"{sid}: {match.group(1)} @connections, never called")
                else:
                    granted_methods.add(match.group(1))
        else:
            problems.append(f"{sid}: unexpected service {service}")

    if function.reads_hash_key and not granted_hash_key:
        problems.append(f"{function.name} cannot read the HMAC key parameter")
    if methods - granted_methods:
        problems.append(f"{function.name} lacks {sorted(methods - granted_methods)} @connections")
    for on_index, declared in ((False, function.tables), (True, function.indexes)):
        for table, actions in declared.items():
            missing = set(actions) - granted_dynamodb.get((table, on_index), set())
            if missing:
                where = f"{table} indexes" if on_index else table
                problems.append(f"{function.name} lacks {sorted(missing)} on {where}")
    return problems
