"""The raw metric values the local stack has seen, for alarms and the console.

The embedded CloudWatch (moto) keeps datapoints but computes no percentiles, so every value
that reaches it is also kept here, raw, with its timestamp: a p95 is then computed from the
values themselves, as CloudWatch does. A series is one metric with one exact dimension set
(CloudWatch's identity of a metric); values older than ``retention_s`` are dropped.

What is kept grows with time, not with requests: within one ``resolution_s`` bucket (a
second; less at alarm time scales over 60) of a series, equal values are one sample with a
count (a flood of heartbeats is a few samples per second per count metric, not one per
request); past ``DISTINCT_PER_BUCKET`` distinct values in a bucket, a new value is counted in
a bin of two significant digits (at most 5 % wide; SampleCount stays exact, a percentile of
that second is then read from the bins, as CloudWatch's own percentiles are approximations).
Periods aligned on the bucket grid (``align``) see exactly their samples.
"""

from __future__ import annotations

import bisect
import math
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

DEFAULT_RETENTION_S = 3 * 3600.0
DEFAULT_RESOLUTION_S = 1.0
DISTINCT_PER_BUCKET = 100
# Bound on one series, so a runaway client cannot grow the process without limit.
MAX_SAMPLES_PER_SERIES = 200_000

SeriesKey = tuple[str, str, frozenset[tuple[str, str]]]


@dataclass(frozen=True, slots=True)
class Sample:
    timestamp: float  # epoch seconds
    value: float
    count: float = 1.0


def series_key(namespace: str, metric: str, dimensions: Mapping[str, str]) -> SeriesKey:
    return (namespace, metric, frozenset((str(k), str(v)) for k, v in dimensions.items()))


class _Bucket:
    """The newest bucket of one series: where it starts in the series, its values' offsets."""

    __slots__ = ("first", "index", "offsets", "ordered")

    def __init__(self, index: int, first: int) -> None:
        self.index = index
        self.first = first
        self.offsets: dict[float, int] = {}
        self.ordered: list[float] = []  # the distinct values, sorted


