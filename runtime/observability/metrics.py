"""Metrics buffered per invocation and published once, at its end, by one of two transports.

Only metrics declared in ``runtime.metric_names`` can be recorded, and each value is published
under every declared dimension set: ``Stage`` always, never a high-cardinality value.

- ``emf`` (default): ``emf_documents`` renders the buffer as CloudWatch Embedded Metric Format
  documents, which the invocation writes as JSON log lines; CloudWatch Logs extracts the
  metrics. No API call, nothing added to the reply's latency.
- ``api``: ``metric_data`` renders it as the ``MetricData`` of one PutMetricData call.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from runtime.metric_names import STAGE, MetricSpec

# PutMetricData accepts at most 1000 datums and 150 values per datum per call.
_MAX_DATUMS = 1000
_MAX_VALUES = 150
# EMF: at most 100 metrics per directive and 100 values per metric; a dimension set holds
# at most 30 dimensions (ours hold two at most).
EMF_MAX_METRICS = 100
EMF_MAX_VALUES = 100
EMF_MAX_DIMENSIONS = 30

DimensionValues = tuple[tuple[str, str], ...]


@dataclass
class _EmfLine:
    """One EMF document being packed: one value per dimension name, one entry per metric."""

    dimensions: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, tuple[MetricSpec, list[float]]] = field(default_factory=dict)

    def fits(self, spec: MetricSpec, dimensions: dict[str, str]) -> bool:
        if spec.name in self.metrics:
            return False
        if any(self.dimensions.get(name, value) != value for name, value in dimensions.items()):
            return False
        same_directive = sum(
            1 for other, _ in self.metrics.values() if other.dimension_sets == spec.dimension_sets
        )
        return same_directive < EMF_MAX_METRICS

    def document(self, namespace: str, timestamp_ms: int) -> dict[str, Any]:
        directives: dict[tuple[tuple[str, ...], ...], list[dict[str, str]]] = {}
        members: dict[str, Any] = dict(self.dimensions)
        for name, (spec, values) in self.metrics.items():
            directives.setdefault(spec.dimension_sets, []).append({"Name": name, "Unit": spec.unit})
            compact = [int(v) if v.is_integer() else v for v in values]
            members[name] = compact[0] if len(compact) == 1 else compact
        return {
            "_aws": {
                "Timestamp": timestamp_ms,
                "CloudWatchMetrics": [
                    {
                        "Namespace": namespace,
                        "Dimensions": [list(dims) for dims in dimension_sets],
                        "Metrics": metrics,
                    }
                    for dimension_sets, metrics in directives.items()
                ],
            },
            **members,
        }


class MetricsBuffer:
    """Collects values for one invocation; the transport publishes them once."""

    def __init__(self, namespace: str, stage: str) -> None:
        self.namespace = namespace
        self.stage = stage
        # (metric, every dimension value it was recorded with) → values, in recording order
        self._values: dict[tuple[MetricSpec, DimensionValues], list[float]] = defaultdict(list)

    def add(self, spec: MetricSpec, value: float, **dimensions: str) -> None:
        """Record ``value`` under every dimension set of ``spec``.

        ``dimensions`` must supply exactly the non-Stage dimensions the spec declares.
        """
        declared = {d for dims in spec.dimension_sets for d in dims} - {STAGE}
        if set(dimensions) != declared:
            raise ValueError(
                f"{spec.name} takes dimensions {sorted(declared)}, got {sorted(dimensions)}"
            )
        values = {STAGE: self.stage, **{k: str(v) for k, v in dimensions.items()}}
        self._values[(spec, tuple(sorted(values.items())))].append(float(value))

    def __len__(self) -> int:
        """Values buffered, counted once per dimension set they are published under."""
        return sum(len(v) * len(spec.dimension_sets) for (spec, _), v in self._values.items())

    def metric_data(self) -> list[dict[str, Any]]:
        """The buffered values as PutMetricData ``MetricData`` (values aggregated per datum)."""
        now = datetime.now(UTC)
        per_datum: dict[tuple[str, str, DimensionValues], list[float]] = defaultdict(list)
        for (spec, recorded), values in self._values.items():
            by_name = dict(recorded)
            for dims in spec.dimension_sets:
                key = (spec.name, spec.unit, tuple((d, by_name[d]) for d in dims))
                per_datum[key].extend(values)
        data: list[dict[str, Any]] = []
        for (name, unit, dimensions), values in per_datum.items():
            for start in range(0, len(values), _MAX_VALUES):
                distinct: dict[float, int] = defaultdict(int)
                for v in values[start : start + _MAX_VALUES]:
                    distinct[v] += 1
                data.append(
                    {
                        "MetricName": name,
                        "Unit": unit,
                        "Timestamp": now,
                        "Dimensions": [{"Name": n, "Value": v} for n, v in dimensions],
                        "Values": list(distinct),
                        "Counts": [float(c) for c in distinct.values()],
                    }
                )
        return data[:_MAX_DATUMS]

    def emf_documents(self, timestamp_ms: int | None = None) -> list[dict[str, Any]]:
        """The buffered values as few EMF documents as EMF's rules allow (usually one).

        One document names each dimension once, so values recorded with different values of
        the same dimension (two Operations, say) go to separate documents, as do values
        beyond EMF's 100 per metric. Each directive lists the metrics that share a tuple of
        dimension sets; CloudWatch Logs publishes every metric of a directive under each set.
        """
        if timestamp_ms is None:
            timestamp_ms = int(datetime.now(UTC).timestamp() * 1000)
        lines: list[_EmfLine] = []
        for (spec, recorded), values in self._values.items():
            dimensions = dict(recorded)
            for start in range(0, len(values), EMF_MAX_VALUES):
                chunk = values[start : start + EMF_MAX_VALUES]
                line = next((line for line in lines if line.fits(spec, dimensions)), None)
                if line is None:
                    line = _EmfLine()
                    lines.append(line)
                line.dimensions.update(dimensions)
                line.metrics[spec.name] = (spec, chunk)
        return [line.document(self.namespace, timestamp_ms) for line in lines]

    def clear(self) -> None:
        self._values.clear()
