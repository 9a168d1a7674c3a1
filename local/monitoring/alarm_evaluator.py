"""Evaluates the stack's alarms (``runtime.alarms``) on the local stack's metrics.

CloudWatch semantics: a datapoint is the alarm's statistic over one period of raw values
(periods aligned to the evaluator's origin); the alarm looks at the last ``evaluation_periods``
complete periods and goes to ALARM when at least ``datapoints_to_alarm`` of them breach the
threshold. Missing datapoints are treated as the alarm says:

* ``notBreaching`` / ``breaching``: a missing datapoint counts as good / bad;
* ``missing``: not counted; a range with no datapoint at all is INSUFFICIENT_DATA;
* ``ignore``: not counted; a range with no datapoint at all keeps the current state;
* with ``missing`` or ``ignore``, too few breaching datapoints and none within the threshold
  keep the current state (nothing counted can change it).

The state and its reason (CloudWatch's wording, listing the datapoints that decided it) are
``local.monitoring.alarm_reasons.decide``, pure and tested sentence by sentence.

(CloudWatch may also look further back than the range when too few datapoints are present;
the local evaluator does not.) Every alarm starts INSUFFICIENT_DATA, as a new CloudWatch alarm.

Time scale: real alarm periods are minutes long. With ``time_scale`` S, a period of P seconds
lasts P / S real seconds (``--alarm-time-scale 60``: a 5-minute period passes in 5 s), so a
drill can take an alarm to ALARM and back in about a minute. Timestamps stay real.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from local.monitoring.alarm_reasons import ALARM, INSUFFICIENT_DATA, OK, Datapoint, decide
from local.monitoring.metric_store import MetricStore, statistic
from runtime.alarms import StackAlarm

STATES = (OK, ALARM, INSUFFICIENT_DATA)
INITIAL_REASON = "Unchecked: Initial alarm creation"
TRANSITIONS_KEPT = 50
__all__ = ["ALARM", "INSUFFICIENT_DATA", "OK", "STATES", "AlarmEvaluator", "Datapoint", "decide"]


def iso(timestamp: float) -> str:
    """``2026-12-01T15:30:00.123Z``"""
    moment = datetime.fromtimestamp(timestamp, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


@dataclass(frozen=True)
class Transition:
    alarm: StackAlarm
    old_state: str
    new_state: str
    reason: str
    at: float  # epoch seconds
    datapoints: tuple[Datapoint, ...]

    def summary(self) -> dict[str, Any]:
        return {
            "name": self.alarm.name,
            "from": self.old_state,
            "to": self.new_state,
            "reason": self.reason,
            "at": iso(self.at),
        }


@dataclass
class AlarmStatus:
    alarm: StackAlarm
    state: str = INSUFFICIENT_DATA
    reason: str = INITIAL_REASON
    updated_at: float = 0.0
    datapoints: tuple[Datapoint, ...] = ()
    transitions: deque[Transition] = field(default_factory=lambda: deque(maxlen=TRANSITIONS_KEPT))


class AlarmEvaluator:
    """The alarms' states, recomputed by ``evaluate`` from the store's raw values."""

    def __init__(
        self,
        alarms: Sequence[StackAlarm],
        store: MetricStore,
        time_scale: float = 1.0,
        origin: float | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if time_scale <= 0:
            raise ValueError("time_scale must be > 0")
        self.store = store
        self.time_scale = time_scale
        self.clock = clock
        # Periods start on the store's bucket grid, so each sees exactly its samples.
        self.origin = store.align(clock()) if origin is None else origin
        now = self.clock()
        self._status = {a.name: AlarmStatus(a, updated_at=now) for a in alarms}
        self._history: deque[Transition] = deque(maxlen=TRANSITIONS_KEPT)
        self._lock = threading.Lock()

    @property
    def alarms(self) -> list[StackAlarm]:
        return [s.alarm for s in self._status.values()]

    def period_s(self, alarm: StackAlarm) -> float:
        """The alarm's period in real seconds, at this time scale."""
        return alarm.period / self.time_scale

    def tick_s(self) -> float:
        """How often to evaluate so no period boundary is missed by much."""
        shortest = min((self.period_s(a) for a in self.alarms), default=1.0)
        return max(0.05, min(1.0, shortest / 4))

    def datapoints(self, alarm: StackAlarm, now: float) -> tuple[Datapoint, ...]:
        """The last ``evaluation_periods`` complete periods' datapoints, oldest first."""
        period = self.period_s(alarm)
        complete = math.floor((now - self.origin) / period + 1e-9)
        points = []
        for index in range(complete - alarm.evaluation_periods, complete):
            start = self.origin + index * period
            samples = self.store.samples(
                alarm.namespace, alarm.metric_name, alarm.dimension_map, start, start + period
            )
            points.append(Datapoint(start, statistic(samples, alarm.statistic)))
        return tuple(points)

    def evaluate(self, now: float | None = None) -> list[Transition]:
        """Recompute every alarm; the transitions this caused (in alarm order)."""
        now = self.clock() if now is None else now
        transitions = []
        with self._lock:
            for status in self._status.values():
                points = self.datapoints(status.alarm, now)
                status.datapoints = points
                state, reason = decide(status.alarm, points, status.state)
                if state == status.state:
                    continue
                transition = Transition(status.alarm, status.state, state, reason, now, points)
                status.state, status.reason, status.updated_at = state, reason, now
                status.transitions.append(transition)
                self._history.append(transition)
                transitions.append(transition)
        return transitions

    def states(self) -> list[dict[str, Any]]:
        """Every alarm: ``name``, ``state``, ``reason``, ``updatedAt`` and its definition."""
        with self._lock:
            return [self._describe(s) for s in self._status.values()]

    def history(self) -> list[dict[str, Any]]:
        """Recent transitions of all alarms, oldest first."""
        with self._lock:
            return [t.summary() for t in self._history]

    def _describe(self, status: AlarmStatus) -> dict[str, Any]:
        alarm = status.alarm
        return {
            "name": alarm.name,
            "state": status.state,
            "reason": status.reason,
            "updatedAt": iso(status.updated_at),
            "slug": alarm.slug,
            "description": alarm.description,
            "namespace": alarm.namespace,
            "metricName": alarm.metric_name,
            "dimensions": alarm.dimension_map,
            "statistic": alarm.statistic,
            "comparison": alarm.comparison,
            "threshold": alarm.threshold,
            "thresholdSetting": alarm.threshold_setting,
            "runbook": alarm.runbook,
            "period": alarm.period,
            "periodRealSeconds": self.period_s(alarm),
            "evaluationPeriods": alarm.evaluation_periods,
            "datapointsToAlarm": alarm.datapoints_to_alarm,
            "treatMissingData": alarm.treat_missing_data,
            "datapoints": [
                {"timestamp": iso(p.start), "value": p.value} for p in status.datapoints
            ],
            "transitions": [t.summary() for t in status.transitions][-10:],
        }
