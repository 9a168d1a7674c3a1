"""A newcomer's first hour (issue 14), through the commands as they are printed.

The banner's hints are run exactly as printed (from the project folder, with ``uv run``);
the @connections URL it prints goes to boto3 as ``endpoint_url`` unchanged; connection IDs
come from ``python -m local connections``; the CLI refuses a heartbeat interval the stack
would refuse; start-up problems are one clean line; ``make dev`` takes ``ARGS``, shows the
banner again on Enter and exits 0 on Ctrl-C (on a real pseudo-terminal).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import select
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import boto3
import pytest

from client.local_stack import fetch_info
from local.config import project_root
from tests.local.local_support import (
    heartbeat_once,
    launch,
    listener,
    open_ws,
    read_until,
    request,
    speaker,
)

pytestmark = pytest.mark.slow
CLI_TIMEOUT_S = 60
PYTHON_CLI = [sys.executable, "-m", "local"]


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    for running in launch(
        tmp_path_factory.mktemp("firsthour"),
        "firsthour",
        "--set",
        "heartbeatsPerMinute=2",
        "--set",
        "connectionAttemptsPerMinute=1000",
        "--set",
        "listenerJoinsPerMinute=1000",
    ):
        # One connection first, so the functions have logged whichever of this module's tests
        # a pytest-xdist worker runs (the teardown checks every stdout line).
        asyncio.run(heartbeat_once(running.url))
        yield running


def as_pasted(command: str) -> list[str]:
    """A printed command line, split like a shell; ``uv`` as installed on this machine."""
    words = shlex.split(command)
    if words[0] == "uv" and shutil.which("uv") is None:
        words = [sys.executable, "-m", "uv", *words[1:]]
    return words


def banner_field(stack, label: str) -> str:
    match = re.search(rf"^  {re.escape(label)}\s+(\S+)", stack.stderr(), re.MULTILINE)
    assert match, f"no {label!r} line in the banner:\n{stack.stderr()}"
    return match.group(1)


def banner_commands(stack) -> list[str]:
    """The banner's ``try:`` lines, without their trailing comments."""
    lines = stack.stderr().split("  try:", 1)[1].splitlines()
    commands = []
    for line in lines:
        if not line.strip().startswith("uv run"):
            break
        commands.append(line.strip().split("   (")[0])
    return commands


def test_banner_hints_run_as_printed_and_its_endpoint_url_reaches_a_listener(stack):
    commands = banner_commands(stack)
    assert [c.split()[:5] for c in commands] == [
        ["uv", "run", "python", "-m", "local"] for _ in commands
    ]
    speak_line = next(c for c in commands if " speak" in c)
    connections_line = next(c for c in commands if " connections" in c)
    endpoint_url = banner_field(stack, "@connections")
    assert "{" not in endpoint_url and "@connections" not in endpoint_url  # not a template

    common = {"cwd": project_root(), "stdout": subprocess.PIPE, "stderr": subprocess.PIPE}
    speak = subprocess.Popen(as_pasted(speak_line), text=True, **common)
    listen = None
    try:
        printed = read_until(speak, "listeners:")
        assert re.search(r"expires \d{4}-\d{2}-\d{2} \d{2}:\d{2}", printed), printed
        listen_line = printed.split("listeners:")[1].strip()
        assert listen_line.startswith("uv run python -m local listen ")
        session_id = listen_line.split()[6]
        listen = subprocess.Popen(as_pasted(listen_line), text=True, **common)
        read_until(listen, "sessionJoined")

        table = subprocess.run(
            as_pasted(connections_line), capture_output=True, text=True, timeout=CLI_TIMEOUT_S
        )
        assert table.returncode == 0, table.stderr
        rows = [line.split() for line in table.stdout.splitlines() if session_id in line]
        roles = {row[1]: row[0] for row in rows if row[1] in ("speaker", "listener")}
        assert set(roles) == {"speaker", "listener"}, table.stdout
        assert f'endpoint_url="{endpoint_url}"' in table.stdout

        api = boto3.client(
            "apigatewaymanagementapi",
            endpoint_url=endpoint_url,
            region_name=stack.info["region"],
            aws_access_key_id="local",
            aws_secret_access_key="local",
        )
        api.post_to_connection(ConnectionId=roles["listener"], Data=b'{"type": "hello"}')
        read_until(listen, "hello")

        speak.send_signal(signal.SIGINT)
        assert speak.wait(30) == 0, speak.stderr.read()
        assert "speakerDisconnected" in read_until(listen, "sessionEnded")
        assert listen.wait(30) == 0
    finally:
        for process in (speak, listen):
            if process is not None and process.poll() is None:
                process.kill()
                process.wait(10)


