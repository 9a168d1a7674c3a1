"""The stack's dashboard as plain data: which widgets, in which order, drawing which lines.

``dashboard_body`` renders it into the CloudWatch dashboard's JSON body (a pure function:
``components.monitoring`` deploys it, the local stack puts it in its embedded CloudWatch),
and the local console draws the same widgets from the embedded metrics. ``QUERIES`` are the
saved Logs Insights queries (deployed, and saved locally where the embedded AWS can).
Widgets are derived from the metric declarations and the alarm definitions, so a new metric
or alarm shows up on both.

Layout: ``SECTIONS`` are rows of widgets; each section starts on a new row and its widgets
flow left to right (24 columns) and wrap.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from runtime.alarms import (
    ALARMS,
    FIVE_MINUTES,
    FUNCTION_ERRORS,
    FUNCTION_NAME,
    LAMBDA_NAMESPACE,
    ONE_MINUTE,
    Threshold,
    scheduled_errors_thresholds,
)
from runtime.alarms import BY_SLUG as ALARMS_BY_SLUG
from runtime.metric_names import ACTIVE_SESSIONS, METRICS, STAGE, TOTAL_LISTENERS
from runtime.settings import StackSettings

# ``namespace`` of a line on the stack's own metrics (metricsNamespace is a setting).
STACK_NAMESPACE = ""
API_GATEWAY_NAMESPACE = "AWS/ApiGateway"
API_ID = "ApiId"
GRID_COLUMNS = 24


@dataclass(frozen=True)
class Line:
    """One metric drawn with one statistic. A line by FunctionName repeats for each function."""

    metric: str
    stat: str
    namespace: str = STACK_NAMESPACE
    dimensions: tuple[str, ...] = (STAGE,)
    label: str | None = None
    y_axis: str | None = None  # "right" for the right-hand axis


@dataclass(frozen=True)
class Breakdown:
    """One line per value of the last dimension (CloudWatch draws it with a SEARCH)."""

    metric: str
    dimensions: tuple[str, ...]
    stat: str = "Sum"


@dataclass(frozen=True)
class Annotation:
    """A horizontal line at a value read from the settings (an alarm threshold, a limit)."""

    label: str
    threshold: Threshold
    color: str | None = None
    y_axis: str | None = None


@dataclass(frozen=True)
class MetricWidget:
    title: str
    lines: tuple[Line, ...]
    period: int = FIVE_MINUTES
    width: int = 12
    breakdown: Breakdown | None = None
    annotations: tuple[Annotation, ...] = ()
    stacked: bool | None = None
    y_min_zero: bool = False  # both axes start at 0
    height: int = 6


@dataclass(frozen=True)
class AlarmsWidget:
    """Every alarm of the stack with its state."""

    title: str = "Alarms"
    width: int = GRID_COLUMNS
    height: int = 3


@dataclass(frozen=True)
class LogWidget:
    """The result of a saved Logs Insights query (by its name) over the functions' logs."""

    title: str
    query: str
    width: int = GRID_COLUMNS
    height: int = 6


Widget = MetricWidget | AlarmsWidget | LogWidget


def _alarm_line(slug: str) -> Annotation:
    spec = ALARMS_BY_SLUG[slug]
    return Annotation(f"alarm ({spec.statistic})", spec.threshold)


def _latency_widgets() -> tuple[MetricWidget, ...]:
    """Percentiles of each latency metric, with the line of the alarm that watches it."""
    alarmed = {a.metric.name: a.slug for a in ALARMS if a.is_percentile}
    return tuple(
        MetricWidget(
            title=f"{metric.name} (ms)",
            lines=tuple(Line(metric.name, stat, label=stat) for stat in ("p50", "p95", "p99")),
            annotations=(_alarm_line(alarmed[metric.name]),) if metric.name in alarmed else (),
        )
        for metric in METRICS
        if metric.unit == "Milliseconds"
    )


