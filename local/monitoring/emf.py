"""What CloudWatch Logs does with Embedded Metric Format lines, for the local stack and tests.

The functions publish their metrics as EMF documents inside their JSON log lines
(``metricsTransport: emf``). CloudWatch Logs validates each such line against the EMF
specification, drops invalid ones, and publishes every metric of every directive under each of
its dimension sets. This module does the same:

- ``problems(document)`` checks one document against the specification (required members and
  their types, the limits, every referenced dimension and metric a top-level member);
- ``metric_data(document)`` turns a valid document into PutMetricData ``MetricData``;
- ``EmfPublisher`` extracts from log lines (the local stack feeds it the stdout lines with an
  ``_aws`` block, through ``local.functions.log_tap``) on a thread of its own and publishes to a
  CloudWatch endpoint in batches, so a function's request path never waits for it.

Specification: https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/CloudWatch_Embedded_Metric_Format_Specification.html
"""

from __future__ import annotations

import json
import queue
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

MAX_EVENT_BYTES = 256 * 1024  # a CloudWatch Logs event
MAX_METRICS_PER_DIRECTIVE = 100
MAX_VALUES_PER_METRIC = 100
MAX_DIMENSIONS_PER_SET = 30
MAX_NAME_LENGTH = 255  # namespace and metric names
MAX_DIMENSION_VALUE_LENGTH = 1024
# PutMetricData: at most 1000 datums per call.
MAX_DATUMS_PER_CALL = 1000
STORAGE_RESOLUTIONS = (1, 60)
UNITS = frozenset(
    {
        "Seconds", "Microseconds", "Milliseconds", "Bytes", "Kilobytes", "Megabytes",
        "Gigabytes", "Terabytes", "Bits", "Kilobits", "Megabits", "Gigabits", "Terabits",
        "Percent", "Count", "Bytes/Second", "Kilobytes/Second", "Megabytes/Second",
        "Gigabytes/Second", "Terabytes/Second", "Bits/Second", "Kilobits/Second",
        "Megabits/Second", "Gigabits/Second", "Terabits/Second", "Count/Second", "None",
    }
)  # fmt: skip
_DIRECTIVE_MEMBERS = {"Namespace", "Dimensions", "Metrics"}
_DEFINITION_MEMBERS = {"Name", "Unit", "StorageResolution"}
_METADATA_REQUIRED = {"Timestamp", "CloudWatchMetrics"}
MARKER = '"_aws"'


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _name_problem(what: str, value: Any) -> str | None:
    if not isinstance(value, str) or not value:
        return f"{what} must be a non-empty string, got {value!r}"
    if len(value) > MAX_NAME_LENGTH:
        return f"{what} is longer than {MAX_NAME_LENGTH} characters"
    return None


def problems(document: Any, *, line_bytes: int | None = None) -> list[str]:
    """Why ``document`` is not a valid EMF document (an empty list when it is)."""
    if not isinstance(document, dict):
        return ["the root node must be a JSON object"]
    found: list[str] = []
    if line_bytes is not None and line_bytes > MAX_EVENT_BYTES:
        found.append(f"the log event is {line_bytes} bytes, over {MAX_EVENT_BYTES}")
    metadata = document.get("_aws")
    if not isinstance(metadata, dict):
        return [*found, "_aws must be an object"]
    missing = _METADATA_REQUIRED - set(metadata)
    if missing:
        found.append(f"_aws lacks {sorted(missing)}")
    if "Timestamp" in metadata and not (
        isinstance(metadata["Timestamp"], int)
        and not isinstance(metadata["Timestamp"], bool)
        and metadata["Timestamp"] >= 0
    ):
        found.append("_aws.Timestamp must be a non-negative integer (epoch milliseconds)")
    directives = metadata.get("CloudWatchMetrics")
    if "CloudWatchMetrics" in metadata and not isinstance(directives, list):
        found.append("_aws.CloudWatchMetrics must be an array")
        directives = []
    for i, directive in enumerate(directives or []):
        found += [f"CloudWatchMetrics[{i}]: {p}" for p in _directive_problems(directive, document)]
    return found