def test_connections_lists_each_connection_with_its_role_and_session(stack):
    async def scenario() -> None:
        spk, session_id = await speaker(stack.url, stack.token("lister"))
        lst, joined = await listener(stack.url, session_id, "de")
        assert joined["type"] == "sessionJoined"
        bare = await open_ws(stack.url)
        await request(bare, {"action": "heartbeat"})
        result = await asyncio.to_thread(
            subprocess.run,
            [*PYTHON_CLI, "connections", "--port", str(stack.port), "--json"],
            cwd=project_root(),
            capture_output=True,
            text=True,
            timeout=CLI_TIMEOUT_S,
        )
        assert result.returncode == 0, result.stderr
        listed = json.loads(result.stdout)
        mine = {c["role"]: c for c in listed if c["sessionId"] == session_id}
        assert mine["speaker"]["userId"] == "lister"
        assert mine["listener"]["targetLanguage"] == "de"
        assert any(c["role"] is None for c in listed)  # connected, no role yet
        assert all(re.fullmatch(r"[A-Za-z0-9]{15}=", c["connectionId"]) for c in listed)
        for ws in (spk, lst, bare):
            await ws.close()

    asyncio.run(asyncio.wait_for(scenario(), 90))


def test_local_endpoints_refuse_browsers(stack):
    import urllib.error
    import urllib.request

    for path in ("/_local/connections", "/_local/info", "/_local/token?user=x"):
        req = urllib.request.Request(
            f"http://127.0.0.1:{stack.port}{path}", headers={"Origin": "http://evil.example"}
        )
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(req, timeout=10)
        assert refused.value.code == 403


def test_a_heartbeat_interval_the_stack_would_refuse_is_refused_up_front(stack):
    assert fetch_info(stack.port)["settings"]["heartbeatsPerMinute"] == 2
    result = subprocess.run(
        [
            *PYTHON_CLI,
            "listen",
            "golden-eagle-427",
            "--lang",
            "es",
            "--url",
            stack.url,
            "--heartbeat",
            "5",
        ],
        cwd=project_root(),
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT_S,
    )
    assert result.returncode == 2
    assert "--heartbeat 5 is too often" in result.stderr
    assert "2 a minute" in result.stderr and "every 30 s or more" in result.stderr
    assert result.stdout == ""


def test_a_deployed_url_is_held_to_the_default_heartbeat_limit():
    result = subprocess.run(
        [
            *PYTHON_CLI,
            "speak",
            "--url",
            "wss://abc123.execute-api.us-east-1.amazonaws.com/dev",
            "--token",
            "x",
            "--heartbeat",
            "10",
        ],
        cwd=project_root(),
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT_S,
    )
    assert result.returncode == 2
    assert "--heartbeat 10 is too often" in result.stderr
    assert "every 15 s or more" in result.stderr


# --- finding the stack, commands and URLs ---------------------------------------------------------


def cli(*args: str, stacks_dir: Path | None = None) -> subprocess.CompletedProcess:
    """``python -m local ARGS`` from the project folder (``stacks_dir``: where stacks register)."""
    env = {k: v for k, v in os.environ.items() if k != "SESSION_URL"}
    if stacks_dir is not None:
        env["LOCAL_STACKS_DIR"] = str(stacks_dir)
    return subprocess.run(
        [*PYTHON_CLI, *args],
        cwd=project_root(),
        env=env,
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT_S,
        stdin=subprocess.DEVNULL,
    )


