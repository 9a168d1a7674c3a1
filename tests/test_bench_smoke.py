"""Smoke tests of `make bench`'s building blocks on tiny inputs (no timed assertions)."""

from __future__ import annotations

import asyncio
import zipfile
from collections import Counter
from pathlib import Path

import pytest

from bench import __main__ as bench_main
from bench import (
    calls,
    cold_start,
    fanout_model,
    gateway,
    load,
    load_report,
    load_results,
    package_size,
    report,
)
from bench.report import Section

# --- percentiles ---------------------------------------------------------------------------------


def test_nearest_rank_percentiles_of_1_to_100():
    values = list(range(100, 0, -1))  # unsorted on purpose
    assert report.percentile(values, 50) == 50
    assert report.percentile(values, 95) == 95
    assert report.percentile(values, 99) == 99
    assert report.percentile(values, 100) == 100
    assert report.percentile(values, 0.5) == 1


def test_nearest_rank_percentiles_of_small_samples():
    assert report.percentile([7.0], 50) == 7.0
    assert report.percentile([7.0], 99) == 7.0
    # Nearest rank never interpolates: p50 of four values is the second one.
    assert report.percentile([4, 1, 3, 2], 50) == 2
    assert report.percentile([4, 1, 3, 2], 95) == 4
    assert report.percentile([10, 20, 30, 40, 50], 60) == 30


def test_percentile_rejects_bad_input():
    with pytest.raises(ValueError):
        report.percentile([], 50)
    with pytest.raises(ValueError):
        report.percentile([1], 0)
    with pytest.raises(ValueError):
        report.percentile([1], 101)


def test_median():
    assert report.median([3, 1, 2]) == 2
    assert report.median([4, 1, 3, 2]) == 2.5
    with pytest.raises(ValueError):
        report.median([])


# --- formatting ----------------------------------------------------------------------------------


def test_formatting_helpers():
    assert report.fmt_ms(0.0012345) == "1.23 ms"
    assert report.fmt_ms(0.0456) == "45.6 ms"
    assert report.fmt_ms(1.5) == "1,500 ms"
    assert report.fmt_bytes(512) == "512 B (512 B)"
    assert report.fmt_bytes(5 * 1024 * 1024) == "5.00 MiB (5,242,880 B)"
    assert report.fmt_percentiles([0.001, 0.002, 0.003], (50, 99)) == "p50 2.00 ms · p99 3.00 ms"
    assert report.fmt_percentiles([]) == "no samples"
    # Failed attempts rank after every success: 2 of 4 failed puts p95 among the failures.
    shown = report.fmt_percentiles([0.001, 0.002], (50, 95), failures=2)
    assert shown == "p50 2.00 ms · p95 failed"


def test_render_table_has_one_header_and_a_title_row_per_section():
    first = Section("First")
    first.add("a | b", "1 ms", "≤ 2", "OK")
    second = Section("Second", notes=["something failed"])
    second.add("c", "2 ms")
    table = report.render_table([first, second])
    lines = table.splitlines()
    assert lines[0] == "| measurement | result | budget / reference | status |"
    assert sum(line.startswith("|---") for line in lines) == 1
    assert "| **First** | | | |" in lines
    assert "| **Second** | | | |" in lines
    assert "| a \\| b | 1 ms | ≤ 2 | OK |" in lines
    assert "| c | 2 ms |  |  |" in lines
    assert report.render_notes([first, second]) == "- Second: something failed"


def test_write_doc(tmp_path: Path):
    path = tmp_path / "docs" / "benchmarks.md"
    machine = report.machine_info()
    assert {"CPU", "cores", "Python", "date"} <= set(machine)
    report.write_doc(
        path,
        "| t |",
        notes="- a note",
        commands=["make bench"],
        machine=machine,
        duration_s=12.3,
        observations="Something to read.",
    )
    text = path.read_text()
    for expected in ("| t |", "- a note", "make bench", machine["CPU"], "## Method", "Something"):
        assert expected in text


