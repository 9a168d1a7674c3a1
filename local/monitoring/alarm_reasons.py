"""CloudWatch's state reasons, from the datapoints that decided an alarm's state.

Pure: ``decide`` takes an alarm definition, its evaluation range of datapoints (oldest first)
and its current state, and returns the new state with the reason CloudWatch writes for it
(``StateReason`` / the SNS message's ``NewStateReason``). The wording follows what CloudWatch
writes for a metric alarm with ``DatapointsToAlarm`` set (sources: docs/local.md, "Alarm
reasons"):

* ``Threshold Crossed: 1 out of the last 2 datapoints [4175.458 (08/12/26 10:05:00)] was
  greater than the threshold (1000.0) (minimum 1 datapoint for OK -> ALARM transition).``
* ``Threshold Crossed: 2 out of the last 2 datapoints [12.0 (…), 3.0 (…)] were not greater
  than the threshold (1000.0) (minimum 2 datapoints for ALARM -> OK transition).``
* ``… and 1 missing datapoint was treated as [NonBreaching] (minimum …).`` when missing
  datapoints were counted;
* ``Threshold Crossed: no datapoints were received for 2 periods and 2 missing datapoints
  were treated as [NonBreaching].`` / ``1 datapoint was received for 2 periods and 1 missing
  datapoint was treated as [Breaching].`` when the missing datapoints decided it;
* ``Insufficient Data: 2 datapoints were unknown.``

The datapoints listed are the ones that decided the state, newest first: the breaching ones
for ALARM, the others for OK; never a breaching value under "not greater than".

States: at least ``datapoints_to_alarm`` breaching datapoints (missing ones counted as their
treatment says) is ALARM; otherwise OK when some datapoint (present, or missing and treated)
is within the threshold. Missing datapoints treated as ``missing`` or ``ignore`` are not
counted; when nothing counted can decide, ``ignore`` keeps the state, and ``missing`` goes to
INSUFFICIENT_DATA if every datapoint is missing and keeps the state otherwise (too few
datapoints to change it).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from runtime.alarms import StackAlarm

OK, ALARM, INSUFFICIENT_DATA = "OK", "ALARM", "INSUFFICIENT_DATA"

COMPARE: dict[str, tuple[Callable[[float, float], bool], str]] = {
    "GreaterThanThreshold": (lambda v, t: v > t, "greater than"),
    "GreaterThanOrEqualToThreshold": (lambda v, t: v >= t, "greater than or equal to"),
    "LessThanThreshold": (lambda v, t: v < t, "less than"),
    "LessThanOrEqualToThreshold": (lambda v, t: v <= t, "less than or equal to"),
}
# How CloudWatch names a missing datapoint's treatment in a reason.
TREATED_AS = {"breaching": "Breaching", "notBreaching": "NonBreaching"}


@dataclass(frozen=True)
class Datapoint:
    start: float  # real epoch seconds of the period's start
    value: float | None  # None: missing


def decide(alarm: StackAlarm, points: Sequence[Datapoint], current: str) -> tuple[str, str]:
    """The state ``points`` put ``alarm`` in (from ``current``), with CloudWatch's reason.

    When the state is kept for want of data, the reason returned is only for people reading
    the local console; no transition carries it.
    """
    compare, _ = COMPARE[alarm.comparison]
    present = [p for p in points if p.value is not None]
    missing = len(points) - len(present)
    treat = alarm.treat_missing_data
    bad = [p for p in present if compare(p.value, alarm.threshold)]  # type: ignore[arg-type]
    good = [p for p in present if p not in bad]
    bad_missing = missing if treat == "breaching" else 0
    good_missing = missing if treat == "notBreaching" else 0
    if len(bad) + bad_missing >= alarm.datapoints_to_alarm:
        return ALARM, _alarm_reason(alarm, points, bad, missing)
    if good or good_missing:
        return OK, _ok_reason(alarm, points, good, missing)
    if not present and treat == "missing":
        return INSUFFICIENT_DATA, (
            f"Insufficient Data: {_count(missing, 'datapoint')} {_was(missing)} unknown."
        )
    # Only breaching datapoints, too few, and missing ones not counted: nothing to decide on.
    return current, (
        f"{_count(len(present), 'datapoint')} {_was(len(present))} received for "
        f"{_count(len(points), 'period')}: too few to change the state "
        f"(treat missing data: {treat})."
    )


def _alarm_reason(
    alarm: StackAlarm, points: Sequence[Datapoint], bad: list[Datapoint], missing: int
) -> str:
    treat = alarm.treat_missing_data
    if not bad:  # the missing datapoints, treated as breaching, decided it
        return _received(len(points), missing, "Breaching")
    _, words = COMPARE[alarm.comparison]
    return (
        f"Threshold Crossed: {len(bad)} out of the last {len(points)} datapoints "
        f"{_listed(bad)} {_was(len(bad))} {words} the threshold ({float(alarm.threshold)!r})"
        f"{_treated(missing, treat)} (minimum {_count(alarm.datapoints_to_alarm, 'datapoint')} "
        "for OK -> ALARM transition)."
    )


def _ok_reason(
    alarm: StackAlarm, points: Sequence[Datapoint], good: list[Datapoint], missing: int
) -> str:
    treat = alarm.treat_missing_data
    if not good:  # the missing datapoints, treated as not breaching, decided it
        return _received(len(points), missing, "NonBreaching")
    _, words = COMPARE[alarm.comparison]
    counted = len(points) if treat in TREATED_AS else len(points) - missing
    minimum = max(1, counted - alarm.datapoints_to_alarm + 1)
    return (
        f"Threshold Crossed: {len(good)} out of the last {len(points)} datapoints "
        f"{_listed(good)} {_was(len(good))} not {words} the threshold "
        f"({float(alarm.threshold)!r}){_treated(missing, treat)} "
        f"(minimum {_count(minimum, 'datapoint')} for ALARM -> OK transition)."
    )


def _received(periods: int, missing: int, treated: str) -> str:
    received = periods - missing
    head = (
        "no datapoints were"
        if received == 0
        else f"{_count(received, 'datapoint')} {_was(received)}"
    )
    return (
        f"Threshold Crossed: {head} received for {_count(periods, 'period')} and "
        f"{_count(missing, 'missing datapoint')} {_was(missing)} treated as [{treated}]."
    )


def _treated(missing: int, treat: str) -> str:
    if not missing or treat not in TREATED_AS:
        return ""
    return (
        f" and {_count(missing, 'missing datapoint')} {_was(missing)} treated as "
        f"[{TREATED_AS[treat]}]"
    )


def _listed(points: list[Datapoint]) -> str:
    """``[4175.458 (08/12/26 10:05:00), 12.0 (08/12/26 10:00:00)]``, newest first."""
    newest_first = sorted(points, key=lambda p: p.start, reverse=True)
    return "[" + ", ".join(f"{float(p.value)!r} ({stamp(p.start)})" for p in newest_first) + "]"  # type: ignore[arg-type]


def _count(count: int, noun: str) -> str:
    return f"{count} {noun}" + ("" if count == 1 else "s")


def _was(count: int) -> str:
    return "was" if count == 1 else "were"


def stamp(timestamp: float) -> str:
    """CloudWatch's datapoint stamp in reasons: ``08/12/26 10:05:00`` (dd/mm/yy, UTC)."""
    return datetime.fromtimestamp(timestamp, UTC).strftime("%d/%m/%y %H:%M:%S")