def test_the_tools_find_the_stack_running_from_this_folder_without_a_port(stack):
    entry = json.loads((stack.stacks_dir / f"{stack.port}.json").read_text())
    assert (entry["pid"], entry["websocketUrl"], entry["stack"]) == (
        stack.info["pid"],
        stack.url,
        "dev",
    )
    token = cli("token", "--user", "alice", stacks_dir=stack.stacks_dir)
    assert token.returncode == 0, token.stderr
    assert token.stdout.strip().count(".") == 2  # a JWT
    table = cli("connections", "--json", stacks_dir=stack.stacks_dir)
    assert table.returncode == 0, table.stderr
    assert isinstance(json.loads(table.stdout), list)
    env = {**os.environ, "LOCAL_STACKS_DIR": str(stack.stacks_dir)}
    env.pop("SESSION_URL", None)
    speak = subprocess.Popen(
        [*PYTHON_CLI, "speak"],
        cwd=project_root(),
        env=env,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        printed = read_until(speak, "listeners:")
        assert f"connected        {stack.url}" in printed
        speak.send_signal(signal.SIGINT)
        assert speak.wait(30) == 0
    finally:
        if speak.poll() is None:
            speak.kill()
            speak.wait(10)


def test_the_tools_say_when_no_stack_or_several_run_from_this_folder(stack, tmp_path):
    commands = [
        ("token", "--user", "alice"),
        ("connections",),
        ("speak",),
        ("listen", "golden-eagle-427", "--lang", "es"),
        ("drill", "server-errors"),
    ]
    for command in commands:
        result = cli(*command, stacks_dir=tmp_path / "none")
        assert result.returncode != 0, command
        (line,) = result.stderr.strip().splitlines()
        assert "no local stack is running from this folder: start one with `make dev`" in line
    several = tmp_path / "several"
    several.mkdir()
    entry = json.loads((stack.stacks_dir / f"{stack.port}.json").read_text())
    for port in (stack.port, stack.port + 1):
        (several / f"{port}.json").write_text(json.dumps({**entry, "port": port}))
    for command in commands:
        result = cli(*command, stacks_dir=several)
        assert result.returncode != 0, command
        (line,) = result.stderr.strip().splitlines()
        assert "2 local stacks are running from this folder" in line, line
        assert f"port {stack.port} " in line and f"port {stack.port + 1} " in line
        assert "pick one with --port PORT" in line


def test_a_stale_stack_file_is_ignored_and_removed(stack, tmp_path):
    finished = subprocess.Popen(["true"])  # a PID that no longer runs
    finished.wait()
    directory = tmp_path / "stacks"
    directory.mkdir()
    entry = json.loads((stack.stacks_dir / f"{stack.port}.json").read_text())
    (directory / f"{stack.port}.json").write_text(json.dumps(entry))
    stale = directory / "9.json"
    stale.write_text(json.dumps({**entry, "port": 9, "pid": finished.pid}))
    result = cli("token", "--user", "alice", stacks_dir=directory)
    assert result.returncode == 0, result.stderr
    assert not stale.exists()


def test_a_drill_against_a_stack_whose_alarms_run_in_real_time_refuses_in_one_line(stack):
    result = cli("drill", "server-errors", "--port", str(stack.port))
    assert result.returncode == 2
    (line,) = result.stderr.strip().splitlines()
    assert "evaluates its alarms in real time" in line
    assert 'make dev ARGS="--alarm-time-scale 60"' in line and "--force" in line
    assert fetch_faults(stack.port) == []


def fetch_faults(port: int) -> list:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/_local/faults", timeout=10) as answer:
        return json.loads(answer.read())


def test_a_misspelt_command_lists_the_commands_and_suggests_the_closest():
    result = cli("spaek")
    assert result.returncode == 2
    (line,) = result.stderr.strip().splitlines()
    assert "no command 'spaek' (did you mean speak?)" in line
    assert "token, connections, speak, listen, drill" in line


@pytest.mark.parametrize(
    "command", [("speak",), ("listen", "golden-eagle-427", "--lang", "es")], ids=["speak", "listen"]
)
def test_an_http_url_gets_the_same_error_from_speak_and_listen(command):
    result = cli(*command, "--url", "http://127.0.0.1:9/dev")
    assert result.returncode == 1
    (line,) = result.stderr.strip().splitlines()
    assert line.endswith(
        "error: not a WebSocket URL: http://127.0.0.1:9/dev (expected ws://… or wss://…)"
    )


# --- start-up problems ---------------------------------------------------------------------------


def start_stack(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*PYTHON_CLI, *args],
        cwd=project_root(),
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )


