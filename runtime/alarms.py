"""The alarms, as plain data: what each watches, how, and against which setting.

The contract: docs/architecture.md (observability).

``components.monitoring`` renders these into CloudWatch alarms and
``local.monitoring.alarm_evaluator`` evaluates
the very same definitions on the local stack's metrics, so the two can never disagree about a
statistic, a period or a threshold. ``stack_alarms`` resolves them for one stack (names,
dimension values, thresholds from its settings): that resolved form is what both render.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from runtime.metric_names import (
    ACTIVE_SESSIONS,
    DEPENDENCY_FAILURES,
    LISTENER_JOIN_LATENCY,
    SERVER_ERRORS,
    SESSION_CREATION_LATENCY,
    STAGE,
    MetricSpec,
)
from runtime.routes import ROUTES
from runtime.settings import PROJECT, StackSettings

FIVE_MINUTES = 300
ONE_MINUTE = 60
LAMBDA_NAMESPACE = "AWS/Lambda"
FUNCTION_NAME = "FunctionName"

# The comparison operators of a CloudWatch metric alarm, as the API spells them.
COMPARISONS = (
    "GreaterThanThreshold",
    "GreaterThanOrEqualToThreshold",
    "LessThanThreshold",
    "LessThanOrEqualToThreshold",
)
TREAT_MISSING_DATA = ("missing", "notBreaching", "breaching", "ignore")
# CloudWatch's limit on an AlarmDescription, in characters.
DESCRIPTION_MAX = 1024
RUNBOOK_LEAD = " Runbook: "
# Low-sample percentiles: CloudWatch needs 10 / (1 - 0.95) = 200 samples in a period before
# it considers a p95 statistically significant. Session creation happens a few times an
# hour, so with "ignore" the latency alarms would practically never evaluate. We choose
# "evaluate": a p95 over few samples is close to their maximum, and requiring 2 of 2
# five-minute periods keeps a single slow cold start from paging anyone.
LOW_SAMPLE_PERCENTILES = "evaluate"


@dataclass(frozen=True)
class Threshold:
    """A threshold read from the stack's settings: ``setting``, or ``setting × times``.

    A product is a count (ActiveSessions ≥ ratio × max), so it is rounded up to the whole
    number it compares against; rounding to 6 places first keeps float noise
    (0.9 × 100 = 90.00000000000001) from moving it to 91.
    """

    setting: str
    times: str | None = None
    cap: float | None = None  # at most this (a scheduled job's Errors: ``errors_threshold``)

    def value(self, settings: StackSettings) -> float:
        # Keyed access: the threshold names its setting as data. An int stays an int.
        base: float = settings[self.setting]
        if self.cap is not None:
            return min(base, self.cap)
        if self.times is None:
            return base
        ratio: float = settings[self.times]
        return math.ceil(round(base * ratio, 6))

    def describe(self) -> str:
        return self.setting if self.times is None else f"{self.setting} × {self.times}"


@dataclass(frozen=True)
class AlarmSpec:
    """One alarm on a custom metric of the stack's namespace, by a dimension set it emits."""

    slug: str
    metric: MetricSpec
    dimensions: tuple[str, ...]
    statistic: str  # "Sum" / "Maximum" / … or a percentile such as "p95"
    comparison: str
    threshold: Threshold
    period: int = FIVE_MINUTES
    evaluation_periods: int = 1
    datapoints_to_alarm: int = 1
    treat_missing_data: str = "notBreaching"
    description: str = ""

    def __post_init__(self) -> None:
        if self.dimensions not in self.metric.dimension_sets:
            raise ValueError(
                f"alarm {self.slug} watches {self.metric.name} by {self.dimensions}, "
                f"which the runtime does not emit (it emits {self.metric.dimension_sets})"
            )
        _check_shape(self.slug, self.comparison, self.treat_missing_data)

    @property
    def is_percentile(self) -> bool:
        return is_percentile(self.statistic)

    def threshold_value(self, settings: Any) -> float:
        return self.threshold.value(settings)


@dataclass(frozen=True)
class FunctionAlarmSpec:
    """The alarm every function of the route table gets on its AWS/Lambda Errors metric."""

    slug: str
    metric_name: str
    statistic: str
    comparison: str
    threshold: Threshold
    period: int = FIVE_MINUTES
    evaluation_periods: int = 1
    datapoints_to_alarm: int = 1
    treat_missing_data: str = "notBreaching"

    def __post_init__(self) -> None:
        _check_shape(self.slug, self.comparison, self.treat_missing_data)


