"""Monitoring: the alarm topic, the alarms, a dashboard and saved queries.

The contract they watch is in docs/architecture.md (observability).

The alarms (``runtime.alarms``) and the dashboard's widgets (``runtime.dashboard``) are plain
data owned by the runtime and shared with the local stack's evaluator and console; this module
renders them into CloudWatch resources (the dashboard's body and the saved queries are
rendered by ``runtime.dashboard``, which the local stack uses too). ``ALARMS``, ``QUERIES`` and
``dashboard_body`` are re-exported for the program's tests. The
per-function Errors alarms live in MonitoredFunction.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from components import naming
from components.api import SessionApi
from runtime.alarms import (
    ALARMS,
    LOW_SAMPLE_PERCENTILES,
    AlarmSpec,
    resolve,
)
from runtime.dashboard import QUERIES, dashboard_body, dashboard_body_json
from runtime.settings import PROJECT, StackSettings

ALARM_TOPIC_TYPE = "session-management:components:AlarmTopic"
COMPONENT_TYPE = "session-management:components:Monitoring"

# --- the topic -----------------------------------------------------------------------------------


@dataclass
class AlarmTopicArgs:
    settings: StackSettings
    # What the topic's name starts with; default ``session-management-<stack>``.
    name_prefix: str | None = None


def _child_options(parent: pulumi.Resource, name: str) -> pulumi.ResourceOptions:
    """A child's options; the alias keeps stacks deployed before the name prefix in place."""
    return pulumi.ResourceOptions(parent=parent, aliases=[pulumi.Alias(name=name)])


