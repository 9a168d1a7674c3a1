"""The program renders exactly the shared alarm and dashboard definitions of ``runtime/``.

The local stack evaluates and draws the same ``runtime.alarms`` / ``runtime.dashboard`` data,
so these tests are what keeps the deployed alarms and the local ones identical.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from runtime import dashboard
from runtime.alarms import stack_alarms
from runtime.routes import ROUTES
from runtime.settings import PROJECT
from tests.infra.harness import PROD_OPERATOR, ProgramRun, run_program
from tests.infra.test_program import settings_of

ALARM = "aws:cloudwatch/metricAlarm:MetricAlarm"


def function_names(run: ProgramRun) -> list[str]:
    return [f"{PROJECT}-{run.stack}-{f.name}" for f in ROUTES]


def rendered_alarm(resource: Any) -> dict[str, Any]:
    statistic = resource.get("extendedStatistic") or resource.get("statistic")
    return {
        "name": resource["name"],
        "description": resource["alarmDescription"],
        "namespace": resource["namespace"],
        "metric_name": resource["metricName"],
        "dimensions": dict(resource["dimensions"]),
        "statistic": statistic,
        "unit": resource.get("unit"),
        "period": resource["period"],
        "evaluation_periods": resource["evaluationPeriods"],
        "datapoints_to_alarm": resource.get("datapointsToAlarm", 1),
        "threshold": resource["threshold"],
        "comparison": resource["comparisonOperator"],
        "treat_missing_data": resource["treatMissingData"],
    }


def shared_alarm(alarm: Any) -> dict[str, Any]:
    return {
        "name": alarm.name,
        "description": alarm.description,
        "namespace": alarm.namespace,
        "metric_name": alarm.metric_name,
        "dimensions": alarm.dimension_map,
        "statistic": alarm.statistic,
        "unit": alarm.unit,
        "period": alarm.period,
        "evaluation_periods": alarm.evaluation_periods,
        "datapoints_to_alarm": alarm.datapoints_to_alarm,
        "threshold": alarm.threshold,
        "comparison": alarm.comparison,
        "treat_missing_data": alarm.treat_missing_data,
    }


@pytest.fixture(
    scope="module",
    params=[
        ("dev", {}),
        ("prod", PROD_OPERATOR),
        (
            "dev",
            {
                "maxActiveSessions": 250,
                "activeSessionsAlarmRatio": 0.5,
                "functionErrorsPer5Min": 3,
                "metricsNamespace": "Sessions/Test",
            },
        ),
    ],
    ids=["dev", "prod", "dev-edited"],
)
def run(request: pytest.FixtureRequest) -> ProgramRun:
    stack, overrides = request.param
    return run_program(stack, overrides)


def test_every_rendered_alarm_is_a_shared_definition_and_back(run: ProgramRun):
    expected = {
        a.name: shared_alarm(a) for a in stack_alarms(settings_of(run), function_names(run))
    }
    rendered = {a["name"]: rendered_alarm(a) for a in run.of_type(ALARM)}
    assert rendered == expected


def test_the_rendered_dashboard_is_the_shared_widget_list(run: ProgramRun):
    settings = settings_of(run)
    functions = function_names(run)
    body = json.loads(run.one("aws:cloudwatch/dashboard:Dashboard")["dashboardBody"])
    placed = dashboard.layout()
    assert len(body["widgets"]) == len(placed)
    for rendered, (widget, x, y) in zip(body["widgets"], placed, strict=True):
        props = rendered["properties"]
        assert (rendered["x"], rendered["y"], rendered["width"], rendered["height"]) == (
            x,
            y,
            widget.width,
            widget.height,
        )
        assert props["title"] == widget.title
        if isinstance(widget, dashboard.AlarmsWidget):
            assert rendered["type"] == "alarm"
            assert len(props["alarms"]) == len(stack_alarms(settings, functions))
            continue
        if isinstance(widget, dashboard.LogWidget):
            assert rendered["type"] == "log"
            assert all(f"SOURCE '/aws/lambda/{name}'" in props["query"] for name in functions)
            continue
        assert rendered["type"] == "metric"
        assert props["period"] == widget.period
        drawn = [m for m in props["metrics"] if not isinstance(m[0], dict)]
        expected = []
        for line in widget.lines:
            namespace = line.namespace or settings.metricsNamespace
            per_function = "FunctionName" in line.dimensions
            expected += [(namespace, line.metric, line.stat)] * (
                len(functions) if per_function else 1
            )
        assert [(m[0], m[1], m[-1]["stat"]) for m in drawn] == expected
        searches = [m[0]["expression"] for m in props["metrics"] if isinstance(m[0], dict)]
        if widget.breakdown is None:
            assert searches == []
        else:
            dims = ",".join(widget.breakdown.dimensions)
            assert searches[0].startswith(f"SEARCH('{{{settings.metricsNamespace},{dims}}}")
            assert f'MetricName="{widget.breakdown.metric}"' in searches[0]
        horizontal = props.get("annotations", {}).get("horizontal", [])
        assert [(a["label"], a["value"]) for a in horizontal] == [
            (a.label, a.threshold.value(settings)) for a in widget.annotations
        ]
