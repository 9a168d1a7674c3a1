"""The dashboard's metric widgets with data: ``runtime.dashboard`` drawn from local metrics.

The widgets, their lines, breakdowns and annotations are the very definitions
``components.monitoring`` renders into the CloudWatch dashboard. The values are the raw
values the local stack published to its embedded CloudWatch, as
``local.monitoring.metric_store`` keeps
them for the alarm evaluator: the charts show exactly what the alarms see, percentiles
included (moto computes none).

Bucket: a widget's period divided by the evaluator's time scale, so a chart's bucket is the
alarm's local period and its threshold line means what the alarm means. When that gives too
few or too many points for the window, the bucket is clamped and the threshold of a Sum or
SampleCount line is scaled to it (its label says so).
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from local.monitoring.metric_store import MetricStore, statistic
from runtime.dashboard import WIDGETS, Line, MetricWidget
from runtime.settings import PROJECT

STAGE = "Stage"
FUNCTION_NAME = "FunctionName"
API_ID = "ApiId"
MIN_POINTS = 20
MAX_POINTS = 180
_ADDITIVE = ("Sum", "SampleCount")


@dataclass(frozen=True)
class StackView:
    """What resolves the dashboard's widgets for one local stack."""

    namespace: str
    stage: str
    api_id: str
    function_names: tuple[str, ...]
    settings: Any  # StackSettings: the annotations' thresholds
    time_scale: float = 1.0


@dataclass(frozen=True)
class Query:
    """One drawn line, resolved: which series, which statistic, which label."""

    label: str
    namespace: str
    metric: str
    dimensions: tuple[tuple[str, str], ...]
    stat: str


def bucket_seconds(widget_period: int, time_scale: float, window_s: int) -> int:
    """The chart's bucket: the alarm's local period, clamped to MIN..MAX points per window."""
    local = widget_period / time_scale
    low, high = window_s / MAX_POINTS, window_s / MIN_POINTS
    return max(1, round(min(max(local, low), high)))


def dashboard_data(
    view: StackView,
    store: MetricStore,
    minutes: int,
    now: float | None = None,
    since: float | None = None,
    widgets: Iterable[Any] = WIDGETS,
) -> dict[str, Any]:
    """Every metric widget of the dashboard with its series over the last ``minutes``.

    ``since`` (the stack's start) cuts the window short while the stack is younger than it:
    nothing can be older. Buckets are aligned to multiples of their length (epoch time), so
    a point keeps its value from one refresh to the next.
    """
    end = math.floor(time.time() if now is None else now) + 1
    window = minutes * 60
    start = end - window
    if since is not None:
        start = max(start, math.floor(since))
    out = []
    for widget in widgets:
        if not isinstance(widget, MetricWidget):
            continue  # the alarms and the log lines have panels of their own
        period = bucket_seconds(widget.period, view.time_scale, window)
        queries = [q for line in widget.lines for q in _line_queries(line, view)]
        if widget.breakdown is not None:
            queries = _breakdown_queries(widget, view, store) + queries
        series = []
        for query in queries:
            points = _points(store, query, period, start, end)
            if points:
                series.append({"label": query.label, "stat": query.stat, "points": points})
        factor = period / (widget.period / view.time_scale)
        out.append(
            {
                "title": widget.title,
                # The metrics it draws: the console refreshes a widget when their alarm moves.
                "metrics": sorted({q.metric for q in queries} | _metrics_of(widget)),
                "periodSeconds": period,
                "start": start * 1000,
                "end": end * 1000,
                "series": series,
                "thresholds": _thresholds(widget, view, factor),
            }
        )
    return {"widgets": out, "timeScale": view.time_scale, "start": start * 1000, "end": end * 1000}


def _metrics_of(widget: MetricWidget) -> set[str]:
    drawn = {line.metric for line in widget.lines}
    return drawn | ({widget.breakdown.metric} if widget.breakdown is not None else set())


def _line_queries(line: Line, view: StackView) -> list[Query]:
    """The line, or one per function for a line by FunctionName."""
    values = {STAGE: (view.stage,), FUNCTION_NAME: view.function_names, API_ID: (view.api_id,)}
    combos: list[tuple[tuple[str, str], ...]] = [()]
    for name in line.dimensions:
        combos = [(*combo, (name, value)) for combo in combos for value in values[name]]
    queries = []
    for combo in combos:
        label = line.label or line.metric
        if FUNCTION_NAME in line.dimensions:
            label = dict(combo)[FUNCTION_NAME].removeprefix(f"{PROJECT}-{view.stage}-")
        namespace = line.namespace or view.namespace
        queries.append(Query(label, namespace, line.metric, combo, line.stat))
    return queries


def _breakdown_queries(widget: MetricWidget, view: StackView, store: MetricStore) -> list[Query]:
    """One line per value of the breakdown's last dimension seen for this stage (the SEARCH)."""
    breakdown = widget.breakdown
    assert breakdown is not None
    wanted = set(breakdown.dimensions)
    found = set()
    for namespace, metric, dimensions in store.series():
        dims = dict(dimensions)
        same_metric = (namespace, metric) == (view.namespace, breakdown.metric)
        if same_metric and set(dims) == wanted and dims.get(STAGE) == view.stage:
            found.add(tuple((name, dims[name]) for name in breakdown.dimensions))
    last = breakdown.dimensions[-1]
    return [
        Query(dict(combo)[last], view.namespace, breakdown.metric, combo, breakdown.stat)
        for combo in sorted(found)
    ]


def _points(
    store: MetricStore, query: Query, period: int, start: int, end: int
) -> list[list[float]]:
    """``[epoch ms, statistic]`` per bucket that has samples (CloudWatch draws no others)."""
    buckets: dict[int, list[Any]] = {}
    for sample in store.samples(query.namespace, query.metric, dict(query.dimensions), start, end):
        bucket = int(sample.timestamp // period) * period
        buckets.setdefault(bucket, []).append(sample)
    points = []
    for bucket, samples in sorted(buckets.items()):
        value = statistic(samples, query.stat)
        if value is not None:
            points.append([bucket * 1000, value])
    return points


def _thresholds(widget: MetricWidget, view: StackView, factor: float) -> list[dict[str, Any]]:
    additive = all(line.stat in _ADDITIVE for line in widget.lines)
    out = []
    for annotation in widget.annotations:
        if annotation.y_axis == "right":
            continue  # one axis locally: a right-axis limit would flatten the left-axis lines
        value = float(annotation.threshold.value(view.settings))
        label = annotation.label
        if additive and not math.isclose(factor, 1.0):
            value *= factor
            label += " ≈ per bucket"
        out.append({"label": label, "value": value, "color": annotation.color})
    return out
