"""What the stack keeps of its metrics grows with time, not with requests (issue 20)."""

from __future__ import annotations

from datetime import UTC, datetime

from local.monitoring.aggregate import AggregatingCloudWatch, aggregate
from local.monitoring.metric_store import DISTINCT_PER_BUCKET, MetricStore, statistic

NS = "SessionManagement"
STAGE = {"Stage": "dev"}
T0 = 1_800_000_000.0


def test_equal_values_in_one_second_are_one_sample_with_a_count():
    store = MetricStore(clock=lambda: T0 + 1)
    for i in range(10_000):
        store.add(NS, "ServerErrors", STAGE, [float(i % 2)], timestamp=T0 + i / 20_000)
    samples = store.samples(NS, "ServerErrors", STAGE, T0, T0 + 1)
    assert len(samples) == 2
    assert statistic(samples, "SampleCount") == 10_000
    assert statistic(samples, "Sum") == 5_000


def test_a_flood_of_distinct_values_keeps_a_bounded_histogram_per_second():
    store = MetricStore(clock=lambda: T0 + 1)
    values = [1.0 + i / 100 for i in range(5_000)]  # 1.00 .. 50.99 ms, all distinct
    for i, value in enumerate(values):
        store.add(NS, "HeartbeatLatency", STAGE, [value], timestamp=T0 + i / 10_000)
    samples = store.samples(NS, "HeartbeatLatency", STAGE, T0, T0 + 1)
    assert len(samples) <= DISTINCT_PER_BUCKET + 2 * 90  # two decades of 2-digit bins
    assert statistic(samples, "SampleCount") == 5_000
    exact = sorted(values)[int(0.95 * len(values)) - 1]
    assert abs(statistic(samples, "p95") - exact) / exact <= 0.05


def test_few_distinct_values_stay_exact_and_a_new_second_starts_a_new_bucket():
    store = MetricStore(clock=lambda: T0 + 2)
    store.add(NS, "M", STAGE, [float(v) for v in range(1, 101)], timestamp=T0)
    store.add(NS, "M", STAGE, [7.0], timestamp=T0 + 1.5)
    first = store.samples(NS, "M", STAGE, T0, T0 + 1)
    assert statistic(first, "p95") == 95 and len(first) == 100
    assert [s.value for s in store.samples(NS, "M", STAGE, T0 + 1, T0 + 2)] == [7.0]


def test_late_values_keep_their_place():
    store = MetricStore(clock=lambda: T0 + 10)
    store.add(NS, "M", STAGE, [1.0], timestamp=T0 + 5)
    store.add(NS, "M", STAGE, [2.0], timestamp=T0 + 1)  # an earlier second
    store.add(NS, "M", STAGE, [1.0], timestamp=T0 + 5.5)  # merges with the first
    samples = store.samples(NS, "M", STAGE, T0, T0 + 10)
    assert [(s.timestamp, s.value, s.count) for s in samples] == [
        (T0 + 1, 2.0, 1.0),
        (T0 + 5, 1.0, 2.0),
    ]


def test_aggregate_sends_one_statistic_set_per_metric_dimensions_unit_and_second():
    at = datetime.fromtimestamp(T0 + 0.25, UTC)
    dims = [{"Name": "Stage", "Value": "dev"}]
    data = [
        {
            "MetricName": "Invocations",
            "Dimensions": dims,
            "Timestamp": at,
            "Value": 1.0,
            "Unit": "Count",
        }
    ] * 500 + [
        {
            "MetricName": "Duration",
            "Dimensions": dims,
            "Timestamp": at,
            "Values": [3.0, 9.0],
            "Counts": [2.0, 1.0],
            "Unit": "Milliseconds",
        },
    ]
    out = {d["MetricName"]: d for d in aggregate(data, now=T0)}
    assert out["Invocations"]["StatisticValues"] == {
        "SampleCount": 500.0,
        "Sum": 500.0,
        "Minimum": 1.0,
        "Maximum": 1.0,
    }
    assert out["Duration"]["StatisticValues"] == {
        "SampleCount": 3.0,
        "Sum": 15.0,
        "Minimum": 3.0,
        "Maximum": 9.0,
    }
    assert out["Duration"]["Timestamp"] == datetime.fromtimestamp(T0, UTC)


def test_the_aggregating_client_keeps_raw_values_for_percentiles():
    sent = []
    store = MetricStore(clock=lambda: T0 + 1)
    client = AggregatingCloudWatch(lambda **kw: sent.append(kw), store)
    client.put_metric_data(
        Namespace=NS,
        MetricData=[
            {
                "MetricName": "HeartbeatLatency",
                "Dimensions": [{"Name": "Stage", "Value": "dev"}],
                "Timestamp": datetime.fromtimestamp(T0, UTC),
                "Value": float(v),
            }
            for v in range(1, 21)
        ],
    )
    assert len(sent) == 1 and len(sent[0]["MetricData"]) == 1
    samples = store.samples(NS, "HeartbeatLatency", STAGE, T0, T0 + 1)
    assert statistic(samples, "p95") == 19
