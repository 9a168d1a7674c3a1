"""What the Pulumi program creates in CloudWatch, created in the embedded one too.

So ``aws cloudwatch describe-alarms``, ``get-dashboard`` and ``aws logs …`` against the
embedded endpoint answer as they would against the deployed stack:

* every alarm of the stack (``runtime.alarms.stack_alarms``: the same names, metrics,
  dimensions, statistics, thresholds, and the alarm topic as alarm and OK action), with its
  state and reason kept in step with the local evaluator (``mirror``, one ``SetAlarmState``
  per transition, on the alarm runner's publishing thread);
* the dashboard, its body rendered by ``runtime.dashboard.dashboard_body``, the function the
  program deploys it with;
* a log group ``/aws/lambda/<function>`` per function with the stack's ``logRetentionDays``
  (the lines are shipped by ``local.functions.log_shipper``);
* the saved Logs Insights queries (``runtime.dashboard.QUERIES``), when the embedded AWS
  implements ``PutQueryDefinition`` (moto 5.2 does not: ``queries_saved`` says so).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

from botocore.exceptions import ClientError

from local.common import console
from local.functions.events import log_group_name
from local.monitoring.alarm_evaluator import Transition
from runtime.alarms import StackAlarm
from runtime.dashboard import QUERIES, dashboard_body_json
from runtime.settings import PROJECT, StackSettings

MAX_REASON = 1023  # CloudWatch's limit on StateReason
UNSUPPORTED = ("UnknownOperationException", "InvalidAction", "NotImplemented")


def alarm_request(alarm: StackAlarm, topic_arn: str) -> dict[str, Any]:
    """``PutMetricAlarm``'s arguments for ``alarm``, as ``components.monitoring`` renders it."""
    request: dict[str, Any] = {
        "AlarmName": alarm.name,
        "AlarmDescription": alarm.description,
        "Namespace": alarm.namespace,
        "MetricName": alarm.metric_name,
        "Dimensions": [{"Name": k, "Value": v} for k, v in alarm.dimensions],
        "Period": alarm.period,
        "EvaluationPeriods": alarm.evaluation_periods,
        "DatapointsToAlarm": alarm.datapoints_to_alarm,
        "Threshold": float(alarm.threshold),
        "ComparisonOperator": alarm.comparison,
        "TreatMissingData": alarm.treat_missing_data,
        "AlarmActions": [topic_arn],
        "OKActions": [topic_arn],
    }
    if alarm.is_percentile:
        request["ExtendedStatistic"] = alarm.statistic
        request["EvaluateLowSampleCountPercentile"] = "evaluate"
    else:
        request["Statistic"] = alarm.statistic
    if alarm.unit:
        request["Unit"] = alarm.unit
    return request


def reason_data(transition: Transition) -> str:
    """``StateReasonData``: the JSON CloudWatch attaches to a threshold evaluation."""
    alarm = transition.alarm
    return json.dumps(
        {
            "version": "1.0",
            "statistic": alarm.statistic,
            "period": alarm.period,
            "threshold": float(alarm.threshold),
            "recentDatapoints": [p.value for p in transition.datapoints if p.value is not None],
        }
    )


class CloudWatchResources:
    """Registers the stack's alarms, dashboard, log groups and queries in the embedded AWS."""

    def __init__(
        self,
        settings: StackSettings,
        region: str,
        alarms: Sequence[StackAlarm],
        function_names: Sequence[str],
        client: Callable[[str], Any],
    ) -> None:
        self.settings = settings
        self.region = region
        self.alarms = list(alarms)
        self.function_names = list(function_names)
        self._make_client = client  # service name -> boto3 client bound to the embedded AWS
        self._clients: dict[str, Any] = {}
        self.dashboard_name = f"{PROJECT}-{settings.stack}"
        self.queries_saved = False

    def register(self, topic_arn: str, api_id: str, states: Sequence[dict[str, Any]] = ()) -> None:
        """Create everything (again, after the embedded AWS restarted: ``states`` are the
        evaluator's current states, put back on the alarms)."""
        cloudwatch = self.client("cloudwatch")
        for alarm in self.alarms:
            cloudwatch.put_metric_alarm(**alarm_request(alarm, topic_arn))
        for state in states:
            if state["state"] != "INSUFFICIENT_DATA":
                cloudwatch.set_alarm_state(
                    AlarmName=state["name"],
                    StateValue=state["state"],
                    StateReason=str(state["reason"])[:MAX_REASON],
                )
        arns = [
            a["AlarmArn"]
            for page in cloudwatch.get_paginator("describe_alarms").paginate()
            for a in page["MetricAlarms"]
        ]
        cloudwatch.put_dashboard(
            DashboardName=self.dashboard_name,
            DashboardBody=dashboard_body_json(
                settings=self.settings,
                region=self.region,
                api_id=api_id,
                function_names=self.function_names,
                log_group_names=[log_group_name(n) for n in self.function_names],
                alarm_arns=arns,
            ),
        )
        self._log_groups()
        self.queries_saved = self._queries()

    def client(self, service: str) -> Any:
        if service not in self._clients:
            self._clients[service] = self._make_client(service)
        return self._clients[service]

    def _log_groups(self) -> None:
        logs = self.client("logs")
        for name in self.function_names:
            group = log_group_name(name)
            try:
                logs.create_log_group(logGroupName=group)
            except ClientError as error:
                if error.response["Error"]["Code"] != "ResourceAlreadyExistsException":
                    raise
            logs.put_retention_policy(
                logGroupName=group, retentionInDays=self.settings.logRetentionDays
            )

    def _queries(self) -> bool:
        logs = self.client("logs")
        groups = [log_group_name(n) for n in self.function_names]
        for slug, query in QUERIES.items():
            try:
                logs.put_query_definition(
                    name=f"{PROJECT}-{self.settings.stack}/{slug}",
                    queryString=query,
                    logGroupNames=groups,
                )
            except ClientError as error:
                if error.response["Error"]["Code"] in UNSUPPORTED:
                    return False  # the embedded AWS has no saved queries
                raise
        return True

    def mirror(self, transition: Transition) -> None:
        """Put the evaluator's new state on the embedded CloudWatch alarm (a network call: run
        it off the event loop, in transition order)."""
        try:
            self.client("cloudwatch").set_alarm_state(
                AlarmName=transition.alarm.name,
                StateValue=transition.new_state,
                StateReason=transition.reason[:MAX_REASON],
                StateReasonData=reason_data(transition),
            )
        except Exception as error:  # embedded AWS trouble must not stop the evaluator
            console.say(f"! could not set alarm {transition.alarm.name}'s state: {error!r}")
