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
  1 KB) plus one per index the write also changes (``bench/index_writes.py``, from the
  requests themselves and the index projections of ``runtime/tables.py``), one read request
  unit per GetItem/Query;
- CloudWatch: PutMetricData requests (``api`` only) and Logs ingestion of every line an
  invocation writes: the function's own (its INFO line, and the EMF line with ``emf``) and
  Lambda's START, END and REPORT lines (``PLATFORM_LOG_BYTES``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import math
import statistics
from collections.abc import Callable
from dataclasses import dataclass

from bench import prices
from bench.index_writes import index_writes
from bench.report import Section
from runtime.tables import TABLES

LISTENER_HOURS = 1000
HEARTBEAT_INTERVAL_S = 30
HEARTBEATS_PER_HOUR = 3600 // HEARTBEAT_INTERVAL_S
CONNECTION_MINUTES_PER_HOUR = 60
# A same-region DynamoDB / CloudWatch round trip from Lambda (a model: single-digit ms).
ROUND_TRIP_MS = 5.0
TRANSPORTS = ("emf", "api")
WRITE_UNITS = {"dynamodb:PutItem": 1, "dynamodb:UpdateItem": 1, "dynamodb:DeleteItem": 1}
# Lambda's own lines per invocation, as CloudWatch Logs ingests them: "START RequestId: <36>
# Version: $LATEST" (~66 B), "END RequestId: <36>" (~52 B) and the REPORT line with
# duration, billed duration, memory, max memory used and the X-Ray trace/segment IDs that
# active tracing adds (~250 B).
PLATFORM_LOG_BYTES = 66 + 52 + 250
READ_UNITS = {"dynamodb:GetItem": 1, "dynamodb:Query": 1}
PUT_METRIC_DATA = "cloudwatch:PutMetricData"
# The tables as they were before the Connections index projected only keys and role.
ALL_PROJECTED = tuple(
    dataclasses.replace(t, indexes=tuple(dataclasses.replace(i, projected=()) for i in t.indexes))
    for t in TABLES
)


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
    log_bytes: int = 0  # every line the function wrote (its INFO line, EMF with emf)
    index_writes: int = 0  # write units the requests add to the tables' indexes
    index_writes_if_all: int = 0  # the same if every index projected ALL (as they once did)


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
            calls, sizes, logs, index, if_all, durations = [], [], [], [], [], []
            for _ in range(runs):
                calls.append(scenario(harness))
                sizes.append(harness.last_emf_bytes)
                logs.append(harness.last_log_bytes)
                index.append(sum(index_writes(a, p) for a, p in harness.last_requests))
                if_all.append(
                    sum(index_writes(a, p, ALL_PROJECTED) for a, p in harness.last_requests)
                )
                durations.append(harness.last_duration_s * 1000)
            samples[step.operation] = Sample(
                calls=max(calls, key=lambda c: sum(c.values())),  # the same every run
                emf_bytes=int(statistics.median(sizes)),
                duration_ms=statistics.median(durations),
                log_bytes=int(statistics.median(logs)),
                index_writes=max(index),
                index_writes_if_all=max(if_all),
            )
    return samples


def _memory_gb(route_key: str) -> float:
    from runtime.routes import BY_ROUTE_KEY

    return BY_ROUTE_KEY[route_key].memory_mb / 1024


def bill(samples: dict[str, Sample], hours: int = LISTENER_HOURS) -> Bill:
    q = dict.fromkeys(
        (
            "requests", "gb_s", "messages", "minutes", "wru", "index_wru", "rru", "puts",
            "emf_gb", "log_gb",
        ),
        0.0,
    )  # fmt: skip
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
        q["wru"] += n * sample.index_writes
        q["index_wru"] += n * sample.index_writes
        q["emf_gb"] += n * sample.emf_bytes / 1e9
        q["log_gb"] += n * (sample.log_bytes + PLATFORM_LOG_BYTES) / 1e9
    q["minutes"] = CONNECTION_MINUTES_PER_HOUR * hours
    dollars = {
        "Lambda requests": prices.LAMBDA_REQUESTS.cost(q["requests"]),
        "Lambda compute": prices.LAMBDA_GB_SECONDS.cost(q["gb_s"]),
        "API Gateway messages": prices.API_GATEWAY_MESSAGES.cost(q["messages"]),
        "API Gateway connection minutes": prices.API_GATEWAY_CONNECTION_MINUTES.cost(q["minutes"]),
        "DynamoDB writes": prices.DYNAMODB_WRITES.cost(q["wru"]),
        "DynamoDB reads": prices.DYNAMODB_READS.cost(q["rru"]),
        "CloudWatch PutMetricData": prices.PUT_METRIC_DATA.cost(q["puts"]),
        "CloudWatch Logs ingestion": prices.LOGS_INGESTION.cost(q["log_gb"]),
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
    "CloudWatch Logs ingestion": ("log_gb", "{:,.4f} GB of log lines"),
}


def cost_section(bills: dict[str, Bill] | None = None, runs: int = 5) -> Section:
    """One row per priced component, emf and api side by side, then the total."""
    samples: dict[str, dict[str, Sample]] = {}
    if bills is None:
        samples = {t: measure(t, runs) for t in TRANSPORTS}
        bills = {t: bill(samples[t]) for t in TRANSPORTS}
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
    if samples:
        table, index = heartbeat_write_units(samples["emf"])
        before = samples["emf"]["heartbeat"].index_writes_if_all
        section.add(
            "DynamoDB write units of one heartbeat (table + index)",
            f"{table} + {index} = {table + index}",
            f"{table} + {before} = {table + before} if the Connections index projected ALL",
            "OK" if index == 0 else "OVER",
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
        "call, rounded up to 1 ms; DynamoDB 1 WRU per write plus 1 per index it changes "
        f"(emf {emf.quantities['index_wru']:,.0f} of the WRU are index writes), 1 RRU per read "
        "(records < 1 KB); logs: every line the functions write plus Lambda's START/END/REPORT "
        f"({PLATFORM_LOG_BYTES} B an invocation; emf {emf.quantities['emf_gb']:,.4f} GB of it "
        "EMF); custom-metric charges are the same for both transports and left out; prices "
        "and their sources in bench/prices.py"
    )
    return section


def heartbeat_write_units(samples: dict[str, Sample]) -> tuple[int, int]:
    """(table, index) write units of one heartbeat, as measured."""
    sample = samples["heartbeat"]
    table = sum(n for api, n in sample.calls.items() if api in WRITE_UNITS)
    return table, sample.index_writes