@dataclass(frozen=True)
class StackAlarm:
    """One alarm of one stack, fully resolved: exactly what CloudWatch is given."""

    name: str
    description: str
    namespace: str
    metric_name: str
    dimensions: tuple[tuple[str, str], ...]
    statistic: str
    unit: str | None
    period: int
    evaluation_periods: int
    datapoints_to_alarm: int
    threshold: float
    comparison: str
    treat_missing_data: str
    # The definition it came from (its slug and threshold setting, for people).
    slug: str
    threshold_setting: str
    # The address of the alarm's runbook section (``docs/runbooks.md#server-errors``); the
    # description ends with it.
    runbook: str = ""

    @property
    def is_percentile(self) -> bool:
        return is_percentile(self.statistic)

    @property
    def dimension_map(self) -> dict[str, str]:
        return dict(self.dimensions)


def is_percentile(statistic: str) -> bool:
    """True for an extended statistic such as ``p95`` or ``p99.9``."""
    return statistic.startswith("p")


def _check_shape(slug: str, comparison: str, treat_missing_data: str) -> None:
    if comparison not in COMPARISONS:
        raise ValueError(f"alarm {slug}: unknown comparison {comparison!r}")
    if treat_missing_data not in TREAT_MISSING_DATA:
        raise ValueError(f"alarm {slug}: unknown treat-missing-data {treat_missing_data!r}")


ALARMS: tuple[AlarmSpec, ...] = (
    AlarmSpec(
        slug="session-creation-latency",
        metric=SESSION_CREATION_LATENCY,
        dimensions=(STAGE,),
        statistic="p95",
        comparison="GreaterThanThreshold",
        threshold=Threshold("sessionCreationP95Ms"),
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
        threshold=Threshold("listenerJoinP95Ms"),
        evaluation_periods=2,
        datapoints_to_alarm=2,
        description="joinSession p95 latency above listenerJoinP95Ms for 10 minutes",
    ),
    # Only errors the service caused page anyone. What a client can cause alone (bad frames,
    # unknown actions, rate limits, refused handshakes) stays on the dashboard, never paged:
    # ConnectionErrors by ErrorCode, RateLimitExceeded by Operation.
    AlarmSpec(
        slug="server-errors",
        metric=SERVER_ERRORS,
        dimensions=(STAGE,),
        statistic="Sum",
        comparison="GreaterThanThreshold",
        threshold=Threshold("serverErrorsPer5Min"),
        description=(
            "more than serverErrorsPer5Min INTERNAL_ERROR / SERVICE_UNAVAILABLE replies "
            "(ServerErrors) in 5 minutes"
        ),
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
        threshold=Threshold("dependencyFailuresPer5Min"),
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
        threshold=Threshold("activeSessionsAlarmRatio", times="maxActiveSessions"),
        # Fed once a minute by the metrics reporter, whose schedule fires anywhere within its
        # minute and whose datum (EMF) lands seconds later. A 60-s period, 1 of 1, turns
        # one late or missing datum into an empty period: notBreaching → OK, then ALARM
        # again, two emails for nothing. Five-minute periods hold about five data each and
        # Maximum takes the highest, so a late or lost datum changes nothing; 2 of 3 asks
        # for ten minutes of a sustained level (sessions live for hours: capacity is not a
        # matter of seconds) and keeps ALARM through one empty period.
        period=FIVE_MINUTES,
        evaluation_periods=3,
        datapoints_to_alarm=2,
        description=(
            "active sessions at activeSessionsAlarmRatio of maxActiveSessions in 2 of the last "
            "3 five-minute periods"
        ),
    ),
)
BY_SLUG: dict[str, AlarmSpec] = {a.slug: a for a in ALARMS}

# An unhandled exception or a timeout counts as one Errors datum of the function.
FUNCTION_ERRORS = FunctionAlarmSpec(
    slug="errors",
    metric_name="Errors",
    statistic="Sum",
    comparison="GreaterThanThreshold",
    threshold=Threshold("functionErrorsPer5Min"),
)


def runbook_anchor(slug: str, function: str | None = None) -> str:
    """The alarm's section in docs/runbooks.md: its slug, or ``<function>-errors``."""
    return slug if function is None else f"{function}-{slug}"


def runbook_address(base_url: str, anchor: str) -> str:
    """``docs/runbooks.md#server-errors``"""
    return f"{base_url}#{anchor}"


def described(text: str, runbook: str) -> str:
    """``text`` then the runbook's address, within CloudWatch's 1,024 characters.

    The address always survives whole: a text too long for both is cut (with an ellipsis).
    """
    tail = f"{RUNBOOK_LEAD}{runbook}"
    room = DESCRIPTION_MAX - len(tail)
    if room < 1:
        raise ValueError(f"runbook address too long for an AlarmDescription: {runbook!r}")
    if len(text) > room:
        text = text[: room - 1] + "…"
    return text + tail


