"""The local alarm evaluator: CloudWatch statistics and alarm semantics on raw values."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import re
from datetime import UTC, datetime

import pytest

from local.monitoring.alarm_evaluator import ALARM, INSUFFICIENT_DATA, OK, AlarmEvaluator, decide
from local.monitoring.alarm_notifier import AlarmNotifier, sns_message, subject
from local.monitoring.alarm_runner import AlarmRunner
from local.monitoring.metric_store import MetricStore, Sample, percentile, statistic
from runtime.alarms import BY_SLUG, StackAlarm, resolve, stack_alarms
from runtime.settings import parse_settings

SETTINGS = parse_settings("dev", {})
T0 = 1_800_000_000.0  # the evaluator's origin (a period boundary)
NS = SETTINGS.metricsNamespace
STAGE = {"Stage": "dev"}


class Clock:
    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def samples(*values: float) -> list[Sample]:
    return [Sample(T0, v) for v in values]


def alarm(slug: str, **changes) -> StackAlarm:
    return dataclasses.replace(resolve(BY_SLUG[slug], SETTINGS), **changes)


def one_minute_gauge(**changes) -> StackAlarm:
    """The active-sessions gauge reshaped to one 1-minute period (1 of 1): the evaluator's
    semantics are easiest to see on it (the stack's alarm has 5-minute periods, 2 of 3)."""
    shape = {"period": 60, "evaluation_periods": 1, "datapoints_to_alarm": 1}
    return alarm("active-sessions", **{**shape, **changes})


def evaluator(*alarms: StackAlarm, scale: float = 1.0) -> tuple[AlarmEvaluator, MetricStore]:
    clock = Clock()
    store = MetricStore(clock=clock)
    return AlarmEvaluator(alarms, store, time_scale=scale, origin=T0, clock=clock), store


# --- statistics ----------------------------------------------------------------------------------


def test_statistics_over_raw_values():
    values = samples(1, 2, 3, 10)
    assert statistic(values, "Sum") == 16
    assert statistic(values, "SampleCount") == 4
    assert statistic(values, "Average") == 4
    assert statistic(values, "Minimum") == 1
    assert statistic(values, "Maximum") == 10
    assert statistic([], "Sum") is None  # no datapoint, not zero


def test_percentiles_are_nearest_rank_over_the_raw_values():
    hundred = samples(*range(1, 101))
    assert statistic(hundred, "p50") == 50
    assert statistic(hundred, "p95") == 95
    assert statistic(hundred, "p99") == 99
    assert statistic(hundred, "p100") == 100
    # Counts weigh values: 94 fast and 6 slow requests put p95 on a slow one.
    weighted = [Sample(T0, 10, 94), Sample(T0, 2000, 6)]
    assert percentile(weighted, 95) == 2000
    assert percentile([Sample(T0, 10, 95), Sample(T0, 2000, 5)], 95) == 10
    with pytest.raises(ValueError):
        statistic(hundred, "Median")


def test_the_store_keeps_each_exact_dimension_set_apart_and_reads_put_metric_data():
    store = MetricStore()
    at = datetime.fromtimestamp(T0 + 1, UTC)
    store.add_metric_data(
        NS,
        [
            {"MetricName": "ServerErrors", "Dimensions": [{"Name": "Stage", "Value": "dev"}],
             "Values": [1.0], "Counts": [3.0], "Timestamp": at},
            {"MetricName": "ServerErrors", "Value": 1.0, "Timestamp": at,
             "Dimensions": [{"Name": "Stage", "Value": "dev"},
                            {"Name": "ErrorCode", "Value": "SERVICE_UNAVAILABLE"}]},
            {"MetricName": "Latency", "StatisticValues": {"Sum": 1, "SampleCount": 1,
                                                          "Minimum": 1, "Maximum": 1}},
        ],
    )  # fmt: skip
    total = store.samples(NS, "ServerErrors", STAGE, T0, T0 + 10)
    assert statistic(total, "Sum") == 3
    by_code = store.samples(
        NS, "ServerErrors", {**STAGE, "ErrorCode": "SERVICE_UNAVAILABLE"}, T0, T0 + 10
    )
    assert statistic(by_code, "Sum") == 1
    assert store.samples(NS, "ServerErrors", STAGE, T0 + 2, T0 + 10) == []
    assert store.samples(NS, "Latency", {}, 0, T0 * 2) == []


def test_the_store_drops_values_older_than_its_retention():
    clock = Clock()
    store = MetricStore(retention_s=60, clock=clock)
    store.add(NS, "M", STAGE, [1] * 100, timestamp=T0)
    clock.now = T0 + 120
    store.add(NS, "M", STAGE, [2])
    assert [s.value for s in store.samples(NS, "M", STAGE, 0, T0 * 2)] == [2]


def test_the_store_keeps_late_values_in_time_order():
    store = MetricStore(clock=Clock(T0 + 100))
    for at in (T0 + 5, T0 + 1, T0 + 9, T0 + 3):  # a batch published late, out of order
        store.add(NS, "M", STAGE, [at - T0], timestamp=at)
    assert [s.value for s in store.samples(NS, "M", STAGE, T0 + 2, T0 + 9)] == [3, 5]
    assert [s.value for s in store.samples(NS, "M", STAGE, T0, T0 + 10)] == [1, 3, 5, 9]


# --- alarm semantics -----------------------------------------------------------------------------


def test_a_new_alarm_is_insufficient_data_then_ok_without_data_when_missing_is_not_breaching():
    errors = alarm("dependency-failures")
    ev, _ = evaluator(errors)
    assert ev.states()[0]["state"] == INSUFFICIENT_DATA
    # Like a new CloudWatch alarm, the first evaluation finds no datapoint in its range (the
    # period before the stack started): treated as not breaching.
    (transition,) = ev.evaluate(T0 + 1)
    assert (transition.old_state, transition.new_state) == (INSUFFICIENT_DATA, OK)
    assert "treated as [NonBreaching]" in transition.reason


def test_sum_above_threshold_alarms_for_the_period_then_recovers():
    errors = alarm("dependency-failures")  # Sum > 20 in 5 minutes
    ev, store = evaluator(errors)
    ev.evaluate(T0 + 300)
    store.add(NS, "DependencyFailures", STAGE, [1.0] * 20, timestamp=T0 + 310)
    assert ev.evaluate(T0 + 600) == []  # 20 is not greater than 20
    store.add(NS, "DependencyFailures", STAGE, [1.0] * 21, timestamp=T0 + 610)
    store.add(NS, "DependencyFailures", {**STAGE, "Operation": "x"}, [1.0] * 99, timestamp=T0 + 610)
    (fired,) = ev.evaluate(T0 + 900)
    assert fired.new_state == ALARM
    assert "1 out of the last 1 datapoints [21.0" in fired.reason
    assert "greater than the threshold (20.0)" in fired.reason
    (cleared,) = ev.evaluate(T0 + 1200)  # an empty period: not breaching
    assert cleared.new_state == OK
    state = ev.states()[0]
    assert state["state"] == OK and [t["to"] for t in state["transitions"]] == [OK, ALARM, OK]


def test_two_of_two_periods_must_breach_and_p95_is_computed_from_raw_values():
    join = alarm("listener-join-latency")  # p95 > 1000 ms for 2 of 2 periods
    ev, store = evaluator(join)
    metric = join.metric_name
    # Period 1: p95 breaches; the average (and p50) would not.
    store.add(NS, metric, STAGE, [100.0] * 94 + [1500.0] * 6, timestamp=T0 + 10)
    assert [t.new_state for t in ev.evaluate(T0 + 300)] == [OK]  # 1 of 2 only
    # Period 2: 95 fast, 5 slow → p95 is fast: still OK.
    store.add(NS, metric, STAGE, [100.0] * 95 + [1500.0] * 5, timestamp=T0 + 310)
    assert ev.evaluate(T0 + 600) == []
    # Periods 3 and 4 both breach.
    store.add(NS, metric, STAGE, [1200.0] * 3, timestamp=T0 + 610)
    assert ev.evaluate(T0 + 900) == []
    store.add(NS, metric, STAGE, [1100.0], timestamp=T0 + 910)
    (fired,) = ev.evaluate(T0 + 1200)
    assert fired.new_state == ALARM and "2 out of the last 2 datapoints" in fired.reason
    assert [p.value for p in fired.datapoints] == [1200.0, 1100.0]


@pytest.mark.parametrize(
    ("comparison", "value", "breaches"),
    [
        ("GreaterThanThreshold", 10, False),
        ("GreaterThanThreshold", 11, True),
        ("GreaterThanOrEqualToThreshold", 10, True),
        ("GreaterThanOrEqualToThreshold", 9, False),
        ("LessThanThreshold", 10, False),
        ("LessThanThreshold", 9, True),
        ("LessThanOrEqualToThreshold", 10, True),
        ("LessThanOrEqualToThreshold", 11, False),
    ],
)
def test_comparison_operators(comparison, value, breaches):
    gauge = one_minute_gauge(comparison=comparison, threshold=10)
    ev, store = evaluator(gauge)
    store.add(NS, "ActiveSessions", STAGE, [value], timestamp=T0 + 1)
    (transition,) = ev.evaluate(T0 + 60)
    assert transition.new_state == (ALARM if breaches else OK)


@pytest.mark.parametrize(
    ("treat", "empty_state"),
    [("missing", INSUFFICIENT_DATA), ("notBreaching", OK), ("breaching", ALARM), ("ignore", ALARM)],
)
def test_treat_missing_data(treat, empty_state):
    gauge = one_minute_gauge(treat_missing_data=treat)  # Maximum ≥ 90, 1 minute
    ev, store = evaluator(gauge)
    store.add(NS, "ActiveSessions", STAGE, [95], timestamp=T0 + 1)
    assert ev.evaluate(T0 + 60)[0].new_state == ALARM
    ev.evaluate(T0 + 120)  # the next minute has no datapoint
    assert ev.states()[0]["state"] == empty_state
    if treat == "missing":
        assert ev.states()[0]["reason"] == "Insufficient Data: 1 datapoint was unknown."


def test_missing_and_ignore_count_only_present_datapoints():
    two_of_three = alarm(
        "dependency-failures",
        evaluation_periods=3,
        datapoints_to_alarm=2,
        treat_missing_data="missing",
    )
    points_state = decide(two_of_three, [], OK)
    assert points_state[0] == INSUFFICIENT_DATA
    ev, store = evaluator(two_of_three)
    store.add(NS, "DependencyFailures", STAGE, [30], timestamp=T0 + 1)
    store.add(NS, "DependencyFailures", STAGE, [30], timestamp=T0 + 601)
    (fired,) = ev.evaluate(T0 + 900)  # breach, missing, breach: 2 of 3
    assert fired.new_state == ALARM


def _play_quiet_event(gauge: StackAlarm, seed: int, missing_minute: int) -> list[str]:
    """Feed ``gauge`` as the metrics reporter does for 45 minutes at 95% of
    maxActiveSessions: once a minute, fired anywhere within its minute, the datum landing
    0-20 s later (EMF), one minute's datum lost. Evaluate every 5 s as CloudWatch does (a
    period is judged as soon as it ends). The states it went through, in order."""
    import random

    rng = random.Random(seed)
    level = 0.95 * SETTINGS.maxActiveSessions
    feed = []
    for minute in range(45):
        if minute == missing_minute:
            continue
        at = T0 + minute * 60 + rng.uniform(0, 59.9)
        feed.append((at + rng.uniform(0, 20), at))
    feed.sort()
    ev, store = evaluator(gauge)
    states = []
    for step in range(1, 45 * 12 + 1):
        now = T0 + step * 5
        while feed and feed[0][0] <= now:
            _, at = feed.pop(0)
            store.add(NS, "ActiveSessions", STAGE, [level], timestamp=at)
        states += [t.new_state for t in ev.evaluate(now)]
    return states


@pytest.mark.parametrize("seed", range(5))
def test_active_sessions_holds_one_alarm_with_a_jittered_feed_and_a_lost_minute(seed):
    gauge = alarm("active-sessions")  # as the stack has it
    states = _play_quiet_event(gauge, seed, missing_minute=17)
    # OK while the first periods fill, then ALARM exactly once, and it stays.
    assert states == [OK, ALARM]


def test_a_one_minute_one_of_one_active_sessions_alarm_flaps_on_the_same_feed():
    # The shape it had before: the lost minute alone (and any late datum) flips it back.
    states = _play_quiet_event(one_minute_gauge(), seed=0, missing_minute=17)
    assert states.count(ALARM) >= 2 and OK in states[states.index(ALARM) :]


def test_the_time_scale_shortens_periods_and_keeps_real_timestamps():
    errors = alarm("dependency-failures")
    ev, store = evaluator(errors, scale=60)  # 300 s → 5 s
    assert ev.period_s(errors) == 5
    assert ev.tick_s() == 1.0
    store.add(NS, "DependencyFailures", STAGE, [1.0] * 25, timestamp=T0 + 6)
    assert [t.new_state for t in ev.evaluate(T0 + 5)] == [OK]
    (fired,) = ev.evaluate(T0 + 10)
    assert fired.new_state == ALARM and fired.at == T0 + 10
    state = ev.states()[0]
    assert state["period"] == 300 and state["periodRealSeconds"] == 5
    assert state["updatedAt"] == datetime.fromtimestamp(T0 + 10, UTC).isoformat(
        timespec="milliseconds"
    ).replace("+00:00", "Z")


def test_every_stack_alarm_is_evaluated_including_each_functions_errors():
    alarms = stack_alarms(SETTINGS, ["session-management-dev-heartbeat"])
    ev, store = evaluator(*alarms, scale=60)
    store.add(
        "AWS/Lambda",
        "Errors",
        {"FunctionName": "session-management-dev-heartbeat"},
        [1.0] * 11,
        timestamp=T0 + 1,
    )
    ev.evaluate(T0 + 5)
    states = {s["name"]: s["state"] for s in ev.states()}
    assert set(states) == {a.name for a in alarms}
    assert states.pop("session-management-dev-heartbeat-errors") == ALARM
    assert set(states.values()) == {OK}


# --- notifications -------------------------------------------------------------------------------


def test_the_sns_message_has_cloudwatchs_shape():
    join = alarm("listener-join-latency")
    ev, store = evaluator(join)
    store.add(NS, join.metric_name, STAGE, [1500.0], timestamp=T0 + 1)
    store.add(NS, join.metric_name, STAGE, [1500.0], timestamp=T0 + 301)
    (transition,) = ev.evaluate(T0 + 600)
    topic = "arn:aws:sns:us-east-1:123456789012:session-management-dev-alarms"
    message = sns_message(transition, "us-east-1", topic, configured_at=T0)
    assert message["AlarmName"] == "session-management-dev-listener-join-latency"
    assert message["NewStateValue"] == ALARM and message["OldStateValue"] == INSUFFICIENT_DATA
    assert message["NewStateReason"] == transition.reason
    assert message["AlarmDescription"] == join.description
    assert message["StateChangeTime"].endswith("+0000")
    assert message["AlarmArn"].endswith(":alarm:session-management-dev-listener-join-latency")
    assert message["AlarmActions"] == [topic] and message["OKActions"] == [topic]
    assert message["Trigger"] == {
        "MetricName": "ListenerJoinLatency",
        "Namespace": NS,
        "StatisticType": "ExtendedStatistic",
        "ExtendedStatistic": "p95",
        "Unit": "Milliseconds",
        "Dimensions": [{"value": "dev", "name": "Stage"}],
        "Period": 300,
        "EvaluationPeriods": 2,
        "DatapointsToAlarm": 2,
        "ComparisonOperator": "GreaterThanThreshold",
        "Threshold": 1000.0,
        "TreatMissingData": "notBreaching",
        "EvaluateLowSampleCountPercentile": "evaluate",
    }
    assert subject(transition, "us-east-1") == (
        'ALARM: "session-management-dev-listener-join-latency" in US East (N. Virginia)'
    )
    assert message["Region"] == "US East (N. Virginia)"
    assert sns_message(transition, "eu-west-1", topic, T0)["Region"] == "EU (Ireland)"
    # CloudWatch's key order, the reason that decided it, the runbook at the description's end.
    assert list(message) == [
        "AlarmName", "AlarmDescription", "AWSAccountId", "AlarmConfigurationUpdatedTimestamp",
        "NewStateValue", "NewStateReason", "StateChangeTime", "Region", "AlarmArn",
        "OldStateValue", "OKActions", "AlarmActions", "InsufficientDataActions", "Trigger",
    ]  # fmt: skip
    assert list(message["Trigger"])[:4] == [
        "MetricName", "Namespace", "StatisticType", "ExtendedStatistic"
    ]  # fmt: skip
    assert message["NewStateReason"].startswith(
        "Threshold Crossed: 2 out of the last 2 datapoints [1500.0 ("
    )
    assert message["AlarmDescription"].endswith(" Runbook: docs/runbooks.md#listener-join-latency")

    published = []
    notifier = AlarmNotifier("us-east-1", topic, lambda **kw: published.append(kw))
    notifier.publish(transition)
    assert published[0]["TopicArn"] == topic
    assert json.loads(published[0]["Message"])["Trigger"]["StatisticType"] == "ExtendedStatistic"


def test_a_plain_statistic_is_spelled_as_cloudwatch_does():
    gauge = one_minute_gauge()
    ev, store = evaluator(gauge)
    store.add(NS, "ActiveSessions", STAGE, [90], timestamp=T0 + 1)
    (transition,) = ev.evaluate(T0 + 60)
    trigger = sns_message(transition, "us-east-1", "arn:topic", T0)["Trigger"]
    assert trigger["StatisticType"] == "Statistic" and trigger["Statistic"] == "MAXIMUM"
    assert trigger["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"
    assert trigger["Threshold"] == 90.0


ALARMS_URL = "http://127.0.0.1:8080/_local/alarms"


def test_the_start_up_settling_is_one_stderr_line_and_every_later_transition_its_own(capsys):
    quiet = alarm("dependency-failures")  # notBreaching: OK at the first evaluation
    waiting = alarm("server-errors", treat_missing_data="missing")  # stays INSUFFICIENT_DATA
    broken = alarm("active-sessions", treat_missing_data="breaching")  # ALARM at once
    clock = Clock()
    store = MetricStore(clock=clock)
    ev = AlarmEvaluator([quiet, waiting, broken], store, origin=T0, clock=clock)
    published: list[dict] = []
    notifier = AlarmNotifier("us-east-1", "arn:topic", lambda **kw: published.append(kw))
    runner = AlarmRunner(ev, notifier, ALARMS_URL)

    async def evaluate_at(*moments: float) -> None:
        for moment in moments:
            clock.now = moment
            runner.evaluate_now()
        await runner.stop()  # waits for the SNS worker

    asyncio.run(evaluate_at(T0 + 1))
    lines = capsys.readouterr().err.splitlines()
    assert lines[0].endswith(
        f"alarms  3 evaluated: 1 OK, 1 ALARM, 1 INSUFFICIENT_DATA  {ALARMS_URL}"
    )
    # The OK one is only counted; an alarm firing at start-up is news and gets its own line.
    assert len(lines) == 2 and f"alarm !! {broken.name}: INSUFFICIENT_DATA -> ALARM" in lines[1]
    # SNS and the history get every transition, as CloudWatch sends them.
    sent = [json.loads(p["Message"]) for p in published]
    assert [(m["AlarmName"], m["NewStateValue"]) for m in sent] == [
        (quiet.name, OK),
        (broken.name, ALARM),
    ]
    assert [(t["name"], t["to"]) for t in ev.history()] == [(quiet.name, OK), (broken.name, ALARM)]

    # Later transitions, INSUFFICIENT_DATA -> OK included, are each printed.
    published.clear()
    runner = AlarmRunner(ev, notifier, ALARMS_URL)
    runner._evaluated = True  # the same stack, past its first evaluation
    store.add(NS, "DependencyFailures", STAGE, [1.0] * 21, timestamp=T0 + 310)
    store.add(NS, "ServerErrors", STAGE, [0.0], timestamp=T0 + 310)
    asyncio.run(evaluate_at(T0 + 600, T0 + 900))
    lines = capsys.readouterr().err.splitlines()
    shown = [re.search(r"alarm (\S+) (\S+): (\S+) -> (\S+):", line).groups() for line in lines]
    assert shown == [
        ("!!", quiet.name, OK, ALARM),
        ("ok", waiting.name, INSUFFICIENT_DATA, OK),
        ("ok", quiet.name, ALARM, OK),
        ("..", waiting.name, OK, INSUFFICIENT_DATA),
    ], lines
    assert len(published) == 4


def test_the_runner_says_nothing_until_the_banner_is_out(capsys):
    # A slow start-up once printed the alarms' summary line above the stack's banner: the
    # runner's first tick counted from its own start. Now it waits for the stack's signal.
    clock = Clock()
    clock.now = T0 + 1
    ev = AlarmEvaluator(
        [alarm("dependency-failures")], MetricStore(clock=clock), origin=T0, clock=clock
    )
    notifier = AlarmNotifier("us-east-1", "arn:topic", lambda **kw: None)

    async def scenario() -> tuple[tuple[str, int], str]:
        banner_out = asyncio.Event()
        runner = AlarmRunner(ev, notifier, ALARMS_URL, after=banner_out)
        runner.start()
        await asyncio.sleep(ev.tick_s() * 5)  # five ticks of a start-up still under way
        before = capsys.readouterr().err, len(ev.history())
        banner_out.set()
        for _ in range(200):
            await asyncio.sleep(ev.tick_s())
            if "evaluated" in (after := capsys.readouterr().err):
                break
        await runner.stop()
        return before, after

    before, after = asyncio.run(scenario())
    assert before == ("", 0)  # not even evaluated: no line, no transition
    assert f"alarms  1 evaluated: 1 OK  {ALARMS_URL}" in after
