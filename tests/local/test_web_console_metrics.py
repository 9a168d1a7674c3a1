"""The console's charts: the runtime dashboard's metric widgets drawn from the metric store."""

from __future__ import annotations

import pytest

from local.monitoring.metric_store import MetricStore
from local.monitoring.webconsole.metrics import StackView, bucket_seconds, dashboard_data
from runtime.dashboard import WIDGETS, MetricWidget
from runtime.settings import parse_settings

NOW = 1_800_000_000.0
NS = "SessionManagement"
FUNCTIONS = ("session-management-dev-create-session", "session-management-dev-join-session")


def view(time_scale: float = 60.0, **raw) -> StackView:
    settings = parse_settings("dev", raw)
    return StackView(NS, "dev", "abcdefghij", FUNCTIONS, settings, time_scale)


def widget(doc: dict, title: str) -> dict:
    (found,) = [w for w in doc["widgets"] if w["title"] == title]
    return found


def test_every_metric_widget_of_the_dashboard_is_drawn_in_order():
    doc = dashboard_data(view(), MetricStore(clock=lambda: NOW), minutes=15, now=NOW)
    expected = [w.title for w in WIDGETS if isinstance(w, MetricWidget)]
    assert [w["title"] for w in doc["widgets"]] == expected
    assert all(w["series"] == [] for w in doc["widgets"])  # nothing published yet


def test_percentiles_come_from_the_raw_values_per_bucket():
    store = MetricStore(clock=lambda: NOW)
    # Bucket = the alarm's local period: 300 s / time scale 60 = 5 s.
    for value in range(1, 101):  # 1..100 ms in one bucket
        store.add(NS, "SessionCreationLatency", {"Stage": "dev"}, [value], timestamp=NOW - 30)
    store.add(NS, "SessionCreationLatency", {"Stage": "dev"}, [7], timestamp=NOW - 3)
    doc = dashboard_data(view(), store, minutes=5, now=NOW)
    chart = widget(doc, "SessionCreationLatency (ms)")
    assert chart["periodSeconds"] == 5
    lines = {s["label"]: [p[1] for p in s["points"]] for s in chart["series"]}
    assert lines == {"p50": [50, 7], "p95": [95, 7], "p99": [99, 7]}
    # The alarm's own threshold (sessionCreationP95Ms) is the line drawn.
    assert chart["thresholds"] == [{"label": "alarm (p95)", "value": 2000.0, "color": None}]


def test_breakdowns_have_a_line_per_value_seen_for_this_stage_only():
    store = MetricStore(clock=lambda: NOW)
    for code, count in (("INVALID_MESSAGE", 3), ("SESSION_NOT_FOUND", 2)):
        for _ in range(count):
            store.add(
                NS, "ConnectionErrors", {"Stage": "dev", "ErrorCode": code}, [1], timestamp=NOW - 2
            )
    store.add(
        NS, "ConnectionErrors", {"Stage": "prod", "ErrorCode": "OTHER"}, [1], timestamp=NOW - 2
    )
    store.add(NS, "ConnectionErrors", {"Stage": "dev"}, [1] * 5, timestamp=NOW - 2)
    chart = widget(
        dashboard_data(view(), store, minutes=5, now=NOW), "ConnectionErrors by ErrorCode"
    )
    totals = {s["label"]: sum(p[1] for p in s["points"]) for s in chart["series"]}
    assert totals == {"INVALID_MESSAGE": 3, "SESSION_NOT_FOUND": 2, "total": 5}


def test_lines_by_function_name_have_one_line_per_function_labelled_by_its_short_name():
    store = MetricStore(clock=lambda: NOW)
    store.add("AWS/Lambda", "Errors", {"FunctionName": FUNCTIONS[1]}, [1, 1], timestamp=NOW - 1)
    chart = widget(dashboard_data(view(), store, minutes=5, now=NOW), "Lambda errors")
    assert [(s["label"], s["points"][0][1]) for s in chart["series"]] == [("join-session", 2)]


def test_a_sum_threshold_is_scaled_when_the_bucket_is_not_the_alarms_period():
    # Time scale 1: the 5-minute period would give 3 points in 15 minutes; the bucket is
    # clamped to 15 min / 20 = 45 s and the Sum threshold scaled by 45 / 300.
    store = MetricStore(clock=lambda: NOW)
    doc = dashboard_data(
        view(time_scale=1.0, dependencyFailuresPer5Min=20), store, minutes=15, now=NOW
    )
    chart = widget(doc, "DependencyFailures by Operation")
    assert chart["periodSeconds"] == 45
    assert chart["thresholds"][0]["value"] == pytest.approx(20 * 45 / 300)
    assert "per bucket" in chart["thresholds"][0]["label"]


@pytest.mark.parametrize(
    ("period", "scale", "window", "bucket"),
    [(300, 60, 900, 5), (300, 1, 900, 45), (60, 60, 900, 5), (300, 600, 300, 2), (60, 1, 3600, 60)],
)
def test_bucket_is_the_alarms_local_period_within_bounds(period, scale, window, bucket):
    assert bucket_seconds(period, scale, window) == bucket


def test_a_young_stack_draws_from_its_start_and_buckets_keep_their_place():
    store = MetricStore(clock=lambda: NOW)
    store.add(NS, "ActiveSessions", {"Stage": "dev"}, [3], timestamp=NOW - 7)
    first = dashboard_data(view(), store, minutes=15, now=NOW, since=NOW - 60.5)
    later = dashboard_data(view(), store, minutes=15, now=NOW + 2, since=NOW - 60.5)
    assert first["start"] == (NOW - 61) * 1000  # not 15 minutes before NOW
    chart = widget(first, "Active sessions and listeners vs limits")
    again = widget(later, "Active sessions and listeners vs limits")
    assert (
        chart["series"]
        == again["series"]
        == [{"label": "ActiveSessions", "stat": "Maximum", "points": [[(NOW - 10) * 1000, 3]]}]
    )
