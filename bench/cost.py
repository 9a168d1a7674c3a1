"""The AWS cost of 1,000 listener-hours, ``metricsTransport: emf`` next to ``api``, one run.

A listener-hour: one join (``$connect`` + ``joinSession``), a heartbeat every 30 s, one
leave (``$disconnect``). Each operation runs through its real handler on moto (the scenarios
of ``bench/call_scenarios.py``), once per transport, and gives its AWS calls (by API), the
bytes of the EMF lines it wrote and its duration. Those are priced at the list prices of
``bench/prices.py``:

- Lambda: one request per operation; GB-seconds = the function's memory (``runtime/routes.py``)
  × the billed duration, modelled as the measured handler time plus ``ROUND_TRIP_MS`` per AWS
  call (moto answers in-process, with no network), rounded up to the millisecond;
- API Gateway: every client message and its reply (``$connect``/``$disconnect`` are not
  messages), and 60 connection minutes;
- DynamoDB: one write request unit per PutItem/UpdateItem/DeleteItem (the records are under
  1 KB), one read request unit per GetItem/Query;
- CloudWatch: PutMetricData requests (``api`` only) and Logs ingestion of the EMF bytes
  (``emf`` only; the other log lines are the same either way).
"""

from __future__ import annotations

import contextlib
import io
import math
import statistics
from collections.abc import Callable
from dataclasses import dataclass

from bench import prices
from bench.report import Section

LISTENER_HOURS = 1000
HEARTBEAT_INTERVAL_S = 30
HEARTBEATS_PER_HOUR = 3600 // HEARTBEAT_INTERVAL_S
CONNECTION_MINUTES_PER_HOUR = 60
# A same-region DynamoDB / CloudWatch round trip from Lambda (a model: single-digit ms).
ROUND_TRIP_MS = 5.0
TRANSPORTS = ("emf", "api")
WRITE_UNITS = {"dynamodb:PutItem": 1, "dynamodb:UpdateItem": 1, "dynamodb:DeleteItem": 1}
READ_UNITS = {"dynamodb:GetItem": 1, "dynamodb:Query": 1}
PUT_METRIC_DATA = "cloudwatch:PutMetricData"


@dataclass(frozen=True)
class Step:
    """One operation of a listener-hour: which scenario, which route, how many times."""

    operation: str
    route_key: str
    times: int
    is_message: bool  # a client message with a reply (two API Gateway messages)


PLAN: tuple[Step, ...] = (
    Step("$connect (listener)", "$connect", 1, is_message=False),
    Step("joinSession", "joinSession", 1, is_message=True),
    Step("heartbeat", "heartbeat", HEARTBEATS_PER_HOUR, is_message=True),
    Step("$disconnect (listener)", "$disconnect", 1, is_message=False),
)


@dataclass(frozen=True)
class Sample:
    calls: dict[str, int]
    emf_bytes: int
    duration_ms: float


@dataclass(frozen=True)
class Bill:
    """Quantities and dollars per component for LISTENER_HOURS listener-hours."""

    quantities: dict[str, float]
    dollars: dict[str, float]

    @property
    def total(self) -> float:
        return sum(self.dollars.values())


def measure(transport: str, runs: int = 5) -> dict[str, Sample]:
    """Each step's operation, ``runs`` times under ``transport``: calls, EMF bytes, median ms."""
    from bench.call_scenarios import SCENARIOS, Harness, environment

    samples: dict[str, Sample] = {}
    with contextlib.redirect_stdout(io.StringIO()), environment(transport):
        harness = Harness()
        for step in PLAN:
            scenario: Callable[[Harness], dict[str, int]] = SCENARIOS[step.operation]
            calls, sizes, durations = [], [], []
            for _ in range(runs):
                calls.append(scenario(harness))
                sizes.append(harness.last_emf_bytes)
                durations.append(harness.last_duration_s * 1000)
            samples[step.operation] = Sample(
                calls=max(calls, key=lambda c: sum(c.values())),  # the same every run
                emf_bytes=int(statistics.median(sizes)),
                duration_ms=statistics.median(durations),
            )
    return samples


def _memory_gb(route_key: str) -> float:
    from runtime.routes import BY_ROUTE_KEY

    return BY_ROUTE_KEY[route_key].memory_mb / 1024