def _breakdown_widgets() -> tuple[MetricWidget, ...]:
    """Counts by their extra dimension (errors by code, degradations by operation…).

    Alarmed metrics come first, so the errors and the degradations behind them sit side by
    side, and their total shows the alarm line.
    """
    totals = {
        a.metric.name: a.slug
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
    return tuple(
        MetricWidget(
            title=f"{metric.name} by {dims[-1]}",
            breakdown=Breakdown(metric.name, dims),
            lines=(Line(metric.name, "Sum", label="total"),),
            annotations=(_alarm_line(totals[metric.name]),) if metric.name in totals else (),
            stacked=False,
        )
        for metric, dims in breakdowns
    )


def _capacity_widget() -> MetricWidget:
    """The gauges against the limits."""
    return MetricWidget(
        title="Active sessions and listeners vs limits",
        lines=(
            Line(ACTIVE_SESSIONS.name, "Maximum"),
            Line(TOTAL_LISTENERS.name, "Maximum", y_axis="right"),
        ),
        period=ONE_MINUTE,
        width=GRID_COLUMNS,
        annotations=(
            Annotation("maxActiveSessions", Threshold("maxActiveSessions")),
            Annotation(
                "ActiveSessions alarm", ALARMS_BY_SLUG["active-sessions"].threshold, "#ff7f0e"
            ),
            Annotation(
                "listener capacity",
                Threshold("maxActiveSessions", times="maxListenersPerSession"),
                y_axis="right",
            ),
        ),
        y_min_zero=True,
    )


def _lambda_widgets() -> tuple[MetricWidget, ...]:
    """Lambda health, one line per function; Errors with the line of every function's alarm."""
    alarmed = {FUNCTION_ERRORS.metric_name: FUNCTION_ERRORS}
    return tuple(
        MetricWidget(
            title=title,
            lines=(Line(metric, stat, namespace=LAMBDA_NAMESPACE, dimensions=(FUNCTION_NAME,)),),
            annotations=(
                (
                    Annotation(f"alarm, each function ({stat})", alarmed[metric].threshold),
                    # The scheduled jobs' Errors alarms are capped lower (errors_threshold).
                    *(
                        Annotation(f"alarm, each scheduled job ({stat})", threshold, "#ff7f0e")
                        for threshold in scheduled_errors_thresholds()
                    ),
                )
                if metric in alarmed and alarmed[metric].statistic == stat
                else ()
            ),
        )
        for title, metric, stat in (
            ("Lambda errors", "Errors", "Sum"),
            ("Lambda throttles", "Throttles", "Sum"),
            ("Lambda duration p95 (ms)", "Duration", "p95"),
            ("Lambda concurrent executions", "ConcurrentExecutions", "Maximum"),
        )
    )


def _api_gateway_widgets() -> tuple[MetricWidget, ...]:
    return tuple(
        MetricWidget(
            title=title,
            lines=tuple(
                Line(name, "Sum", namespace=API_GATEWAY_NAMESPACE, dimensions=(API_ID, STAGE))
                for name in names
            ),
        )
        for title, names in (
            ("API Gateway connections and messages", ("ConnectCount", "MessageCount")),
            ("API Gateway errors", ("ClientError", "ExecutionError", "IntegrationError")),
        )
    )


SECTIONS: tuple[tuple[Widget, ...], ...] = (
    (AlarmsWidget(),),
    _latency_widgets(),
    _breakdown_widgets(),
    (_capacity_widget(),),
    _lambda_widgets(),
    _api_gateway_widgets(),
    (LogWidget("Recent errors", query="errors-last-hour"),),
)
WIDGETS: tuple[Widget, ...] = tuple(w for section in SECTIONS for w in section)


def layout(sections: tuple[tuple[Widget, ...], ...] = SECTIONS) -> list[tuple[Widget, int, int]]:
    """Each widget with its grid position (x, y): sections start a row, widgets wrap."""
    placed: list[tuple[Widget, int, int]] = []
    y = 0
    for section in sections:
        x, row_height = 0, 0
        for widget in section:
            if x + widget.width > GRID_COLUMNS:
                x, y, row_height = 0, y + row_height, 0
            placed.append((widget, x, y))
            x += widget.width
            row_height = max(row_height, widget.height)
        y += row_height
    return placed


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


# --- dashboard body (pure: components/ and local/ both render it) ------------------------------


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


def dashboard_body_json(**kwargs: Any) -> str:
    """``dashboard_body`` as the JSON string PutDashboard takes (keys sorted, stable)."""
    return json.dumps(dashboard_body(**kwargs), sort_keys=True)
