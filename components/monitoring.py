"""Monitoring: the alarm topic, the alarms of DESIGN §5, a dashboard and saved queries.

Alarms on custom metrics are built from ``runtime.metric_names`` declarations and name one
of the dimension sets the runtime declares (and so emits); thresholds come from the stack's
settings. The per-function Errors alarms live in MonitoredFunction.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws

from components.api import SessionApi
from runtime.metric_names import (
    ACTIVE_SESSIONS,
    CONNECTION_ERRORS,
    DEPENDENCY_FAILURES,
    LISTENER_JOIN_LATENCY,
    METRICS,
    SESSION_CREATION_LATENCY,
    STAGE,
    TOTAL_LISTENERS,
    MetricSpec,
)
from runtime.settings import PROJECT, StackSettings

ALARM_TOPIC_TYPE = "session-management:components:AlarmTopic"
COMPONENT_TYPE = "session-management:components:Monitoring"

FIVE_MINUTES = 300
ONE_MINUTE = 60
# Low-sample percentiles: CloudWatch needs 10 / (1 - 0.95) = 200 samples in a period before
# it considers a p95 statistically significant. Session creation happens a few times an
# hour, so with "ignore" the latency alarms would practically never evaluate. We choose
# "evaluate": a p95 over few samples is close to their maximum, and requiring 2 of 2
# five-minute periods keeps a single slow cold start from paging anyone.
LOW_SAMPLE_PERCENTILES = "evaluate"


def active_sessions_threshold(settings: StackSettings) -> int:
    """ActiveSessions ≥ ratio × maxActiveSessions, as the whole number it compares against.

    ActiveSessions is a count, so ``≥ ceil(ratio × max)`` is the same condition; rounding
    first keeps float noise (0.9 × 100 = 90.00000000000001) from moving it to 91.
    """
    return math.ceil(round(settings.activeSessionsAlarmRatio * settings.maxActiveSessions, 6))


@dataclass(frozen=True)
class AlarmSpec:
    """One alarm on a custom metric: what it watches and how its threshold is derived."""

    slug: str
    metric: MetricSpec
    dimensions: tuple[str, ...]
    statistic: str  # "Sum" / "Maximum" / … or a percentile such as "p95"
    comparison: str
    threshold: Callable[[StackSettings], float]
    period: int = FIVE_MINUTES
    evaluation_periods: int = 1
    datapoints_to_alarm: int = 1
    description: str = ""

    def __post_init__(self) -> None:
        if self.dimensions not in self.metric.dimension_sets:
            raise ValueError(
                f"alarm {self.slug} watches {self.metric.name} by {self.dimensions}, "
                f"which the runtime does not emit (it emits {self.metric.dimension_sets})"
            )

    @property
    def is_percentile(self) -> bool:
        return self.statistic.startswith("p")


ALARMS: tuple[AlarmSpec, ...] = (
    AlarmSpec(
        slug="session-creation-latency",
        metric=SESSION_CREATION_LATENCY,
        dimensions=(STAGE,),
        statistic="p95",
        comparison="GreaterThanThreshold",
        threshold=lambda s: s.sessionCreationP95Ms,
        evaluation_periods=2,
        datapoints_to_alarm=2,
        description="createSession p95 latency above sessionCreationP95Ms for 10 minutes",
    ),
    AlarmSpec(
        slug="listener-join-latency",
        metric=LISTENER_JOIN_LATENCY,
        dimensions=(STAGE,),
        statistic="p95",
        comparison="GreaterThanThreshold",
        threshold=lambda s: s.listenerJoinP95Ms,
        evaluation_periods=2,
        datapoints_to_alarm=2,
        description="joinSession p95 latency above listenerJoinP95Ms for 10 minutes",
    ),
    AlarmSpec(
        slug="connection-errors",
        metric=CONNECTION_ERRORS,
        dimensions=(STAGE,),
        statistic="Sum",
        comparison="GreaterThanThreshold",
        threshold=lambda s: s.connectionErrorsPer5Min,
        description="more than connectionErrorsPer5Min error replies in 5 minutes",
    ),
    # Degradations requests survive (rate limits failing open, pushes and fan-outs failing,
    # sweeper steps, DynamoDB failures turned into SERVICE_UNAVAILABLE): the dashboard's
    # "DependencyFailures by Operation" widget says which dependency or step.
    AlarmSpec(
        slug="dependency-failures",
        metric=DEPENDENCY_FAILURES,
        dimensions=(STAGE,),
        statistic="Sum",
        comparison="GreaterThanThreshold",
        threshold=lambda s: s.dependencyFailuresPer5Min,
        description=(
            "more than dependencyFailuresPer5Min degradations survived (DependencyFailures) "
            "in 5 minutes"
        ),
    ),
    AlarmSpec(
        slug="active-sessions",
        metric=ACTIVE_SESSIONS,
        dimensions=(STAGE,),
        statistic="Maximum",
        comparison="GreaterThanOrEqualToThreshold",
        threshold=active_sessions_threshold,
        period=ONE_MINUTE,
        description="active sessions at activeSessionsAlarmRatio of maxActiveSessions",
    ),
)


# --- the topic -------------------------------------------------------------------------------


@dataclass
class AlarmTopicArgs:
    settings: StackSettings


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
        child = pulumi.ResourceOptions(parent=self)
        self.topic = aws.sns.Topic(
            "alarm-topic",
            name=f"{PROJECT}-{settings.stack}-alarms",
            tags={"project": PROJECT, "stack": settings.stack},
            opts=child,
        )
        self.email_subscription = self._email(settings, child)
        self.arn = self.topic.arn
        self.register_outputs({"topicArn": self.topic.arn})

    def _email(
        self, settings: StackSettings, child: pulumi.ResourceOptions
    ) -> aws.sns.TopicSubscription | None:
        if not settings.alarmEmail:
            return None
        # The address receives a confirmation email; until it is confirmed, nothing arrives.
        return aws.sns.TopicSubscription(
            "alarm-email",
            topic=self.topic.arn,
            protocol="email",
            endpoint=settings.alarmEmail,
            opts=child,
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
        self._args = args
        self._settings = args.settings
        self._prefix = f"{PROJECT}-{args.settings.stack}"
        self._child = pulumi.ResourceOptions(parent=self)
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

    # --- alarms ---------------------------------------------------------------------------------

    def _alarms(self) -> dict[str, aws.cloudwatch.MetricAlarm]:
        return {spec.slug: self._alarm(spec) for spec in ALARMS}

    def _alarm(self, spec: AlarmSpec) -> aws.cloudwatch.MetricAlarm:
        settings = self._settings
        topic = self._args.alarm_topic_arn
        values = {STAGE: settings.stack}
        return aws.cloudwatch.MetricAlarm(
            spec.slug,
            name=f"{self._prefix}-{spec.slug}",
            alarm_description=f"{settings.stack}: {spec.description}",
            namespace=settings.metricsNamespace,
            metric_name=spec.metric.name,
            dimensions={d: values[d] for d in spec.dimensions},
            statistic=None if spec.is_percentile else spec.statistic,
            extended_statistic=spec.statistic if spec.is_percentile else None,
            evaluate_low_sample_count_percentiles=(
                LOW_SAMPLE_PERCENTILES if spec.is_percentile else None
            ),
            unit=spec.metric.unit,
            period=spec.period,
            evaluation_periods=spec.evaluation_periods,
            datapoints_to_alarm=spec.datapoints_to_alarm,
            threshold=spec.threshold(settings),
            comparison_operator=spec.comparison,
            treat_missing_data="notBreaching",
            alarm_actions=[topic],
            ok_actions=[topic],
            tags={"project": PROJECT, "stack": settings.stack},
            opts=self._child,
        )

    # --- dashboard ------------------------------------------------------------------------------

    def _dashboard(self) -> aws.cloudwatch.Dashboard:
        api = self._args.api
        functions = [f.function.name for f in api.functions.values()]
        log_groups = [f.log_group.name for f in api.functions.values()]
        alarm_arns = [a.arn for a in self.alarms.values()] + [
            f.errors_alarm.arn for f in api.functions.values()
        ]
        n_functions, n_logs = len(functions), len(log_groups)
        body = pulumi.Output.all(
            self.region, api.api.id, *functions, *log_groups, *alarm_arns
        ).apply(
            lambda v: json.dumps(
                dashboard_body(
                    settings=self._settings,
                    region=v[0],
                    api_id=v[1],
                    function_names=v[2 : 2 + n_functions],
                    log_group_names=v[2 + n_functions : 2 + n_functions + n_logs],
                    alarm_arns=v[2 + n_functions + n_logs :],
                ),
                sort_keys=True,
            )
        )
        return aws.cloudwatch.Dashboard(
            "dashboard", dashboard_name=self._prefix, dashboard_body=body, opts=self._child
        )

    # --- queries --------------------------------------------------------------------------------

    def _queries(self) -> dict[str, aws.cloudwatch.QueryDefinition]:
        log_groups = [f.log_group.name for f in self._args.api.functions.values()]
        return {
            slug: aws.cloudwatch.QueryDefinition(
                slug,
                name=f"{PROJECT}/{self._settings.stack}/{slug}",
                log_group_names=log_groups,
                query_string=query,
                opts=self._child,
            )
            for slug, query in QUERIES.items()
        }


# Logs Insights queries over the functions' JSON log lines (fields of DESIGN §5).
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


# --- dashboard body (pure, so tests can inspect it) --------------------------------------------


def _widget(
    title: str, metrics: list[Any], x: int, y: int, width: int = 12, **props: Any
) -> dict[str, Any]:
    return {
        "type": "metric",
        "x": x,
        "y": y,
        "width": width,
        "height": 6,
        "properties": {"title": title, "metrics": metrics, "view": "timeSeries", **props},
    }


def dashboard_body(
    *,
    settings: StackSettings,
    region: str,
    api_id: str,
    function_names: Sequence[str],
    log_group_names: Sequence[str],
    alarm_arns: Sequence[str],
) -> dict[str, Any]:
    """The CloudWatch dashboard of one stack, as the JSON body the API takes."""
    ns, stage = settings.metricsNamespace, settings.stack
    common = {"region": region, "period": FIVE_MINUTES}
    widgets: list[dict[str, Any]] = [
        {
            "type": "alarm",
            "x": 0,
            "y": 0,
            "width": 24,
            "height": 3,
            "properties": {"title": "Alarms", "alarms": sorted(alarm_arns)},
        }
    ]
    y = 3

    # Latency percentiles, one widget per latency metric, with the alarm threshold if any.
    thresholds = {a.metric.name: a for a in ALARMS if a.is_percentile}
    latency = [m for m in METRICS if m.unit == "Milliseconds"]
    for i, metric in enumerate(latency):
        lines = [
            [ns, metric.name, STAGE, stage, {"stat": stat, "label": stat}]
            for stat in ("p50", "p95", "p99")
        ]
        annotations = {}
        if metric.name in thresholds:
            spec = thresholds[metric.name]
            annotations = {
                "annotations": {
                    "horizontal": [
                        {"value": spec.threshold(settings), "label": f"alarm ({spec.statistic})"}
                    ]
                }
            }
        widgets.append(
            _widget(
                f"{metric.name} (ms)",
                lines,
                x=12 * (i % 2),
                y=y + 6 * (i // 2),
                **common,
                **annotations,
            )
        )
    y += 6 * math.ceil(len(latency) / 2)

    # Counts broken down by their extra dimension (errors by code, degraded dependencies and
    # rate limits by operation…). Alarmed metrics come first, so the error replies and the
    # degradations behind them sit side by side, and their total shows the alarm line.
    totals = {
        a.metric.name: a
        for a in ALARMS
        if a.statistic == "Sum" and a.dimensions == (STAGE,) and a.period == FIVE_MINUTES
    }
    breakdowns = sorted(
        (
            (metric, dims)
            for metric in METRICS
            for dims in metric.dimension_sets
            if len(dims) > 1 and metric.unit == "Count"
        ),
        key=lambda breakdown: breakdown[0].name not in totals,
    )
    for i, (metric, dims) in enumerate(breakdowns):
        annotations = {}
        if metric.name in totals:
            spec = totals[metric.name]
            annotations = {
                "annotations": {
                    "horizontal": [
                        {"value": spec.threshold(settings), "label": f"alarm ({spec.statistic})"}
                    ]
                }
            }
        search = (
            f'SEARCH(\'{{{ns},{",".join(dims)}}} MetricName="{metric.name}" '
            f"{STAGE}=\"{stage}\"', 'Sum', {FIVE_MINUTES})"
        )
        widgets.append(
            _widget(
                f"{metric.name} by {dims[-1]}",
                [
                    [{"expression": search, "id": f"e{i}", "label": ""}],
                    [ns, metric.name, STAGE, stage, {"stat": "Sum", "label": "total"}],
                ],
                x=12 * (i % 2),
                y=y + 6 * (i // 2),
                stacked=False,
                **common,
                **annotations,
            )
        )
    y += 6 * math.ceil(len(breakdowns) / 2)

    # Gauges against the limits.
    capacity = settings.maxActiveSessions * settings.maxListenersPerSession
    widgets.append(
        _widget(
            "Active sessions and listeners vs limits",
            [
                [ns, ACTIVE_SESSIONS.name, STAGE, stage, {"stat": "Maximum"}],
                [ns, TOTAL_LISTENERS.name, STAGE, stage, {"stat": "Maximum", "yAxis": "right"}],
            ],
            x=0,
            y=y,
            width=24,
            region=region,
            period=ONE_MINUTE,
            annotations={
                "horizontal": [
                    {"value": settings.maxActiveSessions, "label": "maxActiveSessions"},
                    {
                        "value": active_sessions_threshold(settings),
                        "label": "ActiveSessions alarm",
                        "color": "#ff7f0e",
                    },
                    {"value": capacity, "label": "listener capacity", "yAxis": "right"},
                ]
            },
            yAxis={"left": {"min": 0}, "right": {"min": 0}},
        )
    )
    y += 6

    # Lambda health per function.
    for i, (title, metric, stat) in enumerate(
        (
            ("Lambda errors", "Errors", "Sum"),
            ("Lambda throttles", "Throttles", "Sum"),
            ("Lambda duration p95 (ms)", "Duration", "p95"),
            ("Lambda concurrent executions", "ConcurrentExecutions", "Maximum"),
        )
    ):
        widgets.append(
            _widget(
                title,
                [
                    ["AWS/Lambda", metric, "FunctionName", name, {"stat": stat}]
                    for name in function_names
                ],
                x=12 * (i % 2),
                y=y + 6 * (i // 2),
                **common,
            )
        )
    y += 12

    # API Gateway traffic.
    widgets.append(
        _widget(
            "API Gateway connections and messages",
            [
                ["AWS/ApiGateway", name, "ApiId", api_id, "Stage", stage, {"stat": "Sum"}]
                for name in ("ConnectCount", "MessageCount")
            ],
            x=0,
            y=y,
            **common,
        )
    )
    widgets.append(
        _widget(
            "API Gateway errors",
            [
                ["AWS/ApiGateway", name, "ApiId", api_id, "Stage", stage, {"stat": "Sum"}]
                for name in ("ClientError", "ExecutionError", "IntegrationError")
            ],
            x=12,
            y=y,
            **common,
        )
    )
    y += 6

    sources = " | ".join(f"SOURCE '{name}'" for name in log_group_names)
    widgets.append(
        {
            "type": "log",
            "x": 0,
            "y": y,
            "width": 24,
            "height": 6,
            "properties": {
                "title": "Recent errors",
                "region": region,
                "view": "table",
                "query": f"{sources} | {QUERIES['errors-last-hour']}".replace("\n", " "),
            },
        }
    )
    return {"widgets": widgets}
