"""The AWS/Lambda metrics the local stack publishes for its functions, as Lambda does.

Per invocation, by ``FunctionName``: ``Invocations`` (1), ``Errors`` (1 when the handler
raised or timed out, else 0), ``Throttles`` (0: the local invoker queues an invocation for a
free worker and never refuses one) and ``Duration`` (ms). When a handler starts,
``ConcurrentExecutions`` gets the number of that function's invocations then running, so its
``Maximum`` over a period is the period's peak, as Lambda reports it. They are buffered and
sent to the embedded CloudWatch once a second, off the request path, so the functions'
alarms and the dashboard's Lambda widgets have their data locally too.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from local.aws.metric_buffer import BufferedMetrics
from local.functions.events import function_name
from runtime.alarms import FUNCTION_NAME, LAMBDA_NAMESPACE
from runtime.routes import Function


class LambdaMetrics(BufferedMetrics):
    def __init__(self, stage: str, put_metric_data: Callable[..., Any]) -> None:
        super().__init__(LAMBDA_NAMESPACE, put_metric_data, name="lambda-metrics")
        self.stage = stage

    def _dimensions(self, function: Function) -> list[dict[str, str]]:
        return [{"Name": FUNCTION_NAME, "Value": function_name(self.stage, function)}]

    def observe(self, function: Function, duration_s: float, failed: bool) -> None:
        """Record one finished invocation of ``function`` (cheap: called on the event loop)."""
        self.record(
            self._dimensions(function),
            (
                ("Invocations", 1.0, "Count"),
                ("Errors", 1.0 if failed else 0.0, "Count"),
                ("Throttles", 0.0, "Count"),
                ("Duration", round(duration_s * 1000, 3), "Milliseconds"),
            ),
        )

    def running(self, function: Function, in_flight: int) -> None:
        """``function`` has ``in_flight`` invocations running (one has just started)."""
        self.record(
            self._dimensions(function), (("ConcurrentExecutions", float(in_flight), "Count"),)
        )
