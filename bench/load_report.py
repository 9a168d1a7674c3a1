"""The load's report: its section of docs/benchmarks.md, from the scenarios' results."""

from __future__ import annotations

from collections.abc import Sequence

from bench.load_results import FanOut, Samples, ScenarioResult
from bench.report import Section, fmt_ms, fmt_percentiles, percentile


def _fan_out_cell(fan_out: FanOut | None) -> str:
    if fan_out is None or fan_out.last_s is None:
        return "no samples"
    return fmt_ms(fan_out.last_s)


def _fan_out_status(fan_out: FanOut | None) -> str:
    if fan_out is None:
        return ""
    missing = fan_out.listeners - fan_out.received
    return "OK" if not missing and not fan_out.errors else "ERRORS"


def _fan_out_detail(fan_out: FanOut) -> str:
    text = f"{fan_out.received}/{fan_out.listeners} received"
    if fan_out.errors:
        text += "; " + ", ".join(f"{k} ×{n}" for k, n in sorted(fan_out.errors.items()))
    return text


def _of_those(samples: Samples) -> str:
    """Percentiles of the successes alone, when some attempts failed."""
    if not samples.errors or not samples.seconds:
        return ""
    return f" ({fmt_percentiles(samples.seconds, (50, 99))} of those)"


def _compare(sequential_s: float, concurrent_s: float) -> str:
    """``fan_out is 2.0× faster`` (or ``… slower``), never a ratio below 1 called faster."""
    if concurrent_s <= sequential_s:
        return f"fan_out is {sequential_s / concurrent_s:.1f}× faster"
    return f"fan_out is {concurrent_s / sequential_s:.1f}× slower"


def _sender(fan_out: FanOut) -> str:
    return f"; sender done at {fmt_ms(fan_out.sender_s)}" if fan_out.sender_s else ""


def load_section(results: Sequence[ScenarioResult], notes: Sequence[str] = ()) -> Section:
    """The table section for the local-stack measurements."""
    section = Section(
        "Through the local stack (real WebSocket clients in their own process, 127.0.0.1)"
    )
    for result in results:
        n = result.listeners
        joins = result.joins
        ok = not joins.errors and not result.connect_errors and result.connected == n
        connected = f"{result.connected}/{n} connected"
        if result.connect_errors:
            connected += " (" + ", ".join(f"{k} ×{v}" for k, v in result.connect_errors.items())
            connected += ")"
        section.add(
            f"join latency, {n} listeners at once (send → sessionJoined)",
            fmt_percentiles(joins.seconds, failures=sum(joins.errors.values())),
            f"{len(joins.seconds)}/{n} joined{_of_those(joins)}, {joins.describe_errors()}; "
            f"{connected}",
            "OK" if ok else "ERRORS",
        )
        for concurrency, hb in result.heartbeats.items():
            section.add(
                f"heartbeat round trip, {concurrency} in flight (send → heartbeatAck)",
                fmt_percentiles(hb.seconds, (50, 95), sum(hb.errors.values())),
                f"{len(hb.seconds)}/{hb.attempts} acked, {hb.describe_errors()}",
                "OK" if not hb.errors else "ERRORS",
            )
        concurrent, direct, sequential = result.concurrent, result.fan_out, result.sequential
        if concurrent is not None:
            section.add(
                f"speaker close → last of {n} has sessionEnded (real path: $disconnect handler)",
                _fan_out_cell(concurrent),
                _fan_out_detail(concurrent),
                _fan_out_status(concurrent),
            )
        if direct is not None:
            section.add(
                f"query + `runtime.fanout.fan_out` to {n} → last received (concurrent)",
                _fan_out_cell(direct),
                _fan_out_detail(direct) + _sender(direct),
                _fan_out_status(direct),
            )
        if sequential is not None:
            speedup = ""
            if sequential.last_s and direct is not None and direct.last_s:
                speedup = "; " + _compare(sequential.last_s, direct.last_s)
            section.add(
                f"query + {n} × `post_to_connection` one by one → last received (sequential)",
                _fan_out_cell(sequential),
                _fan_out_detail(sequential) + _sender(sequential) + speedup,
                _fan_out_status(sequential),
            )
        section.notes += [f"{n} listeners: {note}" for note in result.notes]
    section.notes += list(notes)
    return section


def percentile_summary(seconds: Sequence[float]) -> dict[str, float]:
    """p50/p95/p99 in seconds (for callers that want the raw numbers)."""
    return {f"p{p}": percentile(seconds, p) for p in (50, 95, 99)} if seconds else {}
