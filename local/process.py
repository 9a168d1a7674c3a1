"""Run a local stack as a subprocess on free ports: for tests and the measurement script.

stdout and stderr go to files (a full pipe would block the stack); readiness is the
banner's ``WebSocket`` line on stderr, then ``/_local/info`` for the rest of the URLs.
``stop`` sends SIGTERM and returns the exit code. The stack runs with
``--stop-on-stdin-eof`` and our end of its stdin open, so if this process dies (a crashed
test run) the stack shuts itself down instead of running on.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from client.local_stack import DIR_ENV as STACKS_DIR_ENV
from client.local_stack import fetch_info, fetch_token
from local.config import project_root

_READY = re.compile(r"WebSocket\s+(ws://127\.0\.0\.1:(\d+)/\S+)")


class StackFailed(RuntimeError):
    """The stack exited or did not become ready in time."""


class StackProcess:
    def __init__(self, args: Sequence[str], logs: Path, name: str = "stack") -> None:
        self.args = ["--port", "0", "--aws-port", "0", "--stop-on-stdin-eof", *args]
        self.stdout_path = logs / f"{name}.stdout"
        self.stderr_path = logs / f"{name}.stderr"
        self.stacks_dir = logs / "stacks"
        self.process: subprocess.Popen[bytes] | None = None
        self.info: dict[str, Any] = {}
        self.port = 0
        self.ready_s = 0.0

    @property
    def url(self) -> str:
        return str(self.info["websocketUrl"])

    @property
    def connections_url(self) -> str:
        return str(self.info["connectionsUrl"])

    @property
    def aws_endpoint(self) -> str:
        return str(self.info["awsEndpoint"])

    def start(self, timeout_s: float = 60.0) -> StackProcess:
        started = time.monotonic()
        with self.stdout_path.open("wb") as out, self.stderr_path.open("wb") as err:
            self.process = subprocess.Popen(  # noqa: S603 (our own interpreter and module)
                [sys.executable, "-m", "local", *self.args],
                cwd=project_root(),
                stdout=out,
                stderr=err,
                stdin=subprocess.PIPE,  # the lifeline: closed when we go, the stack stops
                # Its .local/stacks file goes with the logs: a developer's own `speak` never
                # finds a test's stack (client.local_stack).
                env={**os.environ, STACKS_DIR_ENV: str(self.stacks_dir)},
            )
        deadline = started + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise StackFailed(
                    f"the stack exited with {self.process.returncode}:\n{self.stderr()}"
                )
            match = _READY.search(self.stderr())
            if match:
                self.port = int(match.group(2))
                self.info = fetch_info(self.port)
                self.ready_s = time.monotonic() - started
                return self
            time.sleep(0.05)
        self.kill()
        raise StackFailed(f"the stack was not ready after {timeout_s:.0f}s:\n{self.stderr()}")

    def token(self, user: str, ttl_s: int = 3600) -> str:
        return fetch_token(user, self.port, ttl_s=ttl_s)

    def stop(self, timeout_s: float = 60.0) -> int:
        """SIGTERM, wait, return the exit code (killing after ``timeout_s``)."""
        if self.process is None:
            return 0
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.kill()
                raise StackFailed(f"no exit {timeout_s:.0f}s after SIGTERM") from None
        self._close_lifeline()
        return int(self.process.returncode)

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        self._close_lifeline()

    def _close_lifeline(self) -> None:
        if self.process is not None and self.process.stdin is not None:
            with contextlib.suppress(OSError):
                self.process.stdin.close()

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def stdout_lines(self) -> list[str]:
        """stdout's lines; while the stack runs, not the last one if it is still being
        written (a test polling the log read half a JSON line and failed to parse it)."""
        text = self.stdout_path.read_text(errors="replace")
        if self.process is not None and self.process.poll() is None:
            text = text[: text.rfind("\n") + 1]
        return text.splitlines()

    def log_records(self) -> list[dict[str, Any]]:
        """stdout parsed line by line (raises ValueError on a line that is not JSON)."""
        return [json.loads(line) for line in self.stdout_lines()]
