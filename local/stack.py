"""The local stack: embedded AWS + token issuer + WebSocket gateway + scheduler, composed.

Order matters: the ports are bound first (so URLs are known), then the functions'
environment is set (before any handler module is imported), then tables and handlers, then
the gateway starts serving and the banner goes to stderr.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from client import local_stack
from client.cli import DEFAULT_PORT, DEFAULT_URL
from client.connection import CLI
from client.local_stack import CONNECTIONS_PATH, DEFAULT_TTL_S
from local.aws.embedded import EmbeddedAws
from local.aws.supervisor import AwsSupervisor
from local.common import console
from local.config import LocalConfig
from local.control import control_routes
from local.functions import log_tap
from local.functions.environment import apply_environment, function_environment
from local.functions.events import function_name, log_group_name
from local.functions.iam import LocalIam
from local.functions.invoker import DEFAULT_WORKERS, LambdaInvoker, missing_handlers
from local.functions.log_shipper import LogShipper
from local.functions.scheduler import Scheduler
from local.gateway.connection import GatewayOptions
from local.gateway.live_connections import live_connections
from local.gateway.websocket import Gateway
from local.monitoring.emf import MARKER, EmfPublisher
from local.monitoring.routes import ALARMS_PATH
from local.monitoring.webconsole.log_ring import LogRing
from local.monitoring.webconsole.metrics import StackView, dashboard_data
from local.monitoring.webconsole.routes import CONSOLE_PATH, console_routes
from local.monitoring.wiring import LocalMonitoring, alarm_topic_name
from local.tokens import JWKS_PATH, TokenIssuer
from runtime.routes import ROUTES
from runtime.settings import SETTINGS
from runtime.tables import TABLES

BANNER_USER = "developer"


@dataclass(frozen=True)
class StackOptions:
    port: int = 8080
    aws_port: int = 4566
    host: str = "127.0.0.1"
    idle_timeout_s: float = 600.0
    max_connection_s: float = 7200.0
    schedule_interval_s: float = 60.0
    workers: int = DEFAULT_WORKERS
    announce: bool = True
    stop_on_stdin_eof: bool = False
    # Alarm periods pass this many times faster (60: a 5-minute period lasts 5 s).
    alarm_time_scale: float = 1.0
    # IAM actions denied to a function whatever its policy grants (``--iam-deny``).
    iam_deny: Mapping[str, tuple[tuple[str, str], ...]] = field(default_factory=dict)


class LocalStack:
    """Everything ``python -m local`` runs, with ``start`` / ``stop``."""

    def __init__(self, config: LocalConfig, options: StackOptions) -> None:
        self.config = config
        self.options = options
        self.aws = EmbeddedAws(options.aws_port, config.region, options.host)
        self.invoker = LambdaInvoker(config.stack, config.region, options.workers)
        self.gateway: Gateway | None = None
        self.scheduler: Scheduler | None = None
        self.issuer: TokenIssuer | None = None
        self.monitoring = LocalMonitoring(config, options.alarm_time_scale)
        self.iam: LocalIam | None = None
        # Set once the start-up banner is printed: the alarm runner waits for it.
        self.banner_out = asyncio.Event()
        # The functions' recent log lines, for the web console.
        self.log_ring = LogRing()
        self._tap: log_tap.StdoutTap | None = None
        # CloudWatch Logs' part: EMF extracted from the functions' stdout, published in batches.
        self.emf: EmfPublisher | None = None
        # Lambda's part: each line to CloudWatch Logs (/aws/lambda/<function>), in batches.
        self.log_shipper: LogShipper | None = None
        self.started_at = time.monotonic()
        self.started_wall = time.time()
        self.supervisor = AwsSupervisor(self.aws, self._recreate_aws_state, self._fail)
        # Set when the stack cannot go on (the embedded AWS died and could not be restarted).
        self.failed = asyncio.Event()
        self.exit_code = 0
        # This stack's file in .local/stacks/, so the tools find it (client.local_stack).
        self._registered: Path | None = None

    async def start(self) -> None:
        cfg, opts = self.config, self.options
        stage = cfg.stack
        loop = asyncio.get_running_loop()
        self.monitoring.watch_metrics()  # before any boto3 client is created
        self.aws.spawn()  # moto imports in its own process meanwhile
        gateway_options = GatewayOptions(
            stage=stage,
            region=cfg.region,
            host=opts.host,
            port=opts.port,
            idle_timeout_s=opts.idle_timeout_s,
            max_connection_s=opts.max_connection_s,
            # Connection ages run on the alarms' clock: refreshes come as minutes pass.
            age_scale=opts.alarm_time_scale,
            announce=opts.announce,
        )
        # The gateway is built around late-bound pieces (label, routes) once the port is known.
        gateway = Gateway(gateway_options, self.invoker)
        gateway.bind()
        base = f"http://{opts.host}:{gateway.port}"
        self.issuer = TokenIssuer(
            issuer=f"http://localhost:{gateway.port}/local-issuer/{stage}",
            audience=f"session-management-local-{stage}",
        )
        if any(cfg.settings[k] for k in ("authIssuer", "authAudience", "authJwksUrl")):
            console.say("note: the stack's auth settings are replaced by the local token issuer")
        await loop.run_in_executor(None, self.aws.wait_ready)
        hash_key_parameter = await loop.run_in_executor(
            None, self.aws.put_hash_key, stage, cfg.settings["ipHashKey"] or secrets.token_hex(32)
        )
        apply_environment(
            function_environment(
                cfg,
                aws_endpoint=self.aws.endpoint,
                connections_endpoint=gateway.connections_url,
                issuer=self.issuer.issuer,
                audience=self.issuer.audience,
                jwks_url=base + JWKS_PATH,
                ip_hash_key_parameter=hash_key_parameter,
            )
        )
        # Every AWS call a function makes is checked against its IAM policy from here on.
        self.iam = LocalIam(
            stage,
            cfg.region,
            cfg.settings,
            api_id=lambda: gateway.api.api_id if gateway.api else "local",
            revoked=opts.iam_deny,
        )
        self.iam.install()
        await loop.run_in_executor(None, self.aws.create_tables, stage)
        self.monitoring.start(self.aws, self.invoker, base + ALARMS_PATH, self.banner_out)
        self.monitoring.watch_gateway(self.aws, gateway)
        missing = await loop.run_in_executor(None, missing_handlers, ROUTES)
        for line in missing:
            console.say(f"! handler not importable yet: {line}")
        from runtime.hashing import connection_hash  # reads the environment set above

        gateway.label = connection_hash
        self.iam.label = connection_hash
        gateway.unavailable = lambda: self.supervisor.problem
        self._tap = log_tap.install()
        self._tap.subscribe(self.log_ring.add_line)
        self._ship_logs()
        self._extract_emf()
        gateway.app.add_routes(
            control_routes(self.issuer, self.info, lambda: live_connections(gateway))
        )
        gateway.app.add_routes(self.monitoring.routes())
        gateway.app.add_routes(console_routes(self.log_ring, self.info, self.dashboard))
        await gateway.start()
        self.gateway = gateway
        assert gateway.api is not None
        self.scheduler = Scheduler(
            gateway.api,
            self.invoker,
            opts.schedule_interval_s,
            expire=lambda: self.aws.expire_items(stage),
        )
        self.scheduler.start()
        self.supervisor.start()
        self._registered = local_stack.register(
            local_stack.RunningStack(
                pid=os.getpid(),
                port=gateway.port,
                aws_port=self.aws.port,
                stack=stage,
                websocket_url=gateway.websocket_url,
                alarm_time_scale=opts.alarm_time_scale,
            )
        )

    def _recreate_aws_state(self) -> None:
        """What a fresh embedded AWS needs: the tables, the alarm topic, and the alarms,
        dashboard, log groups and queries (the alarms with their current states)."""
        stage = self.config.stack
        self.aws.create_tables(stage)
        self.aws.client("sns").create_topic(Name=alarm_topic_name(stage))
        self.monitoring.register()

    def _fail(self, why: str) -> None:
        console.say(f"! {why}: stopping the local stack (exit code 1)")
        self.exit_code = 1
        self.failed.set()

    def _extract_emf(self) -> None:
        """CloudWatch Logs' part: the lines of stdout that carry EMF go to the publisher, which
        extracts the metrics and publishes them to the embedded CloudWatch in batches (its
        PutMetricData calls reach the alarm evaluator's store like any other)."""
        assert self.monitoring.cloudwatch is not None, "start the monitoring first"
        self.emf = EmfPublisher(self.monitoring.cloudwatch, report=console.say).start()
        assert self._tap is not None
        emf = self.emf
        self._tap.subscribe(lambda line: emf.submit(line) if MARKER in line else None)

    def _ship_logs(self) -> None:
        by_name = {f.name: f for f in ROUTES}
        stage = self.config.stack
        self.log_shipper = LogShipper(
            self.aws.client("logs"),
            group_of=lambda name: log_group_name(function_name(stage, by_name[name])),
            stream_of=self.invoker.log_stream_of,
        ).start()
        assert self._tap is not None
        self._tap.subscribe(self.log_shipper.submit)

    def _stop_emf(self) -> None:
        if self.emf is not None:
            self.emf.stop()  # publishes what is still queued
        if self.log_shipper is not None:
            self.log_shipper.stop()  # ships what is still buffered

    async def stop(self, quick: bool = False) -> None:
        """Close every connection (each gets its $disconnect), then stop the rest; ``quick``
        (nothing served yet): the embedded AWS is killed instead of asked to finish."""
        if self._registered is not None:  # no tool may pick a stack that is stopping
            local_stack.unregister(self._registered, os.getpid())
        await self.supervisor.stop()  # a process stopped on purpose is not restarted
        if self.gateway is not None:
            open_now = self.gateway.open_count()
            console.say(f"shutting down: closing {open_now} connection(s)")
            await self.gateway.shutdown()
        if self.scheduler is not None:
            await self.scheduler.stop()
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, self.invoker.shutdown)
        await loop.run_in_executor(None, self._stop_emf)
        await self.monitoring.stop()
        await loop.run_in_executor(None, self.aws.kill if quick else self.aws.stop)
        if self._tap is not None:
            log_tap.uninstall(self._tap)
        if self.iam is not None:
            self.iam.uninstall()

    def info(self) -> dict[str, Any]:
        assert self.gateway is not None and self.issuer is not None
        stage = self.config.stack
        return {
            "stack": stage,
            "region": self.config.region,
            "apiId": self.gateway.api.api_id if self.gateway.api else None,
            "websocketUrl": self.gateway.websocket_url,
            "connectionsUrl": self.gateway.connections_url,
            "awsEndpoint": self.aws.endpoint,
            "awsPid": self.aws.pid,
            "awsState": self.supervisor.state,
            "awsRestarts": self.supervisor.restarts,
            # Health probes a busy (running, not stuck) embedded AWS missed: no 503 for those.
            "awsSlowProbes": self.supervisor.busy_misses,
            "jwksUrl": f"http://{self.options.host}:{self.gateway.port}{JWKS_PATH}",
            "consoleUrl": f"http://{self.options.host}:{self.gateway.port}{CONSOLE_PATH}",
            "issuer": self.issuer.issuer,
            "audience": self.issuer.audience,
            "tables": {t.logical_name: t.physical_name(stage) for t in TABLES},
            "idleTimeoutSeconds": self.options.idle_timeout_s,
            "maxConnectionSeconds": self.options.max_connection_s,
            "scheduleIntervalSeconds": self.options.schedule_interval_s,
            "connectionsPath": CONNECTIONS_PATH,
            # The stack's settings as the functions see them (secrets left out).
            "settings": {s.key: self.config.settings[s.key] for s in SETTINGS if not s.secret},
            "emf": dict(self.emf.stats) if self.emf is not None else None,
            "logs": dict(self.log_shipper.stats) if self.log_shipper is not None else None,
            # IAM as AWS enforces it: every function call checked against its policy.
            "iam": self.iam.info() if self.iam is not None else {"enforced": False},
            "pid": os.getpid(),
            **self.monitoring.info(),
        }

    def dashboard(self, minutes: int) -> dict[str, Any]:
        """The dashboard's metric widgets over the last ``minutes``, for the web console."""
        assert self.gateway is not None and self.gateway.api is not None
        stage = self.config.stack
        view = StackView(
            namespace=self.config.settings.metricsNamespace,
            stage=stage,
            api_id=self.gateway.api.api_id,
            function_names=tuple(function_name(stage, f) for f in ROUTES),
            settings=self.config.settings,
            time_scale=self.monitoring.time_scale,
        )
        return dashboard_data(view, self.monitoring.store, minutes, since=self.started_wall)

    def show_banner(self) -> None:
        """Print the start-up banner, then let the alarm runner speak (the banner comes first)."""
        console.block(self.banner())
        self.banner_out.set()

    def banner(self, *, again: bool = False) -> list[str]:
        assert self.gateway is not None and self.issuer is not None
        info = self.info()
        took = time.monotonic() - self.started_at
        state = f"up {took / 60:.0f} min" if again else f"ready in {took:.1f}s"
        # Flags the CLI needs only when this is not its default stack (ws://127.0.0.1:8080/dev).
        url = "" if info["websocketUrl"] == DEFAULT_URL else f" --url {info['websocketUrl']}"
        port = self.gateway.port
        port_flag = "" if port == DEFAULT_PORT else f" --port {port}"
        token = self.issuer.mint(BANNER_USER, DEFAULT_TTL_S)
        tables = ", ".join(info["tables"].values())
        opts = self.options
        return [
            "",
            f"session-management local stack '{info['stack']}' {state} "
            f"(config: {', '.join(self.config.sources) or 'model defaults'})",
            f"  console       {info['consoleUrl']}  (dashboard, alarms, sessions, logs, try-it)",
            f"  WebSocket     {info['websocketUrl']}",
            f"  @connections  {info['connectionsUrl']}  (boto3 apigatewaymanagementapi "
            f"endpoint_url, region {info['region']})",
            f"  AWS endpoint  {info['awsEndpoint']}  (region {info['region']}; tables {tables})",
            f"  JWKS          {info['jwksUrl']}",
            f"  limits        idle {opts.idle_timeout_s:g}s, max connection "
            f"{opts.max_connection_s:g}s, message 128 KB, schedule every "
            f"{opts.schedule_interval_s:g}s",
            f"  alarms        {info['alarms']} evaluated"
            + (
                f", time ×{opts.alarm_time_scale:g} (a 5-minute period lasts "
                f"{300 / opts.alarm_time_scale:g}s; connections age as fast: the refresh "
                f"due at {self.config.settings.connectionRefreshMinutes} min comes after "
                f"{self.config.settings.connectionRefreshMinutes * 60 / opts.alarm_time_scale:g}s)"
                if opts.alarm_time_scale != 1
                else ""
            )
            + f": http://{opts.host}:{port}{ALARMS_PATH}",
            f"  speaker token (user '{BANNER_USER}', valid {DEFAULT_TTL_S // 60} min):",
            token,
            f"  try:  {CLI} speak{url}",
            f"        {CLI} listen SESSION_ID --lang es{url}",
            f"        {CLI} connections{port_flag}   (open connection IDs, roles, sessions)",
            f"        {CLI} token --user NAME{port_flag}",
            "stdout carries the functions' JSON log lines; Enter shows this again "
            "(with a fresh token); Ctrl-C stops.",
            "",
        ]