def test_cpu_model_from_cpuinfo(tmp_path: Path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nmodel name\t: Test CPU 9000\n")
    assert report.cpu_model(cpuinfo) == "Test CPU 9000"


# --- AWS calls -----------------------------------------------------------------------------------


def test_call_budgets():
    assert calls.speaker_disconnect_budget(0) == 3
    # + one BatchGetItem per 100 listener records and one BatchWriteItem per 25.
    assert calls.speaker_disconnect_budget(10) == 3 + 10 + 1 + 1
    assert calls.speaker_disconnect_budget(500) == 3 + 500 + 5 + 20
    assert calls.budget_for("heartbeat") == (1, "≤ 1")
    assert calls.budget_for("createSession") == (3, "≤ 3")
    assert calls.budget_for("joinSession") == (3, "≤ 3")
    assert calls.budget_for("$disconnect (listener)") == (2, "≤ 2")
    assert calls.budget_for("$connect (listener)") == (2, "≤ 2")
    assert calls.budget_for("$connect (listener, venue address)") == (3, "≤ 3")
    assert calls.budget_for("metricsReporter") is None


def test_calls_section_marks_over_budget_and_missing_operations():
    measured = {
        "createSession": {"dynamodb:UpdateItem": 2, "cloudwatch:PutMetricData": 1},
        "joinSession": {"dynamodb:UpdateItem": 3, "cloudwatch:PutMetricData": 1},
        "$disconnect (speaker, 10 listeners)": {
            "apigatewaymanagementapi:PostToConnection": 10,
            "dynamodb:BatchWriteItem": 1,
            "dynamodb:Query": 1,
        },
    }
    section = calls.rows_section(measured)
    status = {row.measurement.split(":")[0]: row.status for row in section.rows}
    assert status["createSession"] == "OK"
    assert status["joinSession"] == "OVER"
    assert status["$disconnect (speaker, 10 listeners)"] == "OK"
    assert status["heartbeat"] == "ERROR"  # not measured: shown, never dropped
    assert section.notes
    first = next(row for row in section.rows if row.measurement.startswith("createSession"))
    assert first.measurement == ("createSession: cloudwatch PutMetricData×1; dynamodb UpdateItem×2")
    assert first.result == "3 calls"


# --- cold start ----------------------------------------------------------------------------------


def test_parse_importtime_charges_time_to_what_our_code_imported():
    stderr = "\n".join(
        [
            "import time: self [us] | cumulative | imported package",
            "import time:       100 |        100 | site",
            "import time:        50 |         50 |       asyncio.events",
            "import time:        30 |         80 |     asyncio",
            "import time:        20 |        100 |   loguru",
            "import time:        10 |         10 |   runtime.protocol",
            "import time:         5 |        115 | runtime.handlers.x",
        ]
    )
    shares = cold_start.parse_importtime(stderr, "runtime.handlers.x")
    assert shares == pytest.approx({"loguru": 100e-6, "runtime": 15e-6})
    assert list(shares) == ["loguru", "runtime"]
    assert cold_start.parse_importtime(stderr, "missing") == {}


def test_import_timing_of_one_module_in_one_process():
    timing = cold_start.measure_import("runtime.protocol", runs=1, warmup=False)
    assert len(timing.samples) == 1
    assert timing.samples[0].wall_s > 0
    assert timing.samples[0].cpu_s > 0
    assert timing.median_s == timing.samples[0].wall_s
    with pytest.raises(cold_start.ImportFailed):
        cold_start.import_seconds("runtime.no_such_module")


def test_handler_modules_come_from_the_route_table():
    modules = cold_start.handler_modules()
    assert "runtime.handlers.join_session" in modules
    assert len(modules) == len(set(modules))


# --- package size --------------------------------------------------------------------------------


def test_measure_archive(tmp_path: Path):
    path = tmp_path / "a.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("runtime/a.py", "x" * 100)
        archive.writestr("runtime/b.py", "y" * 50)
        archive.writestr("dep/__init__.py", "z" * 1000)
        archive.writestr("dep-1.0.dist-info/METADATA", "m" * 10)
    size = package_size.measure_archive(path)
    assert size.files == 4
    assert size.unzipped == 1160
    assert size.zipped == path.stat().st_size
    assert list(size.by_top_level) == ["dep", "runtime", "*.dist-info (metadata)"]
    assert size.by_top_level["runtime"][0] == 150


# --- fan-out -------------------------------------------------------------------------------------


def test_modelled_fan_out_delivers_everything():
    result = fanout_model.measure(5, delay_s=0.001)
    assert result.delivered_sequential == 5
    assert result.delivered_concurrent == 5
    assert result.max_in_flight >= 1


def test_load_section_reports_counts_and_errors():
    result = load_results.ScenarioResult(listeners=3, connected=3)
    result.joins.seconds += [0.010, 0.020]
    result.joins.errors["timeout"] += 1
    result.heartbeats[1] = load_results.Samples([0.001, 0.002])
    result.concurrent = load_results.FanOut(listeners=2, received=2, last_s=0.05)
    result.fan_out = load_results.FanOut(listeners=2, received=2, last_s=0.04, sender_s=0.03)
    result.sequential = load_results.FanOut(
        listeners=2, received=1, last_s=0.08, errors=Counter({"not received within deadline": 1})
    )
    section = load_report.load_section([result], ["a note"])
    by_name = {row.measurement.split(",")[0]: row for row in section.rows}
    join = by_name["join latency"]
    assert join.status == "ERRORS"
    assert "2/3 joined" in join.reference and "timeout ×1" in join.reference
    sequential = next(r for r in section.rows if "one by one" in r.measurement)
    assert sequential.status == "ERRORS"
    assert "1/2 received" in sequential.reference
    assert "2.0× faster" in sequential.reference
    assert "a note" in section.notes
    assert load_report._compare(0.3, 0.1) == "fan_out is 3.0× faster"
    assert load_report._compare(0.1, 0.2) == "fan_out is 2.0× slower"


def test_iter_sizes():
    assert list(load.iter_sizes("100, 500")) == [100, 500]
    with pytest.raises(ValueError):
        list(load.iter_sizes("0"))


# --- gateway latency -----------------------------------------------------------------------------


def test_gateway_rows_measure_every_sample_against_the_echo_gateway():
    plan = gateway.GatewayPlan(handshakes=3, messages=4, posts=5)
    with gateway.echo_gateway() as port:
        results = asyncio.run(gateway._measure_gateway(port, plan))
    counts = {key: (len(t.seconds), t.failures) for key, t in results.items()}
    assert counts == {"handshake": (3, 0), "message": (4, 0), "post": (5, 0)}
    assert all(t.first_error == "" for t in results.values())


def test_only_runs_the_named_sections():
    args = bench_main.parse_args(["--only", "gateway"])
    assert not args.skip_gateway
    assert args.skip_local and args.skip_calls and args.skip_cold_start and args.skip_model
    assert args.skip_rehearsal
    with pytest.raises(SystemExit):
        bench_main.parse_args(["--only", "nope"])


# ------------------------------------------------------------------------------- cost


def _samples(put: int, emf_bytes: int, info_bytes: int = 0) -> dict:
    from bench.cost import Sample

    extra = {"cloudwatch:PutMetricData": put} if put else {}
    logs = emf_bytes + info_bytes  # what the function writes: its INFO line (+ EMF)
    return {
        "$connect (listener)": Sample(
            {"dynamodb:UpdateItem": 1, "dynamodb:PutItem": 1}, 0, 1.0, log_bytes=info_bytes
        ),
        # The session's listenerCount (active-sessions index) and the role claim (the
        # listener index) write an index each.
        "joinSession": Sample(
            {"dynamodb:UpdateItem": 3, **extra}, emf_bytes, 1.0, log_bytes=logs, index_writes=2
        ),
        "heartbeat": Sample({"dynamodb:UpdateItem": 1, **extra}, emf_bytes, 1.0, log_bytes=logs),
        "$disconnect (listener)": Sample(
            {"dynamodb:DeleteItem": 1, "dynamodb:UpdateItem": 1, **extra},
            emf_bytes,
            1.0,
            log_bytes=logs,
            index_writes=2,
        ),
    }


def test_the_listener_hour_bill_counts_every_priced_unit():
    from bench import cost, prices

    emf = cost.bill(_samples(put=0, emf_bytes=500, info_bytes=300), hours=1000)
    api = cost.bill(_samples(put=1, emf_bytes=0, info_bytes=300), hours=1000)
    q = emf.quantities
    invocations = 1 + 1 + 120 + 1
    assert q["requests"] == 1000 * invocations
    assert q["messages"] == 1000 * 2 * (1 + 120)  # each message and its reply
    assert q["minutes"] == 60_000
    # Table writes, plus the index writes of the join and the leave (not of heartbeats).
    assert q["index_wru"] == 1000 * 4
    assert q["wru"] == 1000 * (2 + 3 + 120 + 2) + 1000 * 4
    assert q["emf_gb"] == 1000 * 122 * 500 / 1e9
    # Every line: ours (INFO on every invocation, EMF on the 122 that measure something)
    # and Lambda's START/END/REPORT.
    platform = cost.PLATFORM_LOG_BYTES
    assert q["log_gb"] == pytest.approx(1000 * (invocations * (300 + platform) + 122 * 500) / 1e9)
    assert api.quantities["log_gb"] == pytest.approx(1000 * invocations * (300 + platform) / 1e9)
    assert api.quantities["puts"] == 1000 * 122 and q["puts"] == 0
    assert api.dollars["CloudWatch PutMetricData"] == prices.PUT_METRIC_DATA.cost(122_000)
    assert emf.dollars["CloudWatch Logs ingestion"] == prices.LOGS_INGESTION.cost(q["log_gb"])
    assert emf.total < api.total
    section = cost.cost_section({"emf": emf, "api": api})
    total = section.rows[-1]
    assert total.result == f"**emf ${emf.total:.2f} · api ${api.total:.2f}**"
    assert total.status == "OK"
    assert all("https://aws.amazon.com/" in row.reference for row in section.rows[:-1])


def test_the_cost_model_refuses_an_api_it_cannot_price():
    from bench import cost

    samples = _samples(put=0, emf_bytes=0)
    samples["heartbeat"] = cost.Sample({"dynamodb:TransactWriteItems": 1}, 0, 1.0)
    with pytest.raises(ValueError, match="TransactWriteItems"):
        cost.bill(samples)
