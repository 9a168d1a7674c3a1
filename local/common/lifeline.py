"""The local stack lives as long as whoever started it, and no longer.

``make dev`` runs make → uv → the stack → the embedded AWS (a moto server process). However
that chain is stopped, nothing of it may run on, holding its ports:

* **Ctrl-C.** A terminal sends SIGINT to its foreground process group: make's, where the
  stack starts. A make that gets SIGINT always dies of it (status 130), and a ``| tee`` or
  ``| jq`` in the same job would die before the stack has said its last lines. So under make
  (``LOCAL_MAKE_PID`` in the environment, set by the Makefile) the stack first moves to a
  process group of its own and makes it the terminal's foreground group
  (``take_terminal``): Ctrl-C then reaches the stack alone, which shuts down and exits 0,
  and so does make. The terminal (found through ``/dev/tty``, wherever stdout and stderr
  go) is given back on exit.
* **A signal to make, or its death.** make forwards SIGTERM to its child (uv forwards it
  to the stack), but not SIGHUP, and it waits for its children before it dies of either.
  ``ParentWatch`` looks every ``interval_s`` at the stack's parent (uv) and at make: one
  that is gone (``kill -9``) or a make that has begun to die of a signal (GNU make resets
  the signal's handler to the default first, which ``/proc/PID/status`` shows in
  ``SigCgt``) stops the stack as SIGTERM does.
* **A launcher's end.** With ``--stop-on-stdin-eof`` the stack stops when its stdin closes
  (``watch_stdin``): tests start it with a pipe they hold, which closes when they die.
* **The stack's own death.** The moto process asks the kernel for SIGKILL when the stack
  dies (``die_with_parent``: ``prctl(PR_SET_PDEATHSIG)``), beside reading its stdin to EOF.

Linux has ``/proc`` and ``prctl``; elsewhere only the parent's exit is watched.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import signal
import sys
import threading
from collections.abc import Callable
from pathlib import Path

MAKE_PID_ENV = "LOCAL_MAKE_PID"
_STDIN_FD = 0
WATCH_INTERVAL_S = 0.2
# make resets the handler of the signal it dies of; a watched make catches these.
_FATAL_TO_MAKE = (signal.SIGHUP, signal.SIGINT, signal.SIGTERM)
_PR_SET_PDEATHSIG = 1


def make_pid(environ: dict[str, str] | None = None) -> int | None:
    """make's PID when the stack runs under ``make dev``, else None."""
    value = (os.environ if environ is None else environ).get(MAKE_PID_ENV, "")
    return int(value) if value.isdigit() and int(value) > 1 else None


def take_terminal() -> Callable[[], None] | None:
    """Make this process's own process group the foreground group of its controlling
    terminal, if it is in the foreground now (not ``make dev &``); returns how to give the
    terminal back, or None when there is no terminal to take."""
    try:
        tty = os.open("/dev/tty", os.O_RDWR | os.O_NOCTTY)
    except OSError:  # no controlling terminal
        return None
    try:
        previous = os.tcgetpgrp(tty)
        if previous != os.getpgrp():  # in the background: the terminal is someone else's
            os.close(tty)
            return None
        os.setpgid(0, 0)
        _set_foreground(tty, os.getpgrp())
        # Ctrl-Z would stop the stack while make, which its shell waits for, runs on: the
        # shell would never get the terminal back. Ctrl-C it is.
        signal.signal(signal.SIGTSTP, signal.SIG_IGN)
    except OSError:
        os.close(tty)
        return None

    def give_back() -> None:
        with contextlib.suppress(OSError):
            if os.tcgetpgrp(tty) == os.getpgrp():
                _set_foreground(tty, previous)
        with contextlib.suppress(OSError):
            os.close(tty)

    return give_back


def _set_foreground(tty: int, pgrp: int) -> None:
    # A process outside the foreground group that changes it gets SIGTTOU: ignore it meanwhile.
    old = signal.signal(signal.SIGTTOU, signal.SIG_IGN)
    try:
        os.tcsetpgrp(tty, pgrp)
    finally:
        signal.signal(signal.SIGTTOU, old)


def caught_signals(pid: int) -> set[int] | None:
    """The signals ``pid`` has a handler for (``SigCgt``), or None if unknown/gone."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    for line in status.splitlines():
        if line.startswith("SigCgt:"):
            mask = int(line.split()[1], 16)
            return {n for n in range(1, 65) if mask & (1 << (n - 1))}
    return None


def alive(pid: int) -> bool:
    """The process exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    except OSError:  # no /proc: ask the kernel
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


class ParentWatch:
    """Calls ``on_gone(why)`` once, from a daemon thread, when the stack's parent exits or
    is replaced, or when make (``make``'s PID) exits or starts dying of a signal."""

    def __init__(
        self,
        on_gone: Callable[[str], None],
        make: int | None = None,
        interval_s: float = WATCH_INTERVAL_S,
    ) -> None:
        self.on_gone = on_gone
        self.parent = os.getppid()
        self.make = make if make is not None and make != os.getpid() else None
        self.interval_s = interval_s
        caught = caught_signals(self.make) if self.make is not None else None
        self._make_catches = {s for s in _FATAL_TO_MAKE if caught and s in caught}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="parent-watch", daemon=True)

    def start(self) -> ParentWatch:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()

    def check(self) -> str | None:
        """Why the stack should stop now, or None."""
        if os.getppid() != self.parent:
            return f"its parent process (pid {self.parent}) is gone"
        if self.make is None:
            return None
        if not alive(self.make):
            return f"make (pid {self.make}) is gone"
        if self._make_catches:
            caught = caught_signals(self.make) or set()
            dying = sorted(self._make_catches - caught)
            if dying:
                name = signal.Signals(dying[0]).name
                return f"make (pid {self.make}) got {name}"
        return None

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            why = self.check()
            if why is not None:
                self.on_gone(why)
                return


def die_with_parent(sig: int = signal.SIGKILL, parent: int | None = None) -> None:
    """Ask the kernel to send ``sig`` to this process when its parent dies (Linux), and exit
    at once if that already happened (``parent``: the PID it was started by)."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, int(sig), 0, 0, 0)
    if parent is not None and os.getppid() != parent:
        os._exit(1)  # the parent died before the request: nobody will stop us


def watch_stdin(
    loop: asyncio.AbstractEventLoop,
    on_line: Callable[[], None],
    on_eof: Callable[[], None] | None = None,
) -> None:
    """When stdin is a terminal or ``on_eof`` is given, read it in a daemon thread: each line
    (Enter) calls ``on_line`` on ``loop``; at EOF (the launcher is gone), ``on_eof``.

    Raw ``os.read`` on the descriptor: a daemon thread blocked inside the buffered
    ``sys.stdin`` would abort the interpreter at exit (its lock is held).
    """
    try:
        terminal = os.isatty(_STDIN_FD)
    except OSError:
        terminal = False
    if not terminal and on_eof is None:
        return
    # In the background (make dev &), reading the terminal fails instead of stopping us.
    signal.signal(signal.SIGTTIN, signal.SIG_IGN)

    def read() -> None:
        with contextlib.suppress(OSError, RuntimeError):  # the loop may already be closed
            while chunk := os.read(_STDIN_FD, 4096):
                if b"\n" in chunk:
                    loop.call_soon_threadsafe(on_line)
        if on_eof is not None:
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(on_eof)

    threading.Thread(target=read, name="stdin", daemon=True).start()
