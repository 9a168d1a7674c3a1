"""The raw metric values the local stack has seen, for alarms and the console.

The embedded CloudWatch (moto) keeps datapoints but computes no percentiles, so every value
that reaches it is also kept here, raw, with its timestamp: a p95 is then computed from the
values themselves, as CloudWatch does. A series is one metric with one exact dimension set
(CloudWatch's identity of a metric); values older than ``retention_s`` are dropped.
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
# Bound on one series, so a runaway client cannot grow the process without limit.
MAX_SAMPLES_PER_SERIES = 200_000

SeriesKey = tuple[str, str, frozenset[tuple[str, str]]]


@dataclass(frozen=True)
class Sample:
    timestamp: float  # epoch seconds
    value: float
    count: float = 1.0


def series_key(namespace: str, metric: str, dimensions: Mapping[str, str]) -> SeriesKey:
    return (namespace, metric, frozenset((str(k), str(v)) for k, v in dimensions.items()))


class MetricStore:
    """Thread-safe, in-memory, time-ordered raw samples per series."""

    def __init__(
        self,
        retention_s: float = DEFAULT_RETENTION_S,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.retention_s = retention_s
        self.clock = clock
        # Each series sorted by timestamp (values arrive nearly in order: appends, mostly).
        self._series: dict[SeriesKey, list[Sample]] = {}
        self._lock = threading.Lock()

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
                if not series or sample.timestamp >= series[-1].timestamp:
                    series.append(sample)
                else:
                    bisect.insort_right(series, sample, key=_timestamp)
            self._prune(series, self.clock())

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
            low = bisect.bisect_left(series, start, key=_timestamp)
            high = bisect.bisect_left(series, end, lo=low, key=_timestamp)
            return series[low:high]

    def series(self) -> list[SeriesKey]:
        """Every series seen (namespace, metric, dimensions)."""
        with self._lock:
            return list(self._series)

    def _prune(self, series: list[Sample], now: float) -> None:
        """Drop expired samples, and the oldest beyond the bound; in chunks, since each
        deletion moves the whole list."""
        expired = bisect.bisect_left(series, now - self.retention_s, key=_timestamp)
        excess = len(series) - MAX_SAMPLES_PER_SERIES
        if excess > 0 or expired > max(64, len(series) // 8):
            del series[: max(expired, excess)]


def _timestamp(sample: Sample) -> float:
    return sample.timestamp


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
