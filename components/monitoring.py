"""Monitoring: the alarm topic, the alarms, a dashboard and saved queries.

The contract they watch is in docs/architecture.md (observability).

The alarms (``runtime.alarms``) and the dashboard's widgets (``runtime.dashboard``) are plain
data owned by the runtime and shared with the local stack's evaluator and console; this module
renders them into CloudWatch resources. ``ALARMS`` is re-exported for the program's tests. The
per-function Errors alarms live in MonitoredFunction.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws

from components import naming
from components.api import SessionApi
from runtime.alarms import (
    ALARMS,
    FIVE_MINUTES,
    FUNCTION_NAME,
    LOW_SAMPLE_PERCENTILES,
    AlarmSpec,
    resolve,
)
from runtime.dashboard import (
    API_ID,
    AlarmsWidget,
    Annotation,
    Breakdown,
    Line,
    LogWidget,
    layout,
)
from runtime.metric_names import STAGE
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
        ).apply(lambda v: json.dumps(dashboard_body(settings=self._settings, **v), sort_keys=True))
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


# Logs Insights queries over the functions' JSON log lines (fields: docs/architecture.md).
QUERIES: dict[str, str] = {
    # Saved without a time range: the console opens them on the last hour.
    "errors-last-hour": "\n".join(
        (
            "fields @timestamp, function, operation, errorCode, errorMessage, correlationId,"
            " requestId, stackTrace, @message",
            '| filter level = "ERROR" or ispresent(errorCode)'
            " or @message like /Task timed out|Runtime\\.\\w+Error/",
            "| sort @timestamp desc",
            "| limit 200",
        )
    ),
    # Replace the example ID with the session to follow (its correlationId is the sessionId).
    "session-lifecycle": "\n".join(
        (
            "fields @timestamp, function, operation, level, message, durationMs, errorCode,"
            " userContext.userId, userContext.ipHash, requestId",
            '| filter correlationId = "golden-eagle-427" or sessionId = "golden-eagle-427"',
            "| sort @timestamp asc",
            "| limit 1000",
        )
    ),
    "latency-by-operation": "\n".join(
        (
            "filter ispresent(durationMs)",
            "| stats count(*) as requests, pct(durationMs, 50) as p50,"
            " pct(durationMs, 95) as p95, pct(durationMs, 99) as p99,"
            " max(durationMs) as max by function, operation",
            "| sort p95 desc",
        )
    ),
}


# --- dashboard body (pure, so tests can inspect it) ----------------------------------------------


def dashboard_body(
    *,
    settings: StackSettings,
    region: str,
    api_id: str,
    function_names: Sequence[str],
    log_group_names: Sequence[str],
    alarm_arns: Sequence[str],
) -> dict[str, Any]:
    """The CloudWatch dashboard of one stack (``runtime.dashboard``), as the API's JSON body."""
    values = {STAGE: settings.stack, API_ID: api_id}
    widgets: list[dict[str, Any]] = []
    breakdowns = 0
    for widget, x, y in layout():
        frame = {"x": x, "y": y, "width": widget.width, "height": widget.height}
        if isinstance(widget, AlarmsWidget):
            properties: dict[str, Any] = {"title": widget.title, "alarms": sorted(alarm_arns)}
            widgets.append({"type": "alarm", **frame, "properties": properties})
        elif isinstance(widget, LogWidget):
            sources = " | ".join(f"SOURCE '{name}'" for name in log_group_names)
            properties = {
                "title": widget.title,
                "region": region,
                "view": "table",
                "query": f"{sources} | {QUERIES[widget.query]}".replace("\n", " "),
            }
            widgets.append({"type": "log", **frame, "properties": properties})
        else:
            metrics: list[Any] = []
            if widget.breakdown is not None:
                metrics.append([_search(settings, widget.breakdown, f"e{breakdowns}")])
                breakdowns += 1
            for line in widget.lines:
                metrics.extend(_lines(settings, line, values, function_names))
            properties = {
                "title": widget.title,
                "metrics": metrics,
                "view": "timeSeries",
                "region": region,
                "period": widget.period,
            }
            if widget.stacked is not None:
                properties["stacked"] = widget.stacked
            if widget.annotations:
                properties["annotations"] = {
                    "horizontal": [_annotation(settings, a) for a in widget.annotations]
                }
            if widget.y_min_zero:
                properties["yAxis"] = {"left": {"min": 0}, "right": {"min": 0}}
            widgets.append({"type": "metric", **frame, "properties": properties})
    return {"widgets": widgets}


def _lines(
    settings: StackSettings,
    line: Line,
    values: dict[str, str],
    function_names: Sequence[str],
) -> list[list[Any]]:
    """``line`` as CloudWatch metric arrays: one, or one per function if by FunctionName."""
    namespace = line.namespace or settings.metricsNamespace
    options: dict[str, Any] = {"stat": line.stat}
    if line.label is not None:
        options["label"] = line.label
    if line.y_axis is not None:
        options["yAxis"] = line.y_axis
    per_function = FUNCTION_NAME in line.dimensions
    rendered = []
    for function_name in function_names if per_function else [None]:
        dims = {**values, FUNCTION_NAME: function_name}
        pairs = [part for d in line.dimensions for part in (d, dims[d])]
        rendered.append([namespace, line.metric, *pairs, dict(options)])
    return rendered


def _search(settings: StackSettings, breakdown: Breakdown, expression_id: str) -> dict[str, Any]:
    ns, stage = settings.metricsNamespace, settings.stack
    expression = (
        f'SEARCH(\'{{{ns},{",".join(breakdown.dimensions)}}} MetricName="{breakdown.metric}" '
        f"{STAGE}=\"{stage}\"', '{breakdown.stat}', {FIVE_MINUTES})"
    )
    return {"expression": expression, "id": expression_id, "label": ""}


def _annotation(settings: StackSettings, annotation: Annotation) -> dict[str, Any]:
    rendered: dict[str, Any] = {
        "value": annotation.threshold.value(settings),
        "label": annotation.label,
    }
    if annotation.color is not None:
        rendered["color"] = annotation.color
    if annotation.y_axis is not None:
        rendered["yAxis"] = annotation.y_axis
    return rendered
