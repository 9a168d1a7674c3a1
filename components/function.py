"""MonitoredFunction: one Lambda function of the route table with everything it needs.

Each function gets its own IAM role whose inline policy is ``runtime.iam.policy``'s document
for its route-table entry (the same document the local stack and the runtime tests enforce),
its own log group (created before the function, with the stack's
retention), the function itself and an alarm on its Errors metric.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field

import pulumi
import pulumi_aws as aws

from runtime.alarms import function_errors_alarm
from runtime.iam.policy import StackNames, function_policy
from runtime.routes import Function

COMPONENT_TYPE = "session-management:components:MonitoredFunction"

LAMBDA_RUNTIME = "python3.12"
ARCHITECTURE = "arm64"
# A scheduled job runs at most once at a time, never retried: the next run does its work.
SCHEDULED_CONCURRENCY = 1
SCHEDULED_RETRIES = 0
# Lambda's bounds for an async event's age; 60 s is also EventBridge's shortest schedule.
MIN_EVENT_AGE_S, MAX_EVENT_AGE_S = 60, 21_600

_ASSUME_ROLE_POLICY = json.dumps(
    {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Service": "lambda.amazonaws.com"},
                "Action": "sts:AssumeRole",
            }
        ],
    }
)


@dataclass
class MonitoredFunctionArgs:
    """Inputs of a MonitoredFunction."""

    # The route-table entry: handler, memory, timeout, tables and actions, connections.
    function: Function
    # Physical function name; the log group is ``/aws/lambda/<function_name>``.
    function_name: str
    code: pulumi.Archive
    # base64(sha256) of the archive, so an unchanged archive never shows a diff.
    source_code_hash: str
    environment: Mapping[str, pulumi.Input[str]]
    # The stack's names (account, region, API ID, stage, prefix, namespace, transport,
    # tracing): the policy is ``runtime.iam.policy.function_policy(function, names)``.
    names: pulumi.Output[StackNames]
    log_retention_days: int
    tracing: bool
    alarm_topic_arn: pulumi.Input[str]
    errors_threshold: int
    # Where docs/runbooks.md is (the stack's runbookBaseUrl): the Errors alarm links its section.
    runbook_base_url: str
    tags: Mapping[str, str] = field(default_factory=dict)


class MonitoredFunction(pulumi.ComponentResource):
    """A Lambda function with its role, least-privilege policy, log group and error alarm.

    A scheduled job also gets a reserved concurrency of one and an asynchronous-invocation
    config without retries and with events older than its schedule dropped, so runs never
    overlap (overlapping sweeps would send duplicate ``sessionEnded`` pushes).
    """

    role: aws.iam.Role
    log_group: aws.cloudwatch.LogGroup
    policy: aws.iam.RolePolicy
    function: aws.lambda_.Function
    invoke_config: aws.lambda_.FunctionEventInvokeConfig | None
    errors_alarm: aws.cloudwatch.MetricAlarm

    def __init__(
        self,
        name: str,
        args: MonitoredFunctionArgs,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__(COMPONENT_TYPE, name, None, opts)
        self._name = name
        self._args = args
        child = pulumi.ResourceOptions(parent=self)

        self.role, self.log_group, self.policy = self._identity(child)
        self.function = self._function()
        self.invoke_config = self._invoke_config(child)
        self.errors_alarm = self._errors_alarm(child)

        self.function_name = self.function.name
        self.arn = self.function.arn
        self.invoke_arn = self.function.invoke_arn
        self.register_outputs(
            {
                "functionName": self.function.name,
                "arn": self.function.arn,
                "roleArn": self.role.arn,
                "logGroupName": self.log_group.name,
                "errorsAlarmArn": self.errors_alarm.arn,
            }
        )

    def _identity(
        self, child: pulumi.ResourceOptions
    ) -> tuple[aws.iam.Role, aws.cloudwatch.LogGroup, aws.iam.RolePolicy]:
        """The role, the log group and the inline policy that ties the two together."""
        args = self._args
        role = aws.iam.Role(
            f"{self._name}-role",
            assume_role_policy=_ASSUME_ROLE_POLICY,
            description=f"Execution role of {args.function_name}",
            tags=dict(args.tags),
            opts=child,
        )
        log_group = aws.cloudwatch.LogGroup(
            f"{self._name}-logs",
            name=f"/aws/lambda/{args.function_name}",
            retention_in_days=args.log_retention_days,
            tags=dict(args.tags),
            opts=child,
        )
        function = args.function
        document = args.names.apply(
            lambda names: json.dumps(function_policy(function, names), sort_keys=True)
        )
        policy = aws.iam.RolePolicy(
            f"{self._name}-policy",
            role=role.id,
            policy=document,
            opts=child,
        )
        return role, log_group, policy

    def _function(self) -> aws.lambda_.Function:
        args = self._args
        return aws.lambda_.Function(
            self._name,
            name=args.function_name,
            role=self.role.arn,
            runtime=LAMBDA_RUNTIME,
            architectures=[ARCHITECTURE],
            handler=args.function.handler,
            code=args.code,
            source_code_hash=args.source_code_hash,
            memory_size=args.function.memory_mb,
            timeout=args.function.timeout_s,
            reserved_concurrent_executions=(
                SCHEDULED_CONCURRENCY if args.function.schedule else None
            ),
            environment=aws.lambda_.FunctionEnvironmentArgs(variables=dict(args.environment)),
            tracing_config=aws.lambda_.FunctionTracingConfigArgs(
                mode="Active" if args.tracing else "PassThrough"
            ),
            logging_config=aws.lambda_.FunctionLoggingConfigArgs(
                log_format="Text", log_group=self.log_group.name
            ),
            tags=dict(args.tags),
            # The log group must exist first (else Lambda creates one without retention), and
            # the policy too, so the first invocation already has its permissions.
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.log_group, self.policy]),
        )

    def _invoke_config(
        self, child: pulumi.ResourceOptions
    ) -> aws.lambda_.FunctionEventInvokeConfig | None:
        """Scheduled jobs: no retries, and an event is dropped once the next one is due."""
        function = self._args.function
        period = function.schedule_seconds
        if period is None:
            return None
        if function.timeout_s >= period:
            raise ValueError(
                f"{function.name}: timeout {function.timeout_s}s must be shorter than its "
                f"schedule ({period}s), or runs could overlap"
            )
        return aws.lambda_.FunctionEventInvokeConfig(
            f"{self._name}-invoke-config",
            function_name=self.function.name,
            maximum_retry_attempts=SCHEDULED_RETRIES,
            maximum_event_age_in_seconds=min(MAX_EVENT_AGE_S, max(MIN_EVENT_AGE_S, period)),
            opts=child,
        )

    def _errors_alarm(self, child: pulumi.ResourceOptions) -> aws.cloudwatch.MetricAlarm:
        args = self._args
        alarm = function_errors_alarm(
            args.function_name, args.errors_threshold, args.function.name, args.runbook_base_url
        )
        return aws.cloudwatch.MetricAlarm(
            f"{self._name}-errors",
            name=alarm.name,
            alarm_description=alarm.description,
            namespace=alarm.namespace,
            metric_name=alarm.metric_name,
            dimensions=alarm.dimension_map,
            statistic=alarm.statistic,
            period=alarm.period,
            evaluation_periods=alarm.evaluation_periods,
            threshold=alarm.threshold,
            comparison_operator=alarm.comparison,
            treat_missing_data=alarm.treat_missing_data,
            alarm_actions=[args.alarm_topic_arn],
            ok_actions=[args.alarm_topic_arn],
            tags=dict(args.tags),
            opts=child,
        )
