"""Every reason the local evaluator writes is CloudWatch's sentence and true of its numbers.

Table-driven: every comparison operator × every treatment of missing data × several
evaluation ranges (N datapoints, M to alarm) × every pattern of breaching / within /
missing datapoints × every current state. Each transition's reason is parsed back: its
counts, the values it lists (and their stamps), the comparison it names and the threshold
must agree with the datapoints and with the new state, and the listed datapoints must be the
ones that decided it. The table must reach ALARM, OK and INSUFFICIENT_DATA wherever
CloudWatch can.
"""

from __future__ import annotations

import dataclasses
import itertools
import operator
import re
from collections.abc import Callable

import pytest

from local.monitoring.alarm_reasons import (
    ALARM,
    COMPARE,
    INSUFFICIENT_DATA,
    OK,
    Datapoint,
    decide,
    stamp,
)
from runtime.alarms import BY_SLUG, COMPARISONS, TREAT_MISSING_DATA, StackAlarm, resolve
from runtime.settings import parse_settings

SETTINGS = parse_settings("dev", {})
T0 = 1_796_724_300.0  # 2026-12-08 10:05:00 UTC
PERIOD = 300
STATES = (OK, ALARM, INSUFFICIENT_DATA)
RANGES = ((1, 1), (2, 2), (2, 1), (3, 2), (4, 3))
THRESHOLD = 1000.0
# Per comparison: values that breach and values that do not (the threshold itself included
# on whichever side it belongs).
VALUES: dict[str, tuple[tuple[float, ...], tuple[float, ...]]] = {
    "GreaterThanThreshold": ((4175.458, 1000.5), (12.0, 1000.0)),
    "GreaterThanOrEqualToThreshold": ((1000.0, 2500.25), (999.9, 3.0)),
    "LessThanThreshold": ((999.0, 0.0), (1000.0, 4175.458)),
    "LessThanOrEqualToThreshold": ((1000.0, 7.5), (1000.01, 3333.0)),
}
OPERATORS: dict[str, Callable[[float, float], bool]] = {
    "greater than": operator.gt,
    "greater than or equal to": operator.ge,
    "less than": operator.lt,
    "less than or equal to": operator.le,
}
WORDS = "|".join(sorted((re.escape(w) for w in OPERATORS), key=len, reverse=True))
NUMBER = r"-?\d+(?:\.\d+)?(?:E-?\d+)?"
COUNTED = re.compile(
    rf"^Threshold Crossed: (?P<count>\d+) out of the last (?P<n>\d+) datapoints "
    rf"\[(?P<listed>[^\]]*)\] (?P<verb>was|were) (?P<neg>not )?(?P<words>{WORDS}) the threshold "
    rf"\((?P<threshold>{NUMBER})\)"
    rf"(?: and (?P<missing>\d+) missing datapoints? (?P<mverb>was|were) treated as "
    rf"\[(?P<treated>Breaching|NonBreaching)\])? "
    rf"\(minimum (?P<minimum>\d+) datapoints? for (?P<from>OK|ALARM) -> (?P<to>ALARM|OK) "
    rf"transition\)\.$"
)
RECEIVED = re.compile(
    r"^Threshold Crossed: (?:no datapoints were|(?P<received>\d+) datapoints? (?P<rverb>was|were))"
    r" received for (?P<n>\d+) periods? and (?P<missing>\d+) missing datapoints? "
    r"(?P<mverb>was|were) treated as \[(?P<treated>Breaching|NonBreaching)\]\.$"
)
UNKNOWN = re.compile(r"^Insufficient Data: (?P<n>\d+) datapoints? (?P<verb>was|were) unknown\.$")
ITEM = re.compile(rf"^({NUMBER}) \((\d\d/\d\d/\d\d \d\d:\d\d:\d\d)\)$")


