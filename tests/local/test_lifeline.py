"""The stack's lifeline (local.common.lifeline) on real processes, without make: a watched
make that starts dying of a signal or is gone, and a child that dies with its parent.

The end-to-end matrix through make itself is tests/local/test_make_dev.py.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from local.common import lifeline

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")

# Behaves as GNU make does with the signals it dies of: a handler for each, reset to the
# default (make's fatal_error_signal) when SIGUSR1 comes, then waiting (for its children).
MAKE_LIKE = """
import signal, sys, time
for s in (signal.SIGHUP, signal.SIGINT, signal.SIGTERM):
    signal.signal(s, lambda *_: None)
signal.signal(signal.SIGUSR1, lambda *_: signal.signal(signal.SIGHUP, signal.SIG_DFL))
print("ready", flush=True)
time.sleep(60)
"""


def wait_until(condition, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def test_a_watched_make_that_starts_dying_of_a_signal_or_is_gone_stops_the_stack():
    make = subprocess.Popen([sys.executable, "-c", MAKE_LIKE], stdout=subprocess.PIPE, text=True)
    try:
        assert make.stdout is not None and make.stdout.readline().strip() == "ready"
        assert {signal.SIGHUP, signal.SIGINT, signal.SIGTERM} <= (
            lifeline.caught_signals(make.pid) or set()
        )
        watch = lifeline.ParentWatch(lambda _why: None, make=make.pid)
        assert watch.check() is None
        make.send_signal(signal.SIGUSR1)  # make got SIGHUP: its handler is reset first
        assert wait_until(lambda: watch.check() is not None)
        assert watch.check() == f"make (pid {make.pid}) got SIGHUP"
        make.kill()
        make.wait(10)
        assert watch.check() == f"make (pid {make.pid}) is gone"
    finally:
        make.kill()
        make.wait(10)


def test_the_watch_calls_back_once_from_its_thread():
    make = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    told: list[str] = []
    watch = lifeline.ParentWatch(told.append, make=make.pid, interval_s=0.02).start()
    try:
        make.kill()
        make.wait(10)
        assert wait_until(lambda: bool(told))
        time.sleep(0.1)
        assert told == [f"make (pid {make.pid}) is gone"]
    finally:
        watch.stop()


# A parent that starts a child asking to die with it, prints the child's PID and waits.
PARENT = """
import os, subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c",
    "import os, sys, time; sys.path.insert(0, sys.argv[1]); "
    "from local.common.lifeline import die_with_parent; "
    "die_with_parent(parent=int(sys.argv[2])); print('armed', flush=True); time.sleep(60)",
    sys.argv[1], str(os.getpid())], stdout=subprocess.PIPE, text=True)
child.stdout.readline()
print(child.pid, flush=True)
time.sleep(60)
"""


def test_a_child_that_asked_to_die_with_its_parent_dies_when_the_parent_is_killed():
    root = str(Path(__file__).resolve().parents[2])
    parent = subprocess.Popen(
        [sys.executable, "-c", PARENT, root], stdout=subprocess.PIPE, text=True
    )
    try:
        assert parent.stdout is not None
        child = int(parent.stdout.readline())
        assert lifeline.alive(child)
        parent.kill()  # SIGKILL: the parent cannot stop the child itself
        parent.wait(10)
        assert wait_until(lambda: not lifeline.alive(child))
    finally:
        parent.kill()
        parent.wait(10)
