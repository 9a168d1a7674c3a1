"""Cold-start proxy: how long a fresh process takes to import each handler module.

Each sample is one new ``python -I`` process that times ``import <module>`` with
``perf_counter`` and prints the seconds; the interpreter's own start-up is excluded. The
environment is minimal (PATH plus what a function is configured with), so nothing from the
developer's shell changes what gets imported.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from bench.report import Section, fmt_ms, median

ROOT = Path(__file__).resolve().parent.parent
REFERENCE_MODULE = "boto3"
SUBPROCESS_TIMEOUT_S = 60.0

# What a deployed function's environment holds (values are placeholders: nothing connects).
FUNCTION_ENV = {
    "STAGE": "bench",
    "IP_HASH_KEY": "bench-hmac-key",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
    "AWS_ACCESS_KEY_ID": "bench",
    "AWS_SECRET_ACCESS_KEY": "bench",
    "CONNECTIONS_ENDPOINT": "http://127.0.0.1:9/bench",
    "LANG": "C.UTF-8",
}

_PROBE = """\
import sys, time
sys.path.insert(0, {root!r})
started = time.perf_counter()
import {module}
print(repr(time.perf_counter() - started))
"""
# After the handler's imports: what its first AWS call costs before any request is sent.
_FIRST_CLIENTS_PROBE = """\
import sys, time
sys.path.insert(0, {root!r})
import runtime.handlers.join_session
from runtime import aws
started = time.perf_counter()
aws.dynamodb(); aws.cloudwatch()
print(repr(time.perf_counter() - started))
"""


class ImportFailed(RuntimeError):
    """The module could not be imported in a fresh process."""


@dataclass(frozen=True)
class ImportTiming:
    module: str
    samples: tuple[float, ...]

    @property
    def median_s(self) -> float:
        return median(self.samples)


def clean_env() -> dict[str, str]:
    """PATH and the function's variables, nothing else."""
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **FUNCTION_ENV}


def import_seconds(module: str, *, python: str = sys.executable, root: Path = ROOT) -> float:
    """Seconds one fresh isolated process spends importing ``module``."""
    return _probe(_PROBE.format(root=str(root), module=module), module, python, root)


def first_clients_seconds(*, python: str = sys.executable, root: Path = ROOT) -> float:
    """Seconds a fresh process spends creating its DynamoDB and CloudWatch clients."""
    return _probe(_FIRST_CLIENTS_PROBE.format(root=str(root)), "boto3 clients", python, root)


def _probe(code: str, what: str, python: str, root: Path) -> float:
    result = subprocess.run(
        [python, "-I", "-c", code],
        capture_output=True,
        text=True,
        env=clean_env(),
        cwd=root,
        timeout=SUBPROCESS_TIMEOUT_S,
        check=False,
    )
    if result.returncode != 0:
        last = (result.stderr.strip().splitlines() or ["no output"])[-1]
        raise ImportFailed(f"{what} failed: {last}")
    return float(result.stdout.strip().splitlines()[-1])


def measure_import(
    module: str, runs: int = 5, *, python: str = sys.executable, warmup: bool = True
) -> ImportTiming:
    """``runs`` fresh-process samples (after one discarded run that warms bytecode caches)."""
    if runs < 1:
        raise ValueError("runs must be ≥ 1")
    if warmup:
        import_seconds(module, python=python)
    return ImportTiming(module, tuple(import_seconds(module, python=python) for _ in range(runs)))


def handler_modules() -> list[str]:
    """Every distinct handler module of the route table, in table order."""
    from runtime.routes import ROUTES

    return list(dict.fromkeys(function.module for function in ROUTES))


def measure_imports(
    modules: list[str], runs: int = 5, *, python: str = sys.executable
) -> dict[str, ImportTiming | ImportFailed]:
    """Interleaved samples: one warm-up pass, then ``runs`` passes over every module.

    Round-robin rather than module by module, so a burst of other work on the machine lands
    on every module alike instead of inflating one of them.
    """
    if runs < 1:
        raise ValueError("runs must be ≥ 1")
    samples: dict[str, list[float]] = {module: [] for module in modules}
    failed: dict[str, ImportFailed] = {}
    for attempt in range(runs + 1):
        for module in modules:
            if module in failed:
                continue
            try:
                seconds = import_seconds(module, python=python)
            except (ImportFailed, subprocess.TimeoutExpired) as error:
                failed[module] = ImportFailed(str(error))
                continue
            if attempt:  # the first pass only warms the bytecode caches
                samples[module].append(seconds)
    return {
        module: failed.get(module) or ImportTiming(module, tuple(samples[module]))
        for module in modules
    }


