"""The client side of a local stack: where it runs, a token, its info, its connections.

The paths and the default token lifetime are defined here, once: the stack serves them
(``local.control``), the CLI, the drills, tests and bench/ call them.

Which local stacks run from this project folder, so the tools find them by themselves: a
running stack writes a small file, ``.local/stacks/<port>.json`` under the project folder
(``pid``, ``port``, ``awsPort``, ``stack``, ``websocketUrl``, ``alarmTimeScale``), once it
serves, and removes it when it stops (``register``). ``speak``, ``listen``, ``token``,
``connections`` and ``drill`` read the folder when no ``--port``/``--url`` is given
(``the_running_stack``): one stack is the one to use; none or several are said so, with what
to do. A file whose process is gone (a stack killed with SIGKILL) is ignored and removed.
``LOCAL_STACKS_DIR`` puts the folder elsewhere (the tests' stacks use their own, so a
developer's ``speak`` never finds them).
"""

from __future__ import annotations

import contextlib
import json
import os
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DEFAULT_TTL_S = 3600
TOKEN_PATH = "/_local/token"  # noqa: S105 (a URL path, not a secret)
INFO_PATH = "/_local/info"
CONNECTIONS_PATH = "/_local/connections"


class NoLocalStack(RuntimeError):
    """No local stack answers on the given port."""


def fetch_token(user: str, port: int, host: str = "127.0.0.1", ttl_s: int = DEFAULT_TTL_S) -> str:
    """Ask the local stack on ``host:port`` for a speaker token for ``user``."""
    query = urllib.parse.urlencode({"user": user, "ttl": ttl_s})
    doc = _get_json(f"http://{host}:{port}{TOKEN_PATH}?{query}", port)
    token = doc.get("token")
    if not isinstance(token, str):
        raise NoLocalStack(f"port {port} answered without a token: {doc}")
    return token


def fetch_info(port: int, host: str = "127.0.0.1") -> dict[str, Any]:
    """The running local stack's URLs and settings summary."""
    return _get_json(f"http://{host}:{port}{INFO_PATH}", port)


def fetch_connections(port: int, host: str = "127.0.0.1") -> list[dict[str, Any]]:
    """The running local stack's open connections, each with its role and session."""
    doc = _get_json(f"http://{host}:{port}{CONNECTIONS_PATH}", port)
    return list(doc.get("connections") or [])


def _get_json(url: str, port: int) -> dict[str, Any]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 (http://127.0.0.1)
            doc: dict[str, Any] = json.loads(response.read().decode())
            return doc
    except urllib.error.HTTPError as error:
        body = error.read().decode(errors="replace")[:300]
        if error.code == 404:
            raise NoLocalStack(
                f"something answers on port {port}, but it is not a local stack ({body!r})"
            ) from None
        raise NoLocalStack(
            f"the local stack on port {port} said HTTP {error.code}: {body}"
        ) from None
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, "reason", error)
        raise NoLocalStack(
            f"no local stack is running on port {port} ({reason}); start one with `make dev` "
            f"or `uv run python -m local --port {port}`"
        ) from None
    except ValueError:
        raise NoLocalStack(f"port {port} did not answer with JSON: not a local stack") from None


# --- which local stacks run from this folder -----------------------------------------------

DIR_ENV = "LOCAL_STACKS_DIR"
_PROJECT_ROOT = Path(__file__).resolve().parents[1]


class NoStackFound(RuntimeError):
    """No running local stack, or several: the message says which and what to do."""


@dataclass(frozen=True)
class RunningStack:
    pid: int
    port: int
    aws_port: int
    stack: str
    websocket_url: str
    alarm_time_scale: float

    def describe(self) -> str:
        return f"port {self.port} (stack '{self.stack}', pid {self.pid})"


def stacks_dir(environ: dict[str, str] | None = None) -> Path:
    env = os.environ if environ is None else environ
    configured = env.get(DIR_ENV)
    return Path(configured) if configured else _PROJECT_ROOT / ".local" / "stacks"


def register(entry: RunningStack, directory: Path | None = None) -> Path:
    """Write ``entry``'s file (atomically); returns its path, for ``unregister``."""
    directory = directory or stacks_dir()
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{entry.port}.json"
    doc = {
        "pid": entry.pid,
        "port": entry.port,
        "awsPort": entry.aws_port,
        "stack": entry.stack,
        "websocketUrl": entry.websocket_url,
        "alarmTimeScale": entry.alarm_time_scale,
    }
    partial = path.with_name(f".{path.name}.{os.getpid()}")
    partial.write_text(json.dumps(doc) + "\n")
    partial.replace(path)
    return path


def unregister(path: Path, pid: int | None = None) -> None:
    """Remove the file at ``path`` if it is still this process's (``pid``)."""
    with contextlib.suppress(OSError, ValueError):
        if pid is None or json.loads(path.read_text()).get("pid") == pid:
            path.unlink()


def running_stacks(directory: Path | None = None) -> list[RunningStack]:
    """The stacks whose process still runs, by port; stale files are removed."""
    directory = directory or stacks_dir()
    found = []
    for path in sorted(directory.glob("*.json")) if directory.is_dir() else []:
        try:
            doc: dict[str, Any] = json.loads(path.read_text())
            entry = RunningStack(
                pid=int(doc["pid"]),
                port=int(doc["port"]),
                aws_port=int(doc["awsPort"]),
                stack=str(doc["stack"]),
                websocket_url=str(doc["websocketUrl"]),
                alarm_time_scale=float(doc.get("alarmTimeScale", 1)),
            )
        except (OSError, ValueError, KeyError, TypeError):
            continue  # being written, or not ours
        if _is_stack(entry.pid):
            found.append(entry)
        else:
            unregister(path, entry.pid)
    return sorted(found, key=lambda e: e.port)


def the_running_stack(directory: Path | None = None) -> RunningStack:
    """The one local stack running from this folder; NoStackFound when none or several."""
    stacks = running_stacks(directory)
    if len(stacks) == 1:
        return stacks[0]
    if not stacks:
        raise NoStackFound(
            "no local stack is running from this folder: start one with `make dev` "
            "(or give --port/--url)"
        )
    listed = ", ".join(s.describe() for s in stacks)
    raise NoStackFound(
        f"{len(stacks)} local stacks are running from this folder ({listed}): pick one with "
        f"--port PORT (or --url)"
    )


def _is_stack(pid: int) -> bool:
    """The process runs and is a local stack (a PID reused by another program is not)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except FileNotFoundError:
        return False
    except OSError:  # no /proc: the process exists, then
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    return b"local" in cmdline


ALARMS_PATH = "/_local/alarms"


def fetch_alarms(port: int, host: str = "127.0.0.1") -> list[dict[str, Any]]:
    """Every alarm of the running local stack: name, state, reason and recent transitions."""
    url = f"http://{host}:{port}{ALARMS_PATH}"
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            doc = json.loads(response.read().decode())
    except (urllib.error.URLError, OSError, ValueError) as error:
        raise NoLocalStack(f"could not read {url}: {error}") from None
    return list(doc) if isinstance(doc, list) else list(doc.get("alarms") or [])
