"""Datums buffered in memory and sent to the embedded CloudWatch once a second.

Recording is a list append under a lock (cheap enough for the event loop); a daemon thread
sends what accumulated in ``PutMetricData`` calls of at most 1,000 datums, off the request
path. The local stack's AWS/Lambda and AWS/ApiGateway metrics go this way.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

from local.common import console

FLUSH_INTERVAL_S = 1.0
_MAX_DATUMS = 1000  # PutMetricData's limit per call


class BufferedMetrics:
    """One namespace's datums, flushed every ``FLUSH_INTERVAL_S`` by a daemon thread."""

    def __init__(self, namespace: str, put_metric_data: Callable[..., Any], name: str) -> None:
        self.namespace = namespace
        self._put = put_metric_data
        self._pending: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
        self.flush()

    def record(
        self, dimensions: list[dict[str, str]], datums: Iterable[tuple[str, float, str]]
    ) -> None:
        """Buffer ``(metric, value, unit)`` datums with ``dimensions``, stamped now."""
        now = datetime.now(UTC)
        with self._lock:
            self._pending.extend(
                {"MetricName": name, "Dimensions": dimensions, "Timestamp": now,
                 "Value": value, "Unit": unit}
                for name, value, unit in datums
            )  # fmt: skip

    def flush(self) -> None:
        with self._lock:
            pending, self._pending = self._pending, []
        for start in range(0, len(pending), _MAX_DATUMS):
            try:
                self._put(Namespace=self.namespace, MetricData=pending[start : start + _MAX_DATUMS])
            except Exception as error:  # embedded AWS trouble must not stop the stack
                console.say(f"! could not publish {self.namespace} metrics: {error!r}")

    def _run(self) -> None:
        while not self._stop.wait(FLUSH_INTERVAL_S):
            self.flush()
