"""What reaches the embedded CloudWatch: statistic sets per second, raw values kept here.

moto keeps every datum it is given as an object of its own, forever (about 14 KB per
heartbeat through the stack: ~12 datums), and CloudWatch itself keeps metrics at 1-second
or 1-minute resolution, not per request. ``AggregatingCloudWatch`` stands in for a CloudWatch
client's ``put_metric_data``: it records the raw values in the stack's ``MetricStore`` (which
computes the percentiles moto cannot), then sends one ``StatisticValues`` datum (SampleCount,
Sum, Minimum, Maximum) per metric, dimension set, unit and second of the batch. The stack's
AWS/Lambda, AWS/ApiGateway and EMF metrics go this way; ``get_metric_statistics`` and
``list_metrics`` answer as before, with a fraction of the datums.

(The boto3 hook that records every PutMetricData of the process, for the functions' own
calls with ``metricsTransport: api``, sees statistic sets only here and records nothing, so
no value is counted twice.)
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from local.monitoring.metric_store import MetricStore

MAX_DATUMS_PER_CALL = 1000

_Key = tuple[str, tuple[tuple[str, str], ...], str, int, int]


def _values(datum: Mapping[str, Any]) -> list[tuple[float, float]]:
    """(value, count) pairs of a datum with ``Value`` or ``Values``/``Counts``."""
    if "Values" in datum:
        values = [float(v) for v in datum["Values"]]
        counts = [float(c) for c in datum.get("Counts") or [1.0] * len(values)]
        return [(v, c) for v, c in zip(values, counts, strict=False) if math.isfinite(v)]
    if "Value" in datum and math.isfinite(float(datum["Value"])):
        return [(float(datum["Value"]), 1.0)]
    return []


def aggregate(metric_data: Iterable[dict[str, Any]], now: float) -> list[dict[str, Any]]:
    """``metric_data`` as one statistic set per metric, dimension set, unit and second
    (statistic sets given are passed on as they are)."""
    sets: dict[_Key, list[float]] = {}
    passed: list[dict[str, Any]] = []
    for datum in metric_data:
        if "StatisticValues" in datum:
            passed.append(dict(datum))
            continue
        pairs = _values(datum)
        if not pairs:
            continue
        stamp = datum.get("Timestamp")
        at = stamp.timestamp() if isinstance(stamp, datetime) else now
        dimensions = tuple((str(d["Name"]), str(d["Value"])) for d in datum.get("Dimensions") or ())
        key = (
            str(datum["MetricName"]),
            dimensions,
            str(datum.get("Unit") or "None"),
            int(datum.get("StorageResolution") or 60),
            math.floor(at),
        )
        stats = sets.setdefault(key, [0.0, 0.0, math.inf, -math.inf])
        for value, count in pairs:
            stats[0] += count
            stats[1] += value * count
            stats[2] = min(stats[2], value)
            stats[3] = max(stats[3], value)
    out = passed
    for (name, dimensions, unit, resolution, second), (count, total, low, high) in sets.items():
        statistic_set: dict[str, Any] = {
            "MetricName": name,
            "Dimensions": [{"Name": k, "Value": v} for k, v in dimensions],
            "Timestamp": datetime.fromtimestamp(second, UTC),
            "StatisticValues": {
                "SampleCount": count,
                "Sum": total,
                "Minimum": low,
                "Maximum": high,
            },
            "Unit": unit,
        }
        if resolution == 1:
            statistic_set["StorageResolution"] = 1
        out.append(statistic_set)
    return out


class AggregatingCloudWatch:
    """A CloudWatch client's ``put_metric_data`` that keeps raw values in ``store`` and sends
    statistic sets (see the module's docstring)."""

    def __init__(
        self,
        put_metric_data: Callable[..., Any],
        store: MetricStore,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self._put = put_metric_data
        self.store = store
        self.clock = clock or store.clock

    def put_metric_data(self, *, Namespace: str, MetricData: list[dict[str, Any]]) -> None:
        self.store.add_metric_data(Namespace, MetricData)
        data = aggregate(MetricData, self.clock())
        for start in range(0, len(data), MAX_DATUMS_PER_CALL):
            self._put(Namespace=Namespace, MetricData=data[start : start + MAX_DATUMS_PER_CALL])
