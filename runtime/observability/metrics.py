"""Metrics buffered per invocation and published with one PutMetricData call at its end.

Only metrics declared in ``runtime.metric_names`` can be recorded, and each datum is
published once per declared dimension set: ``Stage`` always, never a high-cardinality value.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime
from typing import Any

from runtime.metric_names import STAGE, MetricSpec

# PutMetricData accepts at most 1000 datums and 150 values per datum per call.
_MAX_DATUMS = 1000
_MAX_VALUES = 150


class MetricsBuffer:
    """Collects values for one invocation; ``flush`` sends them in one call."""

    def __init__(self, namespace: str, stage: str) -> None:
        self.namespace = namespace
        self.stage = stage
        # (name, unit, dimensions) → values
        self._values: dict[tuple[str, str, tuple[tuple[str, str], ...]], list[float]] = defaultdict(
            list
        )

    def add(self, spec: MetricSpec, value: float, **dimensions: str) -> None:
        """Record ``value`` under every dimension set of ``spec``.

        ``dimensions`` must supply exactly the non-Stage dimensions the spec declares.
        """
        declared = {d for dims in spec.dimension_sets for d in dims} - {STAGE}
        if set(dimensions) != declared:
            raise ValueError(
                f"{spec.name} takes dimensions {sorted(declared)}, got {sorted(dimensions)}"
            )
        values = {STAGE: self.stage, **dimensions}
        for dims in spec.dimension_sets:
            key = (spec.name, spec.unit, tuple((d, str(values[d])) for d in dims))
            self._values[key].append(float(value))

    def __len__(self) -> int:
        return sum(len(v) for v in self._values.values())

    def metric_data(self) -> list[dict[str, Any]]:
        """The buffered values as PutMetricData ``MetricData`` (values aggregated per datum)."""
        now = datetime.now(UTC)
        data: list[dict[str, Any]] = []
        for (name, unit, dims), values in self._values.items():
            for start in range(0, len(values), _MAX_VALUES):
                chunk = values[start : start + _MAX_VALUES]
                distinct: dict[float, int] = defaultdict(int)
                for v in chunk:
                    distinct[v] += 1
                data.append(
                    {
                        "MetricName": name,
                        "Unit": unit,
                        "Timestamp": now,
                        "Dimensions": [{"Name": n, "Value": v} for n, v in dims],
                        "Values": list(distinct),
                        "Counts": [float(c) for c in distinct.values()],
                    }
                )
        return data[:_MAX_DATUMS]

    def clear(self) -> None:
        self._values.clear()