def one_error_line(result: subprocess.CompletedProcess) -> str:
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr  # no traceback
    assert "error:" in lines[0]
    assert result.stdout == ""
    return lines[0]


@pytest.mark.parametrize("flag", ["--port", "--aws-port"])
def test_a_busy_port_is_one_clean_line_naming_its_flag(flag):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        other = "--aws-port" if flag == "--port" else "--port"
        result = start_stack(flag, str(port), other, "0")
    assert result.returncode == 1
    line = one_error_line(result)
    assert str(port) in line and f"Pick another with {flag}" in line
    assert "(Address already in use)" in line and "while attempting" not in line


def test_one_port_for_both_flags_names_the_two_flags(unused_port):
    result = start_stack("--port", str(unused_port), "--aws-port", str(unused_port))
    assert result.returncode == 2
    line = one_error_line(result)
    assert "--port and --aws-port are both" in line and str(unused_port) in line


# --- make dev on a terminal ----------------------------------------------------------------------


class Terminal:
    """``make dev`` on a pseudo-terminal of its own, as a user's shell would run it."""

    def __init__(self, *make_args: str) -> None:
        self.master, slave = os.openpty()
        # The child makes the terminal its controlling one, then becomes make.
        become_make = (
            "import fcntl, os, sys, termios; fcntl.ioctl(0, termios.TIOCSCTTY, 0); "
            "os.execvp('make', ['make', *sys.argv[1:]])"
        )
        self.process = subprocess.Popen(
            [sys.executable, "-c", become_make, "-s", "dev", *make_args],
            cwd=project_root(),
            stdin=slave,
            stdout=slave,
            stderr=slave,
            start_new_session=True,
        )
        os.close(slave)
        self.output = ""

    def read_until(self, needle: str, timeout: float = 120, start: int = 0) -> str:
        deadline = time.monotonic() + timeout
        while needle not in self.output[start:] and time.monotonic() < deadline:
            ready, _, _ = select.select([self.master], [], [], 0.2)
            if ready:
                try:
                    self.output += os.read(self.master, 65536).decode(errors="replace")
                except OSError:  # the other side closed
                    break
        assert needle in self.output[start:], f"no {needle!r}:\n{self.output[-4000:]}"
        return self.output

    def type(self, keys: bytes) -> None:
        os.write(self.master, keys)

    def wait(self, timeout: float = 60) -> int:
        deadline = time.monotonic() + timeout
        while self.process.poll() is None and time.monotonic() < deadline:
            ready, _, _ = select.select([self.master], [], [], 0.2)
            if ready:
                try:
                    self.output += os.read(self.master, 65536).decode(errors="replace")
                except OSError:
                    time.sleep(0.1)
        return self.process.wait(5)

    def close(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)
        os.close(self.master)


def test_make_dev_takes_args_shows_the_banner_again_and_exits_0_on_ctrl_c():
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    terminal = Terminal("PORT=0", "AWS_PORT=0", "ARGS=--set maxListenersPerSession=2")
    try:
        shown = terminal.read_until("Ctrl-C stops.")
        port = int(re.search(r"WebSocket\s+ws://127\.0\.0\.1:(\d+)/dev", shown).group(1))
        assert fetch_info(port)["settings"]["maxListenersPerSession"] == 2
        assert "--set maxListenersPerSession" in shown  # the banner names where config came from

        mark = len(terminal.output)
        terminal.type(b"\n")
        again = terminal.read_until("Ctrl-C stops.", 30, start=mark)[mark:]
        assert re.search(r"local stack 'dev' up \d+ min", again)
        assert "speaker token" in again

        terminal.type(b"\x03")  # Ctrl-C: the terminal signals its foreground job
        assert terminal.wait(90) == 0, terminal.output[-3000:]
        assert "stopped" in terminal.output
        assert "Interrupt" not in terminal.output  # make did not die of the signal
    finally:
        terminal.close()


def test_the_readme_documents_make_dev_args():
    readme = (Path(project_root()) / "README.md").read_text()
    assert 'make dev ARGS="--set maxListenersPerSession=2"' in readme