def cold_start_section(runs: int = 5, modules: list[str] | None = None) -> Section:
    """The table section: median import time per handler, next to ``import boto3``."""
    section = Section(f"Cold-start proxy (median import time over {runs} fresh processes)")
    handlers = modules if modules is not None else handler_modules()
    timings = measure_imports([REFERENCE_MODULE, *handlers], runs)
    reference = timings[REFERENCE_MODULE]
    if isinstance(reference, ImportFailed):
        section.notes.append(f"reference import failed: {reference}")
        return section
    section.add(f"`import {REFERENCE_MODULE}` (reference)", fmt_ms(reference.median_s), "1.00×")
    slowest: tuple[float, str] | None = None
    for module in handlers:
        timing = timings[module]
        if isinstance(timing, ImportFailed):
            section.add(f"`import {module}`", "failed", "", "ERROR")
            section.notes.append(str(timing))
            continue
        ratio = timing.median_s / reference.median_s
        section.add(f"`import {module}`", fmt_ms(timing.median_s), f"{ratio:.2f}× boto3")
        slowest = max(slowest or (0.0, ""), (timing.median_s, module))
    try:
        first_clients = median([first_clients_seconds() for _ in range(runs)])
    except (ImportFailed, subprocess.TimeoutExpired) as error:
        section.notes.append(str(error))
    else:
        section.add(
            "then creating the DynamoDB + CloudWatch clients (first AWS call's set-up)",
            fmt_ms(first_clients),
            f"{first_clients / reference.median_s:.2f}× boto3",
        )
    if slowest is not None:
        try:
            shares = importtime_by_package(slowest[1])
        except (ImportFailed, subprocess.TimeoutExpired) as error:
            section.notes.append(str(error))
        else:
            total = sum(shares.values()) or 1.0
            ranked = list(shares.items())[:5]
            top = ", ".join(f"{name} {share / total:.0%}" for name, share in ranked)
            section.add(
                f"where `{slowest[1].rsplit('.', 1)[-1]}`'s import time goes (-X importtime)",
                top,
                "share of import time, by the package our code imported",
            )
    return section


def importtime_by_package(module: str, *, python: str = sys.executable) -> dict[str, float]:
    """Seconds of import work (``-X importtime`` self time) per top-level package."""
    result = subprocess.run(
        [python, "-I", "-X", "importtime", "-c", _PROBE.format(root=str(ROOT), module=module)],
        capture_output=True,
        text=True,
        env=clean_env(),
        cwd=ROOT,
        timeout=SUBPROCESS_TIMEOUT_S,
        check=False,
    )
    if result.returncode != 0:
        raise ImportFailed(f"import {module} failed under -X importtime")
    return parse_importtime(result.stderr, module)


def parse_importtime(stderr: str, module: str | None = None) -> dict[str, float]:
    """``-X importtime`` output → seconds of self time by what brought it in, largest first.

    Each module's self time is charged to the first package outside ``runtime`` on its import
    chain (so asyncio imported by loguru counts as loguru); the service's own modules, and
    only they, count as ``runtime``. Only the tree of ``module`` (the last top-level import
    when None) is read, so interpreter start-up is left out.
    """
    entries: list[tuple[int, int, str]] = []  # (self µs, depth, name), in output order
    for line in stderr.splitlines():
        if not line.startswith("import time:"):
            continue
        fields = line.split(":", 1)[1].split("|")
        if len(fields) != 3 or not fields[0].strip().isdigit():
            continue  # the header line
        raw = fields[2][1:]  # one space after the bar, then two per nesting level
        depth = (len(raw) - len(raw.lstrip(" "))) // 2
        entries.append((int(fields[0]), depth, raw.strip()))
    roots = [i for i, (_, depth, name) in enumerate(entries) if depth == 0]
    roots = [i for i in roots if module is None or entries[i][2] == module]
    if not roots:
        return {}
    root = roots[-1]
    first = root
    while first > 0 and entries[first - 1][1] > 0:
        first -= 1
    totals: dict[str, float] = {}
    chain: list[str] = []
    for self_us, depth, name in reversed(entries[first : root + 1]):  # pre-order
        del chain[depth:]
        chain.append(name)
        owner = next((n for n in chain[1:] if n.split(".")[0] != "runtime"), "runtime")
        key = owner.split(".")[0]
        totals[key] = totals.get(key, 0.0) + self_us / 1e6
    return dict(sorted(totals.items(), key=lambda item: item[1], reverse=True))
