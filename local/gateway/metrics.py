"""The AWS/ApiGateway metrics of a WebSocket API stage, as API Gateway publishes them.

By ``ApiId`` and ``Stage`` (the dimensions the dashboard draws; per-route metrics need
detailed metrics on AWS and are not emulated):

* ``ConnectCount``: 1 per request sent to the ``$connect`` integration.
* ``MessageCount``: 1 per message from or to a client (frames in, two-way replies,
  @connections posts).
* ``ClientError``: 1 per message the gateway refused before any integration ran (a binary
  frame, one over the size limit); 0 beside each integration call.
* ``ExecutionError``: 1 when calling the integration failed (the function raised, timed out
  or crashed), else 0.
* ``IntegrationError``: 1 when the integration answered a 4XX/5XX status, else 0.
* ``IntegrationLatency``: ms from invoking the integration to its answer.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from local.aws.metric_buffer import BufferedMetrics
from runtime.dashboard import API_GATEWAY_NAMESPACE, API_ID
from runtime.metric_names import STAGE


class ApiGatewayMetrics(BufferedMetrics):
    def __init__(self, api_id: str, stage: str, put_metric_data: Callable[..., Any]) -> None:
        super().__init__(API_GATEWAY_NAMESPACE, put_metric_data, name="apigateway-metrics")
        self.dimensions = [{"Name": API_ID, "Value": api_id}, {"Name": STAGE, "Value": stage}]

    def connect(self) -> None:
        self.record(self.dimensions, (("ConnectCount", 1.0, "Count"),))

    def message(self) -> None:
        self.record(self.dimensions, (("MessageCount", 1.0, "Count"),))

    def client_error(self) -> None:
        self.record(self.dimensions, (("ClientError", 1.0, "Count"),))

    def integration(self, latency_s: float, status: int | None) -> None:
        """One integration call: its answer's status, or None if calling it failed."""
        datums = [
            ("ClientError", 0.0, "Count"),
            ("ExecutionError", 1.0 if status is None else 0.0, "Count"),
            ("IntegrationError", 1.0 if status is not None and status >= 400 else 0.0, "Count"),
        ]
        if status is not None:
            datums.append(("IntegrationLatency", round(latency_s * 1000, 3), "Milliseconds"))
        self.record(self.dimensions, datums)