class AlarmTopic(pulumi.ComponentResource):
    """The SNS topic every alarm notifies, with an email subscription when configured.

    Separate from Monitoring because the functions' own Errors alarms need the topic before
    the functions exist, and Monitoring needs the functions.
    """

    topic: aws.sns.Topic
    email_subscription: aws.sns.TopicSubscription | None

    def __init__(
        self, name: str, args: AlarmTopicArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__(ALARM_TOPIC_TYPE, name, None, opts)
        settings = args.settings
        self._name = name
        prefix = args.name_prefix or naming.name_prefix(settings.stack)
        self.topic = aws.sns.Topic(
            f"{name}-alarm-topic",
            name=naming.alarm_topic_name(prefix),
            tags={"project": PROJECT, "stack": settings.stack},
            opts=_child_options(self, "alarm-topic"),
        )
        self.email_subscription = self._email(settings)
        self.arn = self.topic.arn
        self.register_outputs({"topicArn": self.topic.arn})

    def _email(self, settings: StackSettings) -> aws.sns.TopicSubscription | None:
        if not settings.alarmEmail:
            return None
        # The address receives a confirmation email; until it is confirmed, nothing arrives.
        return aws.sns.TopicSubscription(
            f"{self._name}-alarm-email",
            topic=self.topic.arn,
            protocol="email",
            endpoint=settings.alarmEmail,
            opts=_child_options(self, "alarm-email"),
        )


# --- alarms, dashboard, queries ------------------------------------------------------------------


@dataclass
class MonitoringArgs:
    settings: StackSettings
    api: SessionApi
    alarm_topic_arn: pulumi.Input[str]


class Monitoring(pulumi.ComponentResource):
    """Alarms on the custom metrics, the stack's dashboard and its Logs Insights queries."""

    alarms: dict[str, aws.cloudwatch.MetricAlarm]
    dashboard: aws.cloudwatch.Dashboard
    queries: dict[str, aws.cloudwatch.QueryDefinition]

    def __init__(
        self, name: str, args: MonitoringArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__(COMPONENT_TYPE, name, None, opts)
        self._name = name
        self._args = args
        self._settings = args.settings
        # Physical names follow the SessionApi they watch.
        self._prefix = args.api.prefix
        self.region = aws.get_region_output(opts=pulumi.InvokeOutputOptions(parent=self)).region

        self.alarms = self._alarms()
        self.dashboard = self._dashboard()
        self.dashboard_url = pulumi.Output.concat(
            "https://",
            self.region,
            ".console.aws.amazon.com/cloudwatch/home?region=",
            self.region,
            "#dashboards/dashboard/",
            self.dashboard.dashboard_name,
        )
        self.queries = self._queries()
        self.register_outputs(
            {
                "dashboardUrl": self.dashboard_url,
                "alarmArns": {slug: alarm.arn for slug, alarm in self.alarms.items()},
            }
        )

    # --- alarms ----------------------------------------------------------------------------------

    def _alarms(self) -> dict[str, aws.cloudwatch.MetricAlarm]:
        return {spec.slug: self._alarm(spec) for spec in ALARMS}

    def _alarm(self, spec: AlarmSpec) -> aws.cloudwatch.MetricAlarm:
        alarm = resolve(spec, self._settings)
        topic = self._args.alarm_topic_arn
        return aws.cloudwatch.MetricAlarm(
            f"{self._name}-{spec.slug}",
            # alarm.name for the stack's own prefix; another SessionApi's prefix otherwise.
            name=naming.alarm_name(self._prefix, spec.slug),
            alarm_description=alarm.description,
            namespace=alarm.namespace,
            metric_name=alarm.metric_name,
            dimensions=alarm.dimension_map,
            statistic=None if alarm.is_percentile else alarm.statistic,
            extended_statistic=alarm.statistic if alarm.is_percentile else None,
            evaluate_low_sample_count_percentiles=(
                LOW_SAMPLE_PERCENTILES if alarm.is_percentile else None
            ),
            unit=alarm.unit,
            period=alarm.period,
            evaluation_periods=alarm.evaluation_periods,
            datapoints_to_alarm=alarm.datapoints_to_alarm,
            threshold=alarm.threshold,
            comparison_operator=alarm.comparison,
            treat_missing_data=alarm.treat_missing_data,
            alarm_actions=[topic],
            ok_actions=[topic],
            tags={"project": PROJECT, "stack": self._settings.stack},
            opts=_child_options(self, spec.slug),
        )

    # --- dashboard -------------------------------------------------------------------------------

    def _dashboard(self) -> aws.cloudwatch.Dashboard:
        api = self._args.api
        functions = [f.function.name for f in api.functions.values()]
        log_groups = [f.log_group.name for f in api.functions.values()]
        alarm_arns = [a.arn for a in self.alarms.values()] + [
            f.errors_alarm.arn for f in api.functions.values()
        ]
        body = pulumi.Output.all(
            region=self.region,
            api_id=api.api.id,
            function_names=pulumi.Output.all(*functions),
            log_group_names=pulumi.Output.all(*log_groups),
            alarm_arns=pulumi.Output.all(*alarm_arns),
        ).apply(lambda v: dashboard_body_json(settings=self._settings, **v))
        return aws.cloudwatch.Dashboard(
            f"{self._name}-dashboard",
            dashboard_name=naming.dashboard_name(self._prefix),
            dashboard_body=body,
            opts=_child_options(self, "dashboard"),
        )

    # --- queries ---------------------------------------------------------------------------------

    def _queries(self) -> dict[str, aws.cloudwatch.QueryDefinition]:
        log_groups = [f.log_group.name for f in self._args.api.functions.values()]
        return {
            slug: aws.cloudwatch.QueryDefinition(
                f"{self._name}-{slug}",
                name=naming.query_name(self._args.api.prefix, slug),
                log_group_names=log_groups,
                query_string=query,
                opts=_child_options(self, slug),
            )
            for slug, query in QUERIES.items()
        }


__all__ = [
    "ALARMS",
    "QUERIES",
    "AlarmTopic",
    "AlarmTopicArgs",
    "Monitoring",
    "MonitoringArgs",
    "dashboard_body",
]
