"""The local stack's monitoring: metrics seen, alarms evaluated, faults injected.

* Every ``PutMetricData`` this process sends to the embedded CloudWatch (the functions' own
  with ``metricsTransport: api``, the EMF extraction's, the AWS/Lambda metrics) is also
  recorded, raw, in a ``MetricStore`` — moto keeps no percentiles. The stack's own go
  through ``AggregatingCloudWatch``: moto gets one statistic set per metric and second.
* The invoker reports each invocation as AWS/Lambda ``Invocations``/``Errors``/``Throttles``/
  ``Duration``, and each start as ``ConcurrentExecutions``; the gateway reports its
  AWS/ApiGateway metrics (``ConnectCount``, ``MessageCount``, the errors, latency).
* An ``AlarmEvaluator`` evaluates every alarm of the stack (``runtime.alarms``) on the store,
  at ``alarm_time_scale``; transitions go to stderr and to the embedded SNS alarm topic.
* A ``FaultInjector`` sits on the runtime's boto3 clients for the fire drills.
* ``CloudWatchResources`` puts the stack's alarms (their states mirrored from the
  evaluator), dashboard, log groups and saved queries in the embedded CloudWatch, so the AWS
  CLI and boto3 see what the deployed stack has.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import boto3
from aiohttp import web

from local.aws.embedded import EmbeddedAws
from local.common import console
from local.common.background import cancel_and_wait
from local.config import LocalConfig
from local.drills.faults import FaultInjector
from local.functions.events import function_name
from local.functions.invoker import LambdaInvoker
from local.functions.metrics import LambdaMetrics
from local.gateway.metrics import ApiGatewayMetrics
from local.gateway.websocket import Gateway
from local.monitoring.aggregate import AggregatingCloudWatch
from local.monitoring.alarm_evaluator import AlarmEvaluator
from local.monitoring.alarm_notifier import AlarmNotifier
from local.monitoring.alarm_runner import AlarmRunner
from local.monitoring.metric_store import MetricStore
from local.monitoring.resources import CloudWatchResources
from local.monitoring.routes import monitoring_routes
from runtime.alarms import ONE_MINUTE, stack_alarms
from runtime.routes import ROUTES
from runtime.settings import PROJECT

PUT_METRIC_DATA_EVENT = "provide-client-params.cloudwatch.PutMetricData"
FAULT_EXPIRY_INTERVAL_S = 0.5


def alarm_topic_name(stack: str) -> str:
    """The same name the Pulumi program gives the alarm topic."""
    return f"{PROJECT}-{stack}-alarms"


class LocalMonitoring:
    def __init__(self, config: LocalConfig, time_scale: float = 1.0) -> None:
        self.config = config
        self.time_scale = time_scale
        # A bucket no longer than the shortest alarm period (a minute) at this time scale.
        self.store = MetricStore(resolution_s=min(1.0, ONE_MINUTE / time_scale))
        # A fault naming a function that does not exist is refused (it would never match).
        self.faults = FaultInjector(function_names=[f.name for f in ROUTES])
        self._expiry: asyncio.Task[None] | None = None
        self.evaluator: AlarmEvaluator | None = None
        self.runner: AlarmRunner | None = None
        self.lambda_metrics: LambdaMetrics | None = None
        self.api_gateway_metrics: ApiGatewayMetrics | None = None
        self.topic_arn: str | None = None
        self.resources: CloudWatchResources | None = None
        # The stack's own PutMetricData: raw values to the store, statistic sets to moto.
        self.cloudwatch: AggregatingCloudWatch | None = None
        self.api_id: str | None = None

    def watch_metrics(self) -> None:
        """Record every PutMetricData of this process: call before any boto3 client exists
        (clients copy the session's event handlers when they are created)."""
        boto3.setup_default_session()
        assert boto3.DEFAULT_SESSION is not None
        boto3.DEFAULT_SESSION.events.register(PUT_METRIC_DATA_EVENT, self._capture)

    def _capture(self, params: dict[str, Any], **_: Any) -> None:
        try:
            self.store.add_metric_data(params["Namespace"], params.get("MetricData") or ())
        except Exception as error:  # a malformed request is moto's to refuse, not ours
            console.say(f"! could not record metric data: {error!r}")

    def start(
        self,
        aws: EmbeddedAws,
        invoker: LambdaInvoker,
        alarms_url: str,
        evaluate_after: asyncio.Event | None = None,
    ) -> None:
        """Once the environment is set and the tables exist: topic, hooks, evaluator
        (``alarms_url``: where the stack serves the alarms, named on stderr; the alarms are
        evaluated once ``evaluate_after`` is set, e.g. when the start-up banner is out)."""
        stack = self.config.stack
        self.topic_arn = aws.client("sns").create_topic(Name=alarm_topic_name(stack))["TopicArn"]
        from runtime import aws as runtime_aws  # the functions' clients, bound to the env now

        for client in (runtime_aws.dynamodb(), runtime_aws.connections(), runtime_aws.cloudwatch()):
            self.faults.install(client)
        self.cloudwatch = AggregatingCloudWatch(
            aws.client("cloudwatch").put_metric_data, self.store
        )
        self.lambda_metrics = LambdaMetrics(stack, self.cloudwatch.put_metric_data)
        self.lambda_metrics.start()
        invoker.observe = self.lambda_metrics.observe
        invoker.running = self.lambda_metrics.running
        names = [function_name(stack, f) for f in ROUTES]
        alarms = stack_alarms(self.config.settings, names)
        self.evaluator = AlarmEvaluator(alarms, self.store, time_scale=self.time_scale)
        self.resources = CloudWatchResources(
            self.config.settings, self.config.region, alarms, names, aws.client
        )
        notifier = AlarmNotifier(
            self.config.region,
            self.topic_arn,
            aws.client("sns").publish,
            time_scale=self.time_scale,
            configured_at=time.time(),
        )
        self.runner = AlarmRunner(
            self.evaluator,
            notifier,
            alarms_url,
            after=evaluate_after,
            mirror=self.resources.mirror,
        )
        self.runner.start()
        self._expiry = asyncio.create_task(self._expire_faults())

    async def _expire_faults(self) -> None:
        """Enforce the faults' leases: remove each one when its lease runs out, whether or
        not a call meets it (a drill killed with SIGKILL leaves no fault behind)."""
        while True:
            await asyncio.sleep(FAULT_EXPIRY_INTERVAL_S)
            self.faults.expire()

    def watch_gateway(self, aws: EmbeddedAws, gateway: Gateway) -> None:
        """Publish the gateway's AWS/ApiGateway metrics (once it is bound: its API ID is known)."""
        assert gateway.api is not None, "bind() the gateway first"
        assert self.cloudwatch is not None, "start() first"
        metrics = ApiGatewayMetrics(
            gateway.api.api_id, gateway.api.stage, self.cloudwatch.put_metric_data
        )
        metrics.start()
        gateway.metrics = self.api_gateway_metrics = metrics
        self.api_id = gateway.api.api_id
        self.register()

    def register(self) -> None:
        """The alarms, dashboard, log groups and queries in the embedded CloudWatch (again
        after it restarted, with the alarms' current states)."""
        assert self.resources is not None and self.topic_arn is not None
        assert self.evaluator is not None and self.api_id is not None
        self.resources.register(self.topic_arn, self.api_id, self.evaluator.states())

    def routes(self) -> list[web.RouteDef]:
        assert self.evaluator is not None, "start() first"
        return monitoring_routes(self.evaluator, self.faults)

    async def stop(self) -> None:
        await cancel_and_wait(self._expiry)
        self.faults.clear()
        if self.runner is not None:
            await self.runner.stop()
        for metrics in (self.lambda_metrics, self.api_gateway_metrics):
            if metrics is not None:
                metrics.stop()

    def info(self) -> dict[str, Any]:
        return {
            "alarmTimeScale": self.time_scale,
            "alarmTopicArn": self.topic_arn,
            "alarms": len(self.evaluator.alarms) if self.evaluator else 0,
            "savedQueries": bool(self.resources and self.resources.queries_saved),
        }
