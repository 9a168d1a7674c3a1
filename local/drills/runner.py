"""Fire drills: drive a running local stack until an alarm fires, then let it recover.

    python -m local drill --list
    python -m local drill NAME [--port PORT] [--force]

Each drill sends real traffic (WebSocket clients speaking the protocol) and injects a real
fault (``/_local/faults``) until its alarm reaches ALARM, then removes the fault, stops the
traffic and waits for OK, printing every alarm transition on the way. It exits 0 only if
both happened. Without ``--port`` it drills the local stack running from this folder
(``client.local_stack``).

A drill never causes an outage by accident:

* it refuses a stack whose alarms run in real time (``--alarm-time-scale 1``, what ``make
  dev`` starts): there a drill takes many minutes of real alarms; ``make dev
  ARGS="--alarm-time-scale 60"`` starts a stack for drills (``--force`` drills anyway);
* its faults carry its name (``owner``) and a lease of ``LEASE_S`` seconds that it renews
  while it runs, so the stack removes them by itself if the drill dies, even of SIGKILL;
* it removes only its own faults, never those a developer set by hand;
* Ctrl-C, SIGTERM or SIGHUP stop it cleanly: it removes its faults, closes its clients and
  says so.

Clients connect from distinct loopback addresses (127.x.y.z, a fresh block per run), as
distinct users: the per-IP and per-user rate limits of the stack stay in force and are not
what the drill measures.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys
import time
from collections.abc import Sequence
from typing import Any

from client.connection import ClientError
from client.local_stack import NoStackFound, the_running_stack
from local.drills.base import (
    ALARM,
    FOR_DRILLS,
    LEASE_S,
    OK,
    POLL_S,
    Drill,
    DrillFailed,
    DrillRun,
    Stack,
    say,
)
from local.drills.scenarios import DRILLS
from runtime.terminal import printable

__all__ = ["DRILLS", "LEASE_S", "DrillFailed", "find_alarm", "main", "run_drill", "runbook_link"]


# --- running one ---------------------------------------------------------------------------------


def runbook_link(alarm: dict[str, Any], stack: Stack) -> str:
    """The alarm's runbook address; the default (a path in the repository) with the copy the
    running stack serves."""
    address = str(alarm.get("runbook") or "")
    if address.startswith(("http://", "https://")) or "#" not in address:
        return address
    return f"{address}  ({stack.base}/_local/runbooks#{address.split('#', 1)[1]})"


def find_alarm(alarms: Sequence[dict[str, Any]], drill: Drill) -> dict[str, Any]:
    for slug in drill.targets:
        for alarm in alarms:
            if alarm["slug"] == slug or alarm["name"].endswith(f"-{slug}"):
                return alarm
    raise DrillFailed(f"the stack has no alarm {' or '.join(drill.targets)}")


class Watcher:
    """Polls ``/_local/alarms`` and prints every new transition (the drill's alarm marked)."""

    def __init__(self, stack: Stack, target: str) -> None:
        self.stack = stack
        self.target = target
        self.seen: set[tuple[str, str, str]] = set()
        self.state = ""
        self.changed = asyncio.Event()

    async def prime(self) -> None:
        for alarm in await self.stack.acall("GET", "/_local/alarms"):
            for t in alarm["transitions"]:
                self.seen.add((t["name"], t["at"], t["to"]))
            if alarm["name"] == self.target:
                self.state = alarm["state"]

    async def run(self) -> None:
        while True:
            await self.poll()
            await asyncio.sleep(POLL_S)

    async def poll(self) -> None:
        alarms = await self.stack.acall("GET", "/_local/alarms")
        for alarm in alarms:
            for t in alarm["transitions"]:
                key = (t["name"], t["at"], t["to"])
                if key in self.seen:
                    continue
                self.seen.add(key)
                mark = "*" if t["name"] == self.target else " "
                say(f"{mark} {t['name']}: {t['from']} -> {t['to']}  ({t['reason']})")
            if alarm["name"] == self.target and alarm["state"] != self.state:
                self.state = alarm["state"]
                self.changed.set()

    async def until(self, state: str, timeout_s: float) -> float | None:
        """Seconds until the target alarm is in ``state``, or None after ``timeout_s``."""
        began = time.monotonic()
        deadline = began + timeout_s
        while self.state != state:
            self.changed.clear()
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.changed.wait(), left)
        return time.monotonic() - began