def alarm_name(stack: str, slug: str) -> str:
    """A custom-metric alarm's physical name: ``session-management-dev-active-sessions``."""
    return f"{PROJECT}-{stack}-{slug}"


def resolve(spec: AlarmSpec, settings: Any) -> StackAlarm:
    """``spec`` for the stack of ``settings`` (its name, namespace, Stage and threshold)."""
    stack = settings.stack
    values = {STAGE: stack}
    runbook = runbook_address(settings.runbookBaseUrl, runbook_anchor(spec.slug))
    return StackAlarm(
        name=alarm_name(stack, spec.slug),
        description=described(f"{stack}: {spec.description}.", runbook),
        namespace=settings.metricsNamespace,
        metric_name=spec.metric.name,
        dimensions=tuple((d, values[d]) for d in spec.dimensions),
        statistic=spec.statistic,
        unit=spec.metric.unit,
        period=spec.period,
        evaluation_periods=spec.evaluation_periods,
        datapoints_to_alarm=spec.datapoints_to_alarm,
        threshold=spec.threshold_value(settings),
        comparison=spec.comparison,
        treat_missing_data=spec.treat_missing_data,
        slug=spec.slug,
        threshold_setting=spec.threshold.describe(),
        runbook=runbook,
    )


def errors_threshold(setting: float, schedule_seconds: int | None) -> float:
    """A function's Errors threshold: the setting, capped for a scheduled job.

    A job that runs once a minute with a reserved concurrency of 1 and no retries makes at
    most 5 invocations in a five-minute period, so "more than functionErrorsPer5Min (10)"
    could never fire for it: a sweeper failing every run would page no one. Its threshold
    is at most half its runs in the period (2 of 5: three failed runs page).
    """
    if not schedule_seconds:
        return setting
    runs = max(1, FUNCTION_ERRORS.period // schedule_seconds)
    return min(setting, runs // 2)


def scheduled_errors_thresholds() -> tuple[Threshold, ...]:
    """The distinct Errors thresholds of the scheduled jobs (``errors_threshold``), as
    thresholds the dashboard can draw beside the request functions' one."""
    caps = sorted(
        {
            max(1, FUNCTION_ERRORS.period // f.schedule_seconds) // 2
            for f in ROUTES
            if f.schedule_seconds
        }
    )
    return tuple(Threshold(FUNCTION_ERRORS.threshold.setting, cap=cap) for cap in caps)


def function_errors_alarm(
    function_name: str, threshold: float, function: str, runbook_base_url: str
) -> StackAlarm:
    """The Errors alarm of the deployed function ``function_name`` (route table: ``function``;
    a scheduled job's threshold is capped, see ``errors_threshold``)."""
    spec = FUNCTION_ERRORS
    schedule_seconds = next(f.schedule_seconds for f in ROUTES if f.name == function)
    threshold = errors_threshold(threshold, schedule_seconds)
    runbook = runbook_address(runbook_base_url, runbook_anchor(spec.slug, function))
    return StackAlarm(
        name=f"{function_name}-{spec.slug}",
        description=described(
            f"{function_name}: more than {_num(threshold)} invocation errors "
            f"in {spec.period // 60} minutes.",
            runbook,
        ),
        namespace=LAMBDA_NAMESPACE,
        metric_name=spec.metric_name,
        dimensions=((FUNCTION_NAME, function_name),),
        statistic=spec.statistic,
        unit=None,
        period=spec.period,
        evaluation_periods=spec.evaluation_periods,
        datapoints_to_alarm=spec.datapoints_to_alarm,
        threshold=threshold,
        comparison=spec.comparison,
        treat_missing_data=spec.treat_missing_data,
        slug=spec.slug,
        threshold_setting=spec.threshold.describe()
        + (" (capped for a scheduled job)" if schedule_seconds else ""),
        runbook=runbook,
    )


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def route_function(function_name: str) -> str:
    """The route table's function a deployed function name ends with (``…-join-session``)."""
    matches = [f.name for f in ROUTES if function_name.endswith(f"-{f.name}")]
    if not matches:
        raise ValueError(f"{function_name} is not a function of the route table")
    return max(matches, key=len)


def stack_alarms(settings: Any, function_names: Iterable[str]) -> list[StackAlarm]:
    """Every alarm of one stack: the custom-metric alarms, then each function's Errors alarm."""
    errors_threshold = FUNCTION_ERRORS.threshold.value(settings)
    return [resolve(spec, settings) for spec in ALARMS] + [
        function_errors_alarm(name, errors_threshold, route_function(name), settings.runbookBaseUrl)
        for name in function_names
    ]