class MetricStore:
    """Thread-safe, in-memory, time-ordered samples per series (see the module's docstring)."""

    def __init__(
        self,
        retention_s: float = DEFAULT_RETENTION_S,
        clock: Callable[[], float] = time.time,
        resolution_s: float = DEFAULT_RESOLUTION_S,
    ) -> None:
        self.retention_s = retention_s
        self.clock = clock
        self.resolution_s = resolution_s
        # Each series sorted by timestamp (values arrive nearly in order: appends, mostly).
        self._series: dict[SeriesKey, list[Sample]] = {}
        self._buckets: dict[SeriesKey, _Bucket] = {}
        self._lock = threading.Lock()

    def align(self, at: float) -> float:
        """``at`` rounded down to the bucket grid (where a period should start)."""
        return math.floor(at / self.resolution_s) * self.resolution_s

    def add(
        self,
        namespace: str,
        metric: str,
        dimensions: Mapping[str, str],
        values: Sequence[float],
        counts: Sequence[float] | None = None,
        timestamp: float | None = None,
    ) -> None:
        """Record ``values`` (each seen ``counts[i]`` times, default once) at ``timestamp``."""
        if counts is not None and len(counts) != len(values):
            raise ValueError("values and counts differ in length")
        at = self.clock() if timestamp is None else timestamp
        samples = [
            Sample(at, float(v), float(counts[i]) if counts is not None else 1.0)
            for i, v in enumerate(values)
            if math.isfinite(float(v))
        ]
        if not samples:
            return
        key = series_key(namespace, metric, dimensions)
        with self._lock:
            series = self._series.setdefault(key, [])
            for sample in samples:
                self._insert(key, series, sample)
            self._prune(key, series, self.clock())

    def _insert(self, key: SeriesKey, series: list[Sample], sample: Sample) -> None:
        index = math.floor(sample.timestamp / self.resolution_s)
        bucket = self._buckets.get(key)
        late = bool(series) and sample.timestamp < series[-1].timestamp
        if late and (bucket is None or index < bucket.index):  # kept as it is, in its place
            bisect.insort_right(series, sample, key=_timestamp)
            if bucket is not None:
                bucket.first += 1  # it went before the newest bucket
            return
        if bucket is None or index > bucket.index:
            bucket = self._buckets[key] = _Bucket(index, len(series))
        value = sample.value
        if value not in bucket.offsets and len(bucket.ordered) >= DISTINCT_PER_BUCKET:
            value = _binned(value)
        offset = bucket.offsets.get(value)
        if offset is not None:
            kept = series[bucket.first + offset]
            series[bucket.first + offset] = Sample(
                kept.timestamp, kept.value, kept.count + sample.count
            )
            return
        bucket.offsets[value] = len(series) - bucket.first
        bisect.insort(bucket.ordered, value)
        if late:  # same bucket, a little earlier than the newest: appended at its time
            sample = Sample(series[-1].timestamp, sample.value, sample.count)
        series.append(sample)

    def add_metric_data(self, namespace: str, metric_data: Iterable[Mapping[str, Any]]) -> None:
        """Record a PutMetricData request's ``MetricData`` (Value or Values/Counts)."""
        for datum in metric_data:
            dimensions = {d["Name"]: d["Value"] for d in datum.get("Dimensions") or ()}
            if "Values" in datum:
                values, counts = list(datum["Values"]), datum.get("Counts")
            elif "Value" in datum:
                values, counts = [datum["Value"]], None
            else:  # StatisticValues only: no raw values to keep
                continue
            stamp = datum.get("Timestamp")
            timestamp = stamp.timestamp() if isinstance(stamp, datetime) else None
            self.add(namespace, datum["MetricName"], dimensions, values, counts, timestamp)

    def samples(
        self, namespace: str, metric: str, dimensions: Mapping[str, str], start: float, end: float
    ) -> list[Sample]:
        """The samples of one series with ``start <= timestamp < end``, oldest first."""
        with self._lock:
            series = self._series.get(series_key(namespace, metric, dimensions))
            if not series:
                return []
            # Expired samples may wait for the next chunked prune: never read them.
            start = max(start, self.clock() - self.retention_s)
            low = bisect.bisect_left(series, start, key=_timestamp)
            high = bisect.bisect_left(series, end, lo=low, key=_timestamp)
            return series[low:high]

    def series(self) -> list[SeriesKey]:
        """Every series seen (namespace, metric, dimensions)."""
        with self._lock:
            return list(self._series)

    def _prune(self, key: SeriesKey, series: list[Sample], now: float) -> None:
        """Drop expired samples, and the oldest beyond the bound; in chunks, since each
        deletion moves the whole list."""
        expired = bisect.bisect_left(series, now - self.retention_s, key=_timestamp)
        excess = len(series) - MAX_SAMPLES_PER_SERIES
        if excess > 0 or expired > max(64, len(series) // 8):
            dropped = max(expired, excess)
            del series[:dropped]
            bucket = self._buckets.get(key)
            if bucket is not None:
                bucket.first -= dropped
                if bucket.first < 0:  # the newest bucket itself went: start afresh
                    del self._buckets[key]


def _timestamp(sample: Sample) -> float:
    return sample.timestamp


def _binned(value: float) -> float:
    """``value`` to two significant digits (a bin at most 5 % wide): past
    ``DISTINCT_PER_BUCKET`` distinct values in a second, values share these bins, so a
    bucket holds at most ~90 more per decade of values."""
    if value == 0 or not math.isfinite(value):
        return value
    digits = 1 - math.floor(math.log10(abs(value)))
    return round(value, digits)


# --- statistics, as CloudWatch computes them -----------------------------------------------------

STATISTICS = ("SampleCount", "Sum", "Average", "Minimum", "Maximum")


def statistic(samples: Sequence[Sample], name: str) -> float | None:
    """``name`` (a CloudWatch statistic or a percentile like ``p95``) of ``samples``.

    None when there are no samples: CloudWatch then has no datapoint for the period.
    Percentiles use the nearest-rank method over the raw values (each counted ``count`` times).
    """
    if not samples:
        return None
    if name == "SampleCount":
        return sum(s.count for s in samples)
    if name == "Sum":
        return sum(s.value * s.count for s in samples)
    if name == "Average":
        total = sum(s.count for s in samples)
        return sum(s.value * s.count for s in samples) / total if total else None
    if name == "Minimum":
        return min(s.value for s in samples)
    if name == "Maximum":
        return max(s.value for s in samples)
    if name.startswith("p"):
        return percentile(samples, float(name[1:]))
    raise ValueError(f"unknown statistic {name!r} (use {', '.join(STATISTICS)} or pNN)")


def percentile(samples: Sequence[Sample], p: float) -> float:
    """The nearest-rank ``p``-th percentile (0 < p ≤ 100) of weighted samples."""
    if not 0 < p <= 100:
        raise ValueError(f"percentile must be in (0, 100], got {p}")
    ordered = sorted(samples, key=lambda s: s.value)
    total = sum(s.count for s in ordered)
    rank = math.ceil(p / 100 * total)
    seen = 0.0
    for sample in ordered:
        seen += sample.count
        if seen >= rank:
            return sample.value
    return ordered[-1].value