async def run_drill(name: str, port: int, host: str = "127.0.0.1", force: bool = False) -> int:
    drill = DRILLS[name]
    stack = Stack(port, host)
    info = await stack.acall("GET", "/_local/info")
    scale = float(info.get("alarmTimeScale", 1))
    if scale <= 1 and not force:
        raise DrillFailed(
            f"the stack on port {port} evaluates its alarms in real time (alarm time scale "
            f"{scale:g}), so a drill would take many minutes of real alarms; start a stack for "
            f"drills with {FOR_DRILLS} (or drill this one anyway with --force)"
        )
    alarm = find_alarm(await stack.acall("GET", "/_local/alarms"), drill)
    period = float(alarm["periodRealSeconds"])
    periods = int(alarm["evaluationPeriods"])
    say(
        f"drill {name}: {drill.summary}\n"
        f"  alarm {alarm['name']}: {alarm['statistic']} of {alarm['metricName']} "
        f"{alarm['comparison']} {alarm['threshold']:g} ({alarm['thresholdSetting']}), "
        f"{alarm['datapointsToAlarm']} of {periods} periods of {alarm['period']} s "
        f"(= {period:g} s at time ×{scale:g})"
    )
    say(f"  runbook: {runbook_link(alarm, stack)}")
    if period > 60:
        say(f"  note: periods this long make a slow drill; {FOR_DRILLS} starts a faster stack")
    run = DrillRun(stack, info, alarm, owner=f"drill {name} (pid {os.getpid()})")
    others = await stack.acall("GET", "/_local/faults")
    if others:
        ids = ", ".join(str(f["id"]) for f in others)
        say(f"  note: fault(s) {ids} set by someone else stay as they are (GET /_local/faults)")
    watcher = Watcher(stack, alarm["name"])
    await watcher.prime()
    if watcher.state == ALARM:
        say(f"  waiting for {alarm['name']} to leave ALARM first")
    watching = asyncio.create_task(watcher.run())
    leases = asyncio.create_task(run.keep_leases())
    fire_budget = 45.0 + period * (periods + 2)
    clear_budget = 20.0 + period * (periods + 2)
    to_alarm = to_ok = None
    try:
        if await watcher.until(OK, clear_budget) is None:
            raise DrillFailed(f"{alarm['name']} is {watcher.state}, not OK: nothing to drill")
        pressure = asyncio.create_task(drill.pressure(run))
        fired = asyncio.create_task(watcher.until(ALARM, fire_budget))
        try:
            await asyncio.wait({pressure, fired}, return_when=asyncio.FIRST_COMPLETED)
            if pressure.done() and pressure.exception() is not None:
                raise pressure.exception()  # type: ignore[misc]
            to_alarm = await fired
        finally:
            for task in (pressure, fired):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        await run.remove_faults()
        await run.close_all()
        say("recovering: the drill's faults removed, traffic stopped")
        if to_alarm is not None:
            to_ok = await watcher.until(OK, clear_budget)
    except ClientError as error:
        raise DrillFailed(str(error)) from None
    finally:
        watching.cancel()
        leases.cancel()
        await _clean_up(run)
    replies = ", ".join(f"{k} {v}" for k, v in sorted(run.replies.items())) or "none"
    say(f"replies seen: {replies}")
    fired_text = f"ALARM after {to_alarm:.1f}s" if to_alarm is not None else "never reached ALARM"
    ok_text = f"OK {to_ok:.1f}s after recovery began" if to_ok is not None else "never back to OK"
    passed = to_alarm is not None and to_ok is not None
    say(f"drill {name}: {'PASSED' if passed else 'FAILED'}: {fired_text}; {ok_text}")
    return 0 if passed else 1


async def _clean_up(run: DrillRun) -> None:
    """Remove the run's faults and close its clients; when stopped by a signal, say so."""
    task = asyncio.current_task()
    stopped = task is not None and task.cancelling() > 0  # by a signal (_until_signalled)
    try:
        removed = await run.remove_faults()
    except DrillFailed as error:  # the stack is gone: its faults went with it
        removed = []
        if stopped:
            say(f"could not remove the drill's faults ({error}); their lease ends in {LEASE_S:g} s")
    closed = await run.close_all()
    if stopped:
        faults = (
            f"removed its fault(s) {', '.join(map(str, removed))}" if removed else "no fault set"
        )
        say(
            f"stopped: {faults}; closed {closed} client connection(s); faults set by others "
            "left as they were"
        )


async def _until_signalled(name: str, port: int, force: bool) -> int:
    """``run_drill`` that Ctrl-C, SIGTERM or SIGHUP stop cleanly (exit 128 + the signal)."""
    loop = asyncio.get_running_loop()
    received: list[int] = []

    def stop(sig: int) -> None:
        if not received:  # a second signal would cut the clean-up short
            received.append(sig)
            inner.cancel()

    inner = asyncio.ensure_future(run_drill(name, port, force=force))
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        loop.add_signal_handler(sig, stop, sig)
    try:
        return await inner
    except asyncio.CancelledError:
        if received:
            return 128 + received[0]
        raise


def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m local drill",
        description="Drive a running local stack until an alarm fires and clears (start one "
        f"for drills with {FOR_DRILLS}).",
    )
    parser.add_argument("name", nargs="?", choices=sorted(DRILLS), help="the drill to run")
    parser.add_argument("--list", action="store_true", help="list the drills")
    parser.add_argument(
        "--port",
        type=int,
        default=None,
        help="port of the running local stack (default: the one running from this folder)",
    )
    parser.add_argument(
        "--force",
        action="store_true",
        help="drill a stack whose alarms run in real time (alarm time scale 1) anyway",
    )
    args = parser.parse_args(argv)
    if args.list or not args.name:
        for drill in DRILLS.values():
            print(f"{drill.name:<16} {drill.summary}")
        return 0 if args.list else 2
    try:
        port = args.port if args.port is not None else the_running_stack().port
        return asyncio.run(_until_signalled(args.name, port, args.force))
    except (DrillFailed, NoStackFound) as error:
        print(f"error: {printable(error)}", file=sys.stderr)
        return 2