def bill(samples: dict[str, Sample], hours: int = LISTENER_HOURS) -> Bill:
    q = dict.fromkeys(
        ("requests", "gb_s", "messages", "minutes", "wru", "rru", "puts", "emf_gb"), 0.0
    )
    for step in PLAN:
        sample, n = samples[step.operation], step.times * hours
        calls = sum(sample.calls.values())
        billed_ms = math.ceil(sample.duration_ms + calls * ROUND_TRIP_MS)
        q["requests"] += n
        q["gb_s"] += n * _memory_gb(step.route_key) * billed_ms / 1000
        q["messages"] += n * 2 if step.is_message else 0
        for api, count in sample.calls.items():
            if api in WRITE_UNITS:
                q["wru"] += n * count * WRITE_UNITS[api]
            elif api in READ_UNITS:
                q["rru"] += n * count * READ_UNITS[api]
            elif api == PUT_METRIC_DATA:
                q["puts"] += n * count
            else:
                raise ValueError(f"{step.operation} calls {api}, which the cost model cannot price")
        q["emf_gb"] += n * sample.emf_bytes / 1e9
    q["minutes"] = CONNECTION_MINUTES_PER_HOUR * hours
    dollars = {
        "Lambda requests": prices.LAMBDA_REQUESTS.cost(q["requests"]),
        "Lambda compute": prices.LAMBDA_GB_SECONDS.cost(q["gb_s"]),
        "API Gateway messages": prices.API_GATEWAY_MESSAGES.cost(q["messages"]),
        "API Gateway connection minutes": prices.API_GATEWAY_CONNECTION_MINUTES.cost(q["minutes"]),
        "DynamoDB writes": prices.DYNAMODB_WRITES.cost(q["wru"]),
        "DynamoDB reads": prices.DYNAMODB_READS.cost(q["rru"]),
        "CloudWatch PutMetricData": prices.PUT_METRIC_DATA.cost(q["puts"]),
        "CloudWatch Logs ingestion": prices.LOGS_INGESTION.cost(q["emf_gb"]),
    }
    return Bill(q, dollars)


_QUANTITY = {
    "Lambda requests": ("requests", "{:,.0f} requests"),
    "Lambda compute": ("gb_s", "{:,.1f} GB-s"),
    "API Gateway messages": ("messages", "{:,.0f} messages"),
    "API Gateway connection minutes": ("minutes", "{:,.0f} min"),
    "DynamoDB writes": ("wru", "{:,.0f} WRU"),
    "DynamoDB reads": ("rru", "{:,.0f} RRU"),
    "CloudWatch PutMetricData": ("puts", "{:,.0f} requests"),
    "CloudWatch Logs ingestion": ("emf_gb", "{:,.4f} GB of EMF"),
}


def cost_section(bills: dict[str, Bill] | None = None, runs: int = 5) -> Section:
    """One row per priced component, emf and api side by side, then the total."""
    if bills is None:
        bills = {t: bill(measure(t, runs)) for t in TRANSPORTS}
    emf, api = bills["emf"], bills["api"]
    section = Section(
        f"AWS cost of {LISTENER_HOURS:,} listener-hours (1 join, a heartbeat every "
        f"{HEARTBEAT_INTERVAL_S} s, 1 leave per listener-hour; us-east-1 list prices)"
    )
    for name, price in prices.ALL:
        key, fmt = _QUANTITY[name]
        amounts = f"emf {fmt.format(emf.quantities[key])} · api {fmt.format(api.quantities[key])}"
        section.add(
            f"{name}: {amounts}",
            f"emf ${emf.dollars[name]:.4f} · api ${api.dollars[name]:.4f}",
            price.describe(),
        )
    saved = api.total - emf.total
    share = api.dollars["CloudWatch PutMetricData"] / api.total if api.total else 0.0
    section.add(
        f"**total, {LISTENER_HOURS:,} listener-hours**",
        f"**emf ${emf.total:.2f} · api ${api.total:.2f}**",
        f"emf saves ${saved:.2f} ({saved / api.total:.0%}); PutMetricData is {share:.0%} of api",
        "OK" if emf.total < api.total else "OVER",
    )
    section.notes.append(
        f"cost model: Lambda duration = handler time on moto + {ROUND_TRIP_MS:g} ms per AWS "
        "call, rounded up to 1 ms; DynamoDB 1 WRU per write, 1 RRU per read (records < 1 KB); "
        "custom-metric charges and the other log lines are the same for both transports and "
        "left out; prices and their sources in bench/prices.py"
    )
    return section
