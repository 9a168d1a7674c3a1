"""The stack's dashboard as plain data: which widgets, in which order, drawing which lines.

``components.monitoring`` renders it into the CloudWatch dashboard's JSON body; the local
console draws the same widgets from the embedded metrics. Widgets are derived from the metric
declarations and the alarm definitions, so a new metric or alarm shows up on both.

Layout: ``SECTIONS`` are rows of widgets; each section starts on a new row and its widgets
flow left to right (24 columns) and wrap.
"""

from __future__ import annotations

from dataclasses import dataclass

from runtime.alarms import (
    ALARMS,
    FIVE_MINUTES,
    FUNCTION_ERRORS,
    FUNCTION_NAME,
    LAMBDA_NAMESPACE,
    ONE_MINUTE,
    Threshold,
)
from runtime.alarms import BY_SLUG as ALARMS_BY_SLUG
from runtime.metric_names import ACTIVE_SESSIONS, METRICS, STAGE, TOTAL_LISTENERS

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
                (Annotation(f"alarm, each function ({stat})", alarmed[metric].threshold),)
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
