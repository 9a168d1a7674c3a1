"""The supervisor tells a stuck embedded AWS from a busy one (local.aws.supervisor)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from local.aws.supervisor import STUCK_AFTER_S, STUCK_PROBES, AwsSupervisor, process_stopped


class FakeAws:
    pid = 4242
    endpoint = "http://127.0.0.1:1"

    def exit_code(self) -> int | None:
        return None


def supervisor(stopped: bool) -> AwsSupervisor:
    return AwsSupervisor(
        FakeAws(),  # type: ignore[arg-type]
        recreate=lambda: None,
        on_fatal=lambda _why: None,
        stopped=lambda _pid: stopped,
    )


def test_a_busy_process_missing_probes_is_not_declared_stuck_until_silent_long_enough():
    watcher = supervisor(stopped=False)
    start = watcher.last_answer
    for tick in range(1, int(STUCK_AFTER_S / 0.5)):  # missed probes, every 0.5 s, under 5 s
        watcher._note_health(False, now=start + tick * 0.5)
        assert watcher.state == "up" and watcher.problem is None
    watcher._note_health(True, now=start + STUCK_AFTER_S - 0.1)
    assert watcher.state == "up" and watcher.missed == 0 and watcher.busy_misses >= STUCK_PROBES
    # Silent long enough but too few probes missed (one long probe): still busy.
    watcher._note_health(False, now=start + 3 * STUCK_AFTER_S)
    assert watcher.state == "up"


def test_a_silent_running_process_is_stuck_after_enough_time_and_probes():
    watcher = supervisor(stopped=False)
    start = watcher.last_answer
    for tick in range(1, STUCK_PROBES + 1):
        watcher._note_health(False, now=start + STUCK_AFTER_S + tick)
    assert watcher.state == "not answering" and watcher.problem
    watcher._note_health(True, now=start + STUCK_AFTER_S + 10)
    assert watcher.state == "up"


def test_a_stopped_process_is_declared_at_its_first_missed_probe():
    watcher = supervisor(stopped=True)
    watcher._note_health(False, now=watcher.last_answer + 1.0)
    assert watcher.state == "not answering"


def test_process_stopped_reads_the_kernels_state():
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        assert not process_stopped(child.pid)
        os.kill(child.pid, signal.SIGSTOP)
        for _ in range(500):
            if process_stopped(child.pid):
                break
            time.sleep(0.01)
        assert process_stopped(child.pid)
        os.kill(child.pid, signal.SIGCONT)
    finally:
        child.kill()
        child.wait()
    assert not process_stopped(None)
