"""The AWS/Lambda metrics the local stack publishes for its functions, as Lambda does.

Per invocation, by ``FunctionName``: ``Invocations`` (1), ``Errors`` (1 when the handler
raised or timed out, else 0) and ``Duration`` (ms). They are buffered and sent to the
embedded CloudWatch in one ``PutMetricData`` per second, off the request path, so the
functions' Errors alarms and the dashboard's Lambda widgets have their data locally too.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from local import console
from local.events import function_name
from runtime.alarms import FUNCTION_NAME, LAMBDA_NAMESPACE
from runtime.routes import Function

FLUSH_INTERVAL_S = 1.0
_MAX_DATUMS = 1000  # PutMetricData's limit per call


class LambdaMetrics:
    """Buffers each invocation's datums; a daemon thread flushes them every second."""

    def __init__(self, stage: str, put_metric_data: Callable[..., Any]) -> None:
        self.stage = stage
        self._put = put_metric_data
        self._pending: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="lambda-metrics", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
        self.flush()

    def observe(self, function: Function, duration_s: float, failed: bool) -> None:
        """Record one invocation of ``function`` (cheap: called on the event loop)."""
        now = datetime.now(UTC)
        dimensions = [{"Name": FUNCTION_NAME, "Value": function_name(self.stage, function)}]
        datums = [
            ("Invocations", 1.0, "Count"),
            ("Errors", 1.0 if failed else 0.0, "Count"),
            ("Duration", round(duration_s * 1000, 3), "Milliseconds"),
        ]
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
                self._put(
                    Namespace=LAMBDA_NAMESPACE, MetricData=pending[start : start + _MAX_DATUMS]
                )
            except Exception as error:  # embedded AWS trouble must not stop the stack
                console.say(f"! could not publish AWS/Lambda metrics: {error!r}")

    def _run(self) -> None:
        while not self._stop.wait(FLUSH_INTERVAL_S):
            self.flush()
