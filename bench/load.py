"""Load through the local stack: join latency, heartbeat round trip and session-end fan-out.

``python -m local`` runs as a subprocess on free 127.0.0.1 ports with the per-client limits
raised (every client shares one IP). The clients run here, in another process, as real
WebSocket clients (``websockets`` asyncio client) on one event loop. Everything is bounded:
each request has a timeout, each scenario a deadline, and the stack is stopped at the end
whatever happened. Only 127.0.0.1 is ever contacted.

The generator is this module (the stack subprocess, the plan, ``measure``); the scenario is
``bench.load_scenarios``, its clients ``bench.load_clients``, the table ``bench.load_report``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import resource
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.load_clients import STACK, Baseline, sender_pool
from bench.load_results import ScenarioResult
from bench.load_scenarios import run_scenario

ROOT = Path(__file__).resolve().parent.parent
# Every client is 127.0.0.1, so the per-IP and per-connection limits are raised.
STACK_OVERRIDES = (
    "maxListenersPerSession=1000",
    "listenerJoinsPerMinute=100000",
    "connectionAttemptsPerMinute=100000",
    "heartbeatsPerMinute=100000",
    "sessionsPerHour=1000",
)
READY_TIMEOUT_S = 90.0
STOP_TIMEOUT_S = 45.0
WARMUP_LISTENERS = 3


def raise_nofile_limit(wanted: int) -> int:
    """Raise the soft open-files limit towards ``wanted`` (up to the hard limit)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        return target
    return soft


def stack_arguments(overrides: Sequence[str] = STACK_OVERRIDES) -> list[str]:
    """``python -m local`` arguments besides the ports (``local.process`` picks free ones)."""
    args = ["--stack", STACK, "--quiet"]
    for item in overrides:
        args += ["--set", item]
    return args


@contextlib.contextmanager
def running_stack(log_dir: Path, notes: list[str]) -> Iterator[Any]:
    """A local stack subprocess (``local.process.StackProcess``), stopped whatever happens."""
    from local.process import StackFailed, StackProcess

    stack = StackProcess(stack_arguments(), log_dir, "bench-stack")
    stack.start(timeout_s=READY_TIMEOUT_S)
    try:
        yield stack
    finally:
        try:
            code = stack.stop(timeout_s=STOP_TIMEOUT_S)
        except StackFailed as error:
            notes.append(f"the local stack had to be killed: {error}")
        else:
            if code != 0:
                notes.append(f"the local stack exited with {code}")


@dataclass(frozen=True)
class LoadPlan:
    listeners: tuple[int, ...] = (100, 500)
    heartbeats: int = 200
    deadline_s: float = 240.0


async def run_load(plan: LoadPlan, stack: Any) -> list[ScenarioResult]:
    """Every scenario of ``plan`` against a running stack, within ``plan.deadline_s``."""
    token = await asyncio.to_thread(stack.token, "bench-speaker")
    baseline = await asyncio.to_thread(Baseline, stack.info)
    pool = await asyncio.to_thread(sender_pool, stack.info)
    results: list[ScenarioResult] = []

    async def all_scenarios() -> None:
        # Warm-up, not reported: the stack's handlers and clients are created on first use,
        # as in a Lambda container's first invocation; the bench's own clients likewise.
        await run_scenario(
            stack, WARMUP_LISTENERS, token, heartbeats=2, baseline=baseline, pool=pool
        )
        for index, listeners in enumerate(plan.listeners):
            results.append(
                await run_scenario(
                    stack,
                    listeners,
                    token,
                    heartbeats=plan.heartbeats if index == 0 else 0,
                    baseline=baseline,
                    pool=pool,
                )
            )

    try:
        await asyncio.wait_for(all_scenarios(), plan.deadline_s)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    return results


def _is_problem(line: str) -> bool:
    """A stack stderr line worth surfacing: a handler failure, a traceback, a fatal error."""
    return line[9:11] == "! " or "Traceback" in line or line.startswith("Fatal Python error")


def measure(plan: LoadPlan) -> tuple[list[ScenarioResult], list[str]]:
    """Start the stack, run the plan, stop the stack; (results, notes)."""
    notes: list[str] = []
    soft = raise_nofile_limit(max(plan.listeners, default=0) * 2 + 1024)
    if soft < max(plan.listeners, default=0) + 256:
        notes.append(f"open-files limit {soft} is low for {max(plan.listeners)} clients")
    log_dir = Path(tempfile.mkdtemp(prefix="bench-local-"))
    results: list[ScenarioResult] = []
    with running_stack(log_dir, notes) as stack:
        try:
            results = asyncio.run(run_load(plan, stack))
        except TimeoutError:
            notes.append(f"load did not finish within {plan.deadline_s:.0f}s")
    stderr = stack.stderr()
    problems = [line for line in stderr.splitlines() if _is_problem(line)]
    if problems:
        notes.append(f"{len(problems)} problem line(s) on the stack's stderr, e.g. {problems[0]!r}")
    notes.append(f"stack logs kept in {log_dir}")
    return results, notes


def iter_sizes(text: str) -> Iterator[int]:
    """``"100,500"`` → 100, 500."""
    for part in text.split(","):
        if part.strip():
            value = int(part)
            if value < 1:
                raise ValueError("listener counts must be ≥ 1")
            yield value


def environment_ok() -> str | None:
    """Why the load cannot run here (None when it can)."""
    try:
        import websockets  # noqa: F401
    except ImportError:
        return "websockets is not installed (uv sync installs the local group)"
    for needed in ("__main__.py", "process.py"):
        if not (ROOT / "local" / needed).is_file():
            return f"local/{needed} does not exist yet"
    return None if os.name == "posix" else "the load bench needs a POSIX system"
