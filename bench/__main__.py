"""``python -m bench`` (``make bench``): the service's cost and speed in one table.

Sections: AWS calls per operation (moto + the real handlers), cold-start proxy (handler
import time in fresh processes), package size (the real deployment archive), fan-out with a
modelled @connections round trip, and join / heartbeat / fan-out latency through the local
stack with real WebSocket clients, the gateway's own handshake and message latency, and the
web console's load time in headless Chromium.
``--only SECTION`` runs a subset. Prints the table on stdout (progress on stderr) and writes
docs/benchmarks.md. Everything runs on this machine; network traffic goes to 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from bench import report, report_text
from bench.report import Section

FULL_LISTENERS = "100,500"
SECTIONS = (
    "calls", "cost", "cold-start", "package", "model", "local", "rehearsal", "gateway", "console",
    "soak",
)  # fmt: skip
QUICK_LISTENERS = "10,30"


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Measure AWS calls per operation, cold start, package size and latency "
        "through the local stack; print one table and write docs/benchmarks.md.",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"smoke run: listeners {QUICK_LISTENERS}, 2 processes per import, 20 heartbeats; "
        "does not write the doc unless --doc is given",
    )
    parser.add_argument("--skip-calls", action="store_true", help="skip the AWS call counts")
    parser.add_argument(
        "--skip-cost", action="store_true", help="skip the cost of 1,000 listener-hours"
    )
    parser.add_argument("--skip-cold-start", action="store_true", help="skip import timings")
    parser.add_argument("--skip-package", action="store_true", help="skip the package size")
    parser.add_argument(
        "--skip-model", action="store_true", help="skip the modelled-latency fan-out"
    )
    parser.add_argument(
        "--skip-local", action="store_true", help="skip the local-stack load measurements"
    )
    parser.add_argument(
        "--skip-rehearsal",
        action="store_true",
        help="skip the rehearsal of an event (300 listeners from one address, ~4 min)",
    )
    parser.add_argument(
        "--skip-gateway", action="store_true", help="skip the gateway handshake/message latency"
    )
    parser.add_argument(
        "--skip-console", action="store_true", help="skip the web console's load time"
    )
    parser.add_argument(
        "--skip-soak", action="store_true", help="skip the soak (memory) and flood fairness"
    )
    parser.add_argument(
        "--only",
        metavar="SECTION[,SECTION]",
        help="run only these sections (" + ", ".join(SECTIONS) + "), e.g. --only gateway",
    )
    parser.add_argument(
        "--runs",
        type=int,
        help="fresh processes per import (default 9; the CPU ratios are their medians)",
    )
    parser.add_argument(
        "--listeners",
        help=f"listener counts for the local stack (default {FULL_LISTENERS})",
    )
    parser.add_argument("--heartbeats", type=int, help="heartbeat samples (default 200)")
    parser.add_argument("--doc", type=Path, help=f"where to write (default {report.DOC_PATH})")
    parser.add_argument("--no-doc", action="store_true", help="print only, write no doc")
    args = parser.parse_args(argv)
    if args.only:
        wanted = {name.strip() for name in args.only.split(",") if name.strip()}
        unknown = wanted - set(SECTIONS)
        if unknown:
            parser.error(f"--only: unknown section(s) {', '.join(sorted(unknown))}")
        for name in SECTIONS:
            if name not in wanted:
                setattr(args, "skip_" + name.replace("-", "_"), True)
    return args


def progress(message: str) -> None:
    sys.stderr.write(f"[bench {time.strftime('%H:%M:%S')}] {message}\n")
    sys.stderr.flush()


def _guarded(title: str, build: Callable[[], Section]) -> Section:
    """Run one section; a crash becomes a visible row, never a silently missing section."""
    started = time.perf_counter()
    progress(f"{title} …")
    try:
        section = build()
    except Exception as error:
        section = Section(title)
        section.add("(section failed)", f"{type(error).__name__}", "", "ERROR")
        section.notes.append(f"{type(error).__name__}: {error}")
    progress(f"{title} done in {time.perf_counter() - started:.1f}s")
    return section


def _calls() -> Section:
    from bench.calls import calls_section

    return calls_section()


def _cost(runs: int) -> Section:
    from bench.cost import cost_section

    return cost_section(runs=runs)


def _cold_start(runs: int) -> Section:
    from bench.cold_start import cold_start_section

    return cold_start_section(runs)


def _package() -> Section:
    from bench.package_size import package_section

    return package_section()


def _model(sizes: tuple[int, ...]) -> Section:
    from bench.fanout_model import modelled_section

    return modelled_section(sizes)


def _refresh_wave() -> Section:
    from bench.refresh_model import refresh_section

    return refresh_section()


def _local(sizes: tuple[int, ...], heartbeats: int) -> Section:
    from bench import load, load_report

    why_not = load.environment_ok()
    if why_not:
        section = Section("Through the local stack")
        section.add("(not run)", "—", "", "SKIPPED")
        section.notes.append(why_not)
        return section
    results, notes = load.measure(load.LoadPlan(listeners=sizes, heartbeats=heartbeats))
    return load_report.load_section(results, notes)


def _rehearsal(quick: bool) -> Section:
    from bench.rehearsal import measured_section

    return measured_section(listeners=50 if quick else 300)


def _gateway(quick: bool) -> Section:
    from bench.gateway import GatewayPlan, gateway_section

    return gateway_section(GatewayPlan.quick() if quick else GatewayPlan())


def _console(quick: bool) -> Section:
    from bench.console_load import console_section

    return console_section(loads=3 if quick else 10)


def commands(args: argparse.Namespace) -> list[str]:
    """The exact commands that reproduce this run."""
    lines = ["make bench            # = uv sync --frozen && uv run --frozen python -m bench"]
    flags = [a for a in sys.argv[1:] if a]
    if flags:
        lines.append(f"uv run --frozen python -m bench {' '.join(flags)}   # this run")
    lines += [
        "uv run --frozen python -m bench --quick --no-doc   # smoke run, ~1 min",
        "uv run --frozen python -m bench --only gateway --no-doc   # handshake/message rows",
        "uv run --frozen python -m bench.call_counter       # AWS calls per API, alone",
    ]
    return lines


def _soak(quick: bool) -> Section:
    from bench.soak import SoakPlan, soak_section

    return soak_section(SoakPlan.quick() if quick else SoakPlan())


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    from bench.load import iter_sizes

    listeners = tuple(
        iter_sizes(args.listeners or (QUICK_LISTENERS if args.quick else FULL_LISTENERS))
    )
    runs = args.runs or (2 if args.quick else 9)
    heartbeats = args.heartbeats if args.heartbeats is not None else (20 if args.quick else 200)
    started = time.perf_counter()

    sections: list[Section] = []
    if not args.skip_calls:
        sections.append(_guarded("AWS calls per operation", _calls))
    if not args.skip_cost:
        sections.append(_guarded("cost of 1,000 listener-hours", lambda: _cost(runs)))
    if not args.skip_cold_start:
        sections.append(_guarded("cold-start proxy", lambda: _cold_start(runs)))
    if not args.skip_package:
        sections.append(_guarded("package size", _package))
    if not args.skip_model:
        sections.append(_guarded("modelled fan-out", lambda: _model(listeners)))
        sections.append(_guarded("refresh wave", _refresh_wave))
    if not args.skip_local:
        sections.append(_guarded("local stack", lambda: _local(listeners, heartbeats)))
    if not args.skip_gateway:
        sections.append(_guarded("gateway latency", lambda: _gateway(args.quick)))
    if not args.skip_rehearsal:
        sections.append(_guarded("rehearsal", lambda: _rehearsal(args.quick)))
    if not args.skip_console:
        sections.append(_guarded("web console", lambda: _console(args.quick)))
    if not args.skip_soak:
        sections.append(_guarded("soak and flood", lambda: _soak(args.quick)))
    duration = time.perf_counter() - started

    table = report.render_table(sections)
    notes = report.render_notes(sections)
    print(table)
    if notes:
        print()
        print(notes)
    print(f"\n(measured in {duration:.0f} s)")

    write = not args.no_doc and (args.doc is not None or not args.quick)
    if write:
        path = args.doc or report.DOC_PATH
        report.write_doc(
            path,
            table,
            notes=notes,
            commands=commands(args),
            machine=report.machine_info(),
            duration_s=duration,
            observations=report_text.OBSERVATIONS,
        )
        progress(f"wrote {path}")
    failed = any(row.status == "ERROR" for s in sections for row in s.rows)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