def _directive_problems(directive: Any, document: dict[str, Any]) -> list[str]:
    if not isinstance(directive, dict):
        return ["a MetricDirective must be an object"]
    found: list[str] = []
    extra = set(directive) - _DIRECTIVE_MEMBERS
    if extra:
        found.append(f"unexpected members {sorted(extra)}")
    missing = _DIRECTIVE_MEMBERS - set(directive)
    if missing:
        found.append(f"lacks {sorted(missing)}")
    namespace = directive.get("Namespace")
    if "Namespace" in directive and (problem := _name_problem("Namespace", namespace)):
        found.append(problem)
    dimension_sets = directive.get("Dimensions", [])
    if not isinstance(dimension_sets, list):
        found.append("Dimensions must be an array of DimensionSets")
        dimension_sets = []
    for dims in dimension_sets:
        if not isinstance(dims, list) or not all(isinstance(d, str) for d in dims):
            found.append(f"a DimensionSet must be an array of strings, got {dims!r}")
            continue
        if len(dims) > MAX_DIMENSIONS_PER_SET:
            found.append(f"a DimensionSet has {len(dims)} dimensions, over the limit")
        if len(set(dims)) != len(dims):
            found.append(f"DimensionSet {dims} repeats a dimension")
        for name in dims:
            value = document.get(name)
            if name not in document:
                found.append(f"dimension {name!r} is not a member of the root node")
            elif not isinstance(value, str) or not value:
                found.append(f"dimension {name!r} must be a non-empty string, got {value!r}")
            elif len(value) > MAX_DIMENSION_VALUE_LENGTH:
                found.append(f"dimension {name!r} is over {MAX_DIMENSION_VALUE_LENGTH} characters")
    metrics = directive.get("Metrics", [])
    if not isinstance(metrics, list):
        return [*found, "Metrics must be an array of MetricDefinitions"]
    if len(metrics) > MAX_METRICS_PER_DIRECTIVE:
        found.append(f"{len(metrics)} metrics, over {MAX_METRICS_PER_DIRECTIVE}")
    for definition in metrics:
        found += _definition_problems(definition, document)
    return found


def _definition_problems(definition: Any, document: dict[str, Any]) -> list[str]:
    if not isinstance(definition, dict):
        return ["a MetricDefinition must be an object"]
    found: list[str] = []
    extra = set(definition) - _DEFINITION_MEMBERS
    if extra:
        found.append(f"MetricDefinition has unexpected members {sorted(extra)}")
    name = definition.get("Name")
    if problem := _name_problem("MetricDefinition.Name", name):
        return [*found, problem]
    if "Unit" in definition and definition["Unit"] not in UNITS:
        found.append(f"metric {name!r} has unit {definition['Unit']!r}, not a CloudWatch unit")
    if (
        "StorageResolution" in definition
        and definition["StorageResolution"] not in STORAGE_RESOLUTIONS
    ):
        found.append(f"metric {name!r}: StorageResolution must be 1 or 60")
    if name not in document:
        return [*found, f"metric {name!r} is not a member of the root node"]
    value = document[name]
    if isinstance(value, list):
        if not value or not all(_is_number(v) for v in value):
            found.append(f"metric {name!r} must be a number or a non-empty array of numbers")
        elif len(value) > MAX_VALUES_PER_METRIC:
            found.append(f"metric {name!r} has {len(value)} values, over {MAX_VALUES_PER_METRIC}")
    elif not _is_number(value):
        found.append(f"metric {name!r} must be a number or an array of numbers, got {value!r}")
    return found