def alarm(comparison: str, treat: str, n: int, m: int) -> StackAlarm:
    return dataclasses.replace(
        resolve(BY_SLUG["listener-join-latency"], SETTINGS),
        comparison=comparison,
        treat_missing_data=treat,
        evaluation_periods=n,
        datapoints_to_alarm=m,
        threshold=THRESHOLD,
    )


def window(pattern: tuple[str, ...], comparison: str) -> list[Datapoint]:
    """Datapoints, oldest first: "b" breaching, "g" within the threshold, "-" missing."""
    breaching, within = VALUES[comparison]
    points = []
    for i, kind in enumerate(pattern):
        start = T0 - (len(pattern) - 1 - i) * PERIOD
        value = {"b": breaching[i % 2], "g": within[i % 2], "-": None}[kind]
        points.append(Datapoint(start, value))
    return points


def plural(verb: str, count: int) -> None:
    assert verb == ("was" if count == 1 else "were"), (verb, count)


def check(spec: StackAlarm, points: list[Datapoint], state: str, reason: str) -> None:
    """``reason`` is one of CloudWatch's sentences and true of ``points`` and ``state``."""
    compare, _ = COMPARE[spec.comparison]
    present = [p for p in points if p.value is not None]
    missing = len(points) - len(present)
    by_stamp = {(float(p.value), stamp(p.start)) for p in present}  # type: ignore[arg-type]
    if match := UNKNOWN.match(reason):
        assert state == INSUFFICIENT_DATA
        assert spec.treat_missing_data == "missing"
        assert int(match["n"]) == len(points) == missing
        plural(match["verb"], missing)
        return
    assert state != INSUFFICIENT_DATA, reason
    if match := RECEIVED.match(reason):
        received = int(match["received"] or 0)
        assert received == len(present) and int(match["missing"]) == missing
        assert int(match["n"]) == len(points)
        plural(match["mverb"], missing)
        if match["rverb"]:
            plural(match["rverb"], received)
        if match["treated"] == "Breaching":
            assert state == ALARM and spec.treat_missing_data == "breaching"
            assert missing >= spec.datapoints_to_alarm
        else:
            assert state == OK and spec.treat_missing_data == "notBreaching"
        return
    match = COUNTED.match(reason)
    assert match, f"not a CloudWatch reason: {reason!r}"
    assert float(match["threshold"]) == spec.threshold
    assert int(match["n"]) == len(points)
    op = OPERATORS[match["words"]]
    assert op is OPERATORS[COMPARE[spec.comparison][1]]
    listed = [ITEM.match(item.strip()) for item in match["listed"].split(", ")]
    assert all(listed), match["listed"]
    values = [(float(item[1]), item[2]) for item in listed if item]
    count = int(match["count"])
    assert count == len(values) >= 1
    plural(match["verb"], count)
    # Every listed value is a datapoint of the range, listed once, newest first…
    assert set(values) <= by_stamp and len(set(values)) == len(values)
    starts = [next(p.start for p in present if stamp(p.start) == s) for _, s in values]
    assert starts == sorted(starts, reverse=True)
    # …and the sentence is true of each: "was greater than" / "was not greater than".
    for value, _ in values:
        assert op(value, spec.threshold) != bool(match["neg"]), (value, reason)
    # The datapoints listed are all those of their side: the ones that decided it.
    side = [p for p in present if compare(p.value, spec.threshold) != bool(match["neg"])]  # type: ignore[arg-type]
    assert count == len(side)
    treated = match["treated"]
    if treated:
        assert int(match["missing"]) == missing >= 1
        plural(match["mverb"], missing)
        assert (
            treated
            == {"breaching": "Breaching", "notBreaching": "NonBreaching"}[spec.treat_missing_data]
        )
    else:
        assert missing == 0 or spec.treat_missing_data in ("missing", "ignore"), reason
    minimum = int(match["minimum"])
    if match["neg"]:
        assert (match["from"], match["to"], state) == ("ALARM", "OK", OK)
        counted = count + (missing if treated == "NonBreaching" else 0)
        assert counted >= minimum >= 1
    else:
        assert (match["from"], match["to"], state) == ("OK", "ALARM", ALARM)
        assert minimum == spec.datapoints_to_alarm
        assert count + (missing if treated == "Breaching" else 0) >= minimum


