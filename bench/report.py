"""The bench's one table (with section rows), the percentile math and docs/benchmarks.md.

Every measurement module returns ``Section`` objects; ``render_table`` turns them into a
single Markdown table (readable as plain text too) and ``write_doc`` puts that table, the
commands that reproduce it, the machine it ran on and how each number is measured into
``docs/benchmarks.md``.
"""

from __future__ import annotations

import math
import os
import platform
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

from bench.report_text import METHOD

ROOT = Path(__file__).resolve().parent.parent
DOC_PATH = ROOT / "docs" / "benchmarks.md"
COLUMNS = ("measurement", "result", "budget / reference", "status")


@dataclass(frozen=True)
class Row:
    measurement: str
    result: str
    reference: str = ""
    status: str = ""


@dataclass
class Section:
    title: str
    rows: list[Row] = field(default_factory=list)
    # Notes printed under the table (errors, skipped parts), never silently dropped.
    notes: list[str] = field(default_factory=list)

    def add(self, measurement: str, result: str, reference: str = "", status: str = "") -> None:
        self.rows.append(Row(measurement, result, reference, status))


# --- Numbers -------------------------------------------------------------------------------------


def percentile(values: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile: the smallest value with at least ``pct`` % of values ≤ it."""
    if not values:
        raise ValueError("percentile of no values")
    if not 0 < pct <= 100:
        raise ValueError(f"percentile must be in (0, 100], got {pct}")
    ordered = sorted(values)
    rank = math.ceil(pct / 100 * len(ordered))
    return ordered[max(rank, 1) - 1]


def median(values: Sequence[float]) -> float:
    """The middle value (mean of the two middle ones for an even count)."""
    if not values:
        raise ValueError("median of no values")
    ordered = sorted(values)
    mid = len(ordered) // 2
    if len(ordered) % 2:
        return ordered[mid]
    return (ordered[mid - 1] + ordered[mid]) / 2


def fmt_ms(seconds: float) -> str:
    """Seconds as milliseconds with sensible precision."""
    ms = seconds * 1000
    if ms >= 100:
        return f"{ms:,.0f} ms"
    if ms >= 10:
        return f"{ms:.1f} ms"
    return f"{ms:.2f} ms"


def fmt_bytes(size: int) -> str:
    """A byte count in binary units, with the exact count."""
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            shown = f"{value:.0f} {unit}" if unit == "B" else f"{value:.2f} {unit}"
            return f"{shown} ({size:,} B)"
        value /= 1024
    raise AssertionError("unreachable")


def fmt_percentiles(
    seconds: Sequence[float], pcts: Iterable[int] = (50, 95, 99), failures: int = 0
) -> str:
    """``p50 1.2 ms · p95 3.4 ms · …`` over every attempt; failed ones rank last (``failed``)."""
    if not seconds and not failures:
        return "no samples"
    ranked = [*seconds, *([math.inf] * failures)]
    parts = []
    for p in pcts:
        value = percentile(ranked, p)
        parts.append(f"p{p} {'failed' if math.isinf(value) else fmt_ms(value)}")
    return " · ".join(parts)


# --- The table -----------------------------------------------------------------------------------


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render_table(sections: Sequence[Section]) -> str:
    """One Markdown table; each section starts with a bold title row."""
    lines = [
        "| " + " | ".join(COLUMNS) + " |",
        "|---|---:|---:|:---:|",
    ]
    for section in sections:
        lines.append(f"| **{_cell(section.title)}** | | | |")
        for row in section.rows:
            cells = (row.measurement, row.result, row.reference, row.status)
            lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    return "\n".join(lines)


def render_notes(sections: Sequence[Section]) -> str:
    """The sections' notes as a bullet list ('' when there are none)."""
    notes = [f"- {section.title}: {note}" for section in sections for note in section.notes]
    return "\n".join(notes)


# --- The machine ---------------------------------------------------------------------------------


def cpu_model(cpuinfo: Path = Path("/proc/cpuinfo")) -> str:
    """The CPU's model name as /proc/cpuinfo reports it."""
    try:
        for line in cpuinfo.read_text(encoding="utf-8", errors="replace").splitlines():
            key, sep, value = line.partition(":")
            if sep and key.strip() in ("model name", "Model", "Hardware"):
                return value.strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def _memory() -> str:
    try:
        for line in Path("/proc/meminfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("MemTotal:"):
                kib = int(line.split()[1])
                return f"{kib / 1024 / 1024:.1f} GiB"
    except (OSError, ValueError, IndexError):
        pass
    return "unknown"


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def machine_info() -> dict[str, str]:
    """What the numbers were measured on."""
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count() or 0
    return {
        "CPU": cpu_model(),
        "cores": f"{usable} usable ({os.cpu_count()} online)",
        "memory": _memory(),
        "OS": platform.platform(),
        "Python": f"{platform.python_implementation()} {platform.python_version()}",
        "packages": ", ".join(
            f"{name} {_version(name)}" for name in ("boto3", "moto", "websockets", "loguru")
        ),
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "load average": _load_average(),
    }


def _load_average() -> str:
    """1/5/15-minute load averages: other work on the machine skews every timing."""
    try:
        one, five, fifteen = os.getloadavg()
    except OSError:
        return "unknown"
    return f"{one:.2f} / {five:.2f} / {fifteen:.2f} (1 / 5 / 15 min, when the run ended)"


# --- docs/benchmarks.md --------------------------------------------------------------------------


def write_doc(
    path: Path,
    table: str,
    *,
    notes: str,
    commands: Sequence[str],
    machine: dict[str, str],
    duration_s: float,
    observations: str = "",
) -> None:
    """Write docs/benchmarks.md (generated: ``make bench`` overwrites it)."""
    machine_lines = "\n".join(f"| {_cell(k)} | {_cell(v)} |" for k, v in machine.items())
    parts = [
        "# Benchmarks",
        "",
        "<!-- Generated by `make bench` (bench/report.py); edits here are overwritten. -->",
        "",
        "What one operation of the service costs (AWS calls), how fast a function starts, how",
        "big its package is, and how the service behaves under a burst of real WebSocket",
        f"clients on one machine. The run below took {duration_s:.0f} s.",
        "",
        "## Results",
        "",
        table,
        "",
    ]
    if notes:
        parts += ["Notes from this run:", "", notes, ""]
    if observations:
        parts += ["## Reading the numbers", "", observations.strip(), ""]
    parts += [
        "## Reproduce",
        "",
        "```sh",
        *commands,
        "```",
        "",
        "## Machine",
        "",
        "| | |",
        "|---|---|",
        machine_lines,
        "",
        "## Method",
        "",
        METHOD.rstrip(),
        "",
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(parts), encoding="utf-8")