def metric_data(document: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """(namespace, PutMetricData datum) for every metric × dimension set of a valid document."""
    timestamp = datetime.fromtimestamp(document["_aws"]["Timestamp"] / 1000, UTC)
    data: list[tuple[str, dict[str, Any]]] = []
    for directive in document["_aws"]["CloudWatchMetrics"]:
        for definition in directive["Metrics"]:
            raw = document[definition["Name"]]
            distinct: dict[float, int] = defaultdict(int)
            for value in raw if isinstance(raw, list) else [raw]:
                distinct[float(value)] += 1
            for dims in directive["Dimensions"]:
                datum = {
                    "MetricName": definition["Name"],
                    "Dimensions": [{"Name": d, "Value": document[d]} for d in dims],
                    "Timestamp": timestamp,
                    "Values": list(distinct),
                    "Counts": [float(c) for c in distinct.values()],
                    "Unit": definition.get("Unit", "None"),
                }
                if definition.get("StorageResolution") == 1:
                    datum["StorageResolution"] = 1
                data.append((directive["Namespace"], datum))
    return data


def parse_line(line: str) -> tuple[dict[str, Any] | None, list[str]]:
    """(document, problems) for a log line with an ``_aws`` member; (None, []) for other lines."""
    if MARKER not in line:
        return None, []
    try:
        document = json.loads(line)
    except ValueError:
        return None, []  # not JSON: CloudWatch Logs keeps it as a plain log event
    if not isinstance(document, dict) or "_aws" not in document:
        return None, []
    return document, problems(document, line_bytes=len(line.encode("utf-8", "replace")))


class EmfPublisher:
    """Extracts EMF from log lines and publishes the metrics in batches, off the request path.

    ``submit`` only enqueues the line. A worker thread parses, validates and publishes what
    has arrived every ``interval_s`` (or as soon as a full PutMetricData's worth is waiting).
    """

    def __init__(
        self,
        cloudwatch: Any,
        *,
        interval_s: float = 0.2,
        report: Callable[[str], None] = lambda message: None,
    ) -> None:
        self._cloudwatch = cloudwatch
        self._interval_s = interval_s
        self._report = report
        self._lines: queue.Queue[str | None] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._pending = 0
        self.stats = {"documents": 0, "rejected": 0, "datums": 0, "calls": 0, "failedCalls": 0}

    def start(self) -> EmfPublisher:
        self._thread = threading.Thread(target=self._run, name="emf-publisher", daemon=True)
        self._thread.start()
        return self

    def submit(self, line: str) -> None:
        with self._lock:
            self._pending += 1
        self._lines.put(line)

    def flush(self, timeout_s: float = 10.0) -> bool:
        """Wait until every submitted line is published (or rejected); True if it was."""
        with self._idle:
            return self._idle.wait_for(lambda: self._pending == 0, timeout_s)

    def stop(self) -> None:
        if self._thread is None:
            return
        self._lines.put(None)
        self._thread.join(30)
        self._thread = None

    def _run(self) -> None:
        stopping = False
        while not stopping:
            try:
                first = self._lines.get(timeout=1.0)
            except queue.Empty:
                continue
            batch = [] if first is None else [first]
            stopping = first is None
            deadline = time.monotonic() + self._interval_s
            while not stopping and len(batch) < MAX_DATUMS_PER_CALL:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                try:
                    line = self._lines.get(timeout=left)
                except queue.Empty:
                    break
                stopping = line is None
                if line is not None:
                    batch.append(line)
            self._publish(batch)

    def _publish(self, lines: list[str]) -> None:
        by_namespace: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for line in lines:
            document, found = parse_line(line)
            if document is None:
                continue
            if found:
                self.stats["rejected"] += 1
                self._report(f"! EMF line dropped, as CloudWatch Logs would: {'; '.join(found)}")
                continue
            self.stats["documents"] += 1
            for namespace, datum in metric_data(document):
                by_namespace[namespace].append(datum)
        try:
            for namespace, data in by_namespace.items():
                for start in range(0, len(data), MAX_DATUMS_PER_CALL):
                    chunk = data[start : start + MAX_DATUMS_PER_CALL]
                    try:
                        self._cloudwatch.put_metric_data(Namespace=namespace, MetricData=chunk)
                    except Exception as error:
                        self.stats["failedCalls"] += 1
                        self._report(f"! publishing {len(chunk)} extracted metrics failed: {error}")
                        continue
                    self.stats["calls"] += 1
                    self.stats["datums"] += len(chunk)
        finally:
            with self._idle:
                self._pending -= len(lines)
                self._idle.notify_all()