CASES = [
    (comparison, treat, n, m)
    for comparison in COMPARISONS
    for treat in TREAT_MISSING_DATA
    for n, m in RANGES
]


@pytest.mark.parametrize(("comparison", "treat", "n", "m"), CASES)
def test_every_transition_reason_is_true_of_its_datapoints(comparison, treat, n, m):
    spec = alarm(comparison, treat, n, m)
    reached = set()
    for pattern in itertools.product("bg-", repeat=n):
        points = window(pattern, comparison)
        for current in STATES:
            state, reason = decide(spec, points, current)
            if state == current:
                continue
            reached.add(state)
            check(spec, points, state, reason)
    expected = {ALARM, OK} | ({INSUFFICIENT_DATA} if treat == "missing" else set())
    assert reached == expected


def test_the_recovery_of_the_drill_lists_no_breaching_datapoint():
    """The bug: 4175.458 > 1000 was listed as "not greater than" in a recovery reason."""
    spec = alarm("GreaterThanThreshold", "notBreaching", 2, 2)
    points = [Datapoint(T0 - PERIOD, 4175.458), Datapoint(T0, None)]
    state, reason = decide(spec, points, ALARM)
    assert state == OK
    assert reason == (
        "Threshold Crossed: 1 datapoint was received for 2 periods and 1 missing datapoint "
        "was treated as [NonBreaching]."
    )
    points = [Datapoint(T0 - PERIOD, 4175.458), Datapoint(T0, 12.0)]
    state, reason = decide(spec, points, ALARM)
    assert (state, reason) == (
        OK,
        "Threshold Crossed: 1 out of the last 2 datapoints [12.0 (08/12/26 10:05:00)] was not "
        "greater than the threshold (1000.0) (minimum 1 datapoint for ALARM -> OK transition).",
    )


def test_cloudwatchs_own_examples_come_out_word_for_word():
    spec = alarm("GreaterThanThreshold", "notBreaching", 2, 1)
    points = [Datapoint(T0 - PERIOD, None), Datapoint(T0, 4175.458)]
    assert decide(spec, points, OK) == (
        ALARM,
        "Threshold Crossed: 1 out of the last 2 datapoints [4175.458 (08/12/26 10:05:00)] was "
        "greater than the threshold (1000.0) and 1 missing datapoint was treated as "
        "[NonBreaching] (minimum 1 datapoint for OK -> ALARM transition).",
    )
    spec = alarm("GreaterThanThreshold", "notBreaching", 2, 1)
    points = [Datapoint(T0 - PERIOD, 3.0), Datapoint(T0, 12.0)]
    assert decide(spec, points, ALARM) == (
        OK,
        "Threshold Crossed: 2 out of the last 2 datapoints [12.0 (08/12/26 10:05:00), "
        "3.0 (08/12/26 10:00:00)] were not greater than the threshold (1000.0) "
        "(minimum 2 datapoints for ALARM -> OK transition).",
    )
    spec = alarm("GreaterThanThreshold", "missing", 2, 2)
    points = [Datapoint(T0 - PERIOD, None), Datapoint(T0, None)]
    assert decide(spec, points, OK) == (
        INSUFFICIENT_DATA,
        "Insufficient Data: 2 datapoints were unknown.",
    )
    spec = alarm("GreaterThanThreshold", "breaching", 2, 2)
    assert decide(spec, points, OK) == (
        ALARM,
        "Threshold Crossed: no datapoints were received for 2 periods and 2 missing "
        "datapoints were treated as [Breaching].",
    )
