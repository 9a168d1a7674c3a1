"""Embedded AWS: a moto server on 127.0.0.1 with the tables of ``runtime.tables``.

The server runs in a child process (``local.aws.server``) that the stack starts and stops.

Tables are created from the one set of definitions (keys, GSIs, on-demand) with TTL enabled.
moto never expires items, so ``expire_items`` simulates DynamoDB TTL: it deletes items whose
TTL attribute (epoch seconds) is in the past, with a condition so a concurrent refresh wins.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import queue
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

from runtime.hash_key import parameter_name_for
from runtime.settings import PROJECT
from runtime.store.dynamo import condition_failed
from runtime.tables import TABLES, Table
from runtime.terminal import printable

# The supervisor's probe, answered by local.aws.server at once (outside its one-request
# lock), so a live process answers it even under load and a stopped one never does.
HEALTH_PATH = "/_local/health"
DUMMY_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "local", "AWS_SECRET_ACCESS_KEY": "local"}
_SCAN_PAGES = 100  # bound on one TTL pass: 100 pages of up to 1 MB each


class EmbeddedAwsError(RuntimeError):
    """The embedded AWS server could not start."""


class EmbeddedAws:
    """The moto server process and boto3 clients bound to it."""

    def __init__(self, port: int, region: str, host: str = "127.0.0.1") -> None:
        self.region = region
        self.host = host
        self._requested_port = port
        self._process: subprocess.Popen[bytes] | None = None
        self.port = port

    @property
    def endpoint(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        """The server process's ID (for tests that take the embedded AWS away)."""
        return self._process.pid if self._process is not None else None

    def exit_code(self) -> int | None:
        """The server process's exit code (negative: the signal), None while it runs."""
        return self._process.poll() if self._process is not None else None

    def answers(self, timeout_s: float) -> bool:
        """True if the server answers its health request within ``timeout_s``."""
        conn = http.client.HTTPConnection(self.host, self.port, timeout=timeout_s)
        try:
            conn.request("GET", HEALTH_PATH)
            return conn.getresponse().status == 200
        except (OSError, http.client.HTTPException):
            return False
        finally:
            conn.close()

    def restart(self, timeout_s: float = 60.0) -> None:
        """Start a new server process on the same port (the functions' endpoint is fixed)."""
        old = self._process
        if old is not None and old.poll() is None:
            old.kill()
            old.wait(10)
        self._requested_port = self.port
        self.start(timeout_s)

    def start(self, timeout_s: float = 60.0) -> None:
        """Start the server process and wait until it listens."""
        self.spawn()
        self.wait_ready(timeout_s)

    def spawn(self) -> None:
        """Start ``local.aws.server`` without waiting (it takes a moment to import moto)."""
        _check_port_free(self.host, self._requested_port)
        process = subprocess.Popen(  # noqa: S603 (our own interpreter and module)
            [
                sys.executable,
                "-m",
                "local.aws.server",
                "--host",
                self.host,
                "--port",
                str(self._requested_port),
                "--parent",
                str(os.getpid()),
            ],
            cwd=Path(__file__).resolve().parents[2],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            start_new_session=True,  # Ctrl-C reaches the stack, which stops us last
        )
        self._process = process
        self._lines: queue.Queue[bytes] = queue.Queue()
        threading.Thread(target=_forward, args=(process, self._lines), daemon=True).start()

    def wait_ready(self, timeout_s: float = 60.0) -> None:
        """Wait for the ``READY <port>`` line of the spawned server."""
        process = self._process
        assert process is not None, "spawn() first"
        try:
            first = self._lines.get(timeout=timeout_s).decode(errors="replace").strip()
        except queue.Empty:
            self.stop()
            raise EmbeddedAwsError(f"embedded AWS did not start within {timeout_s:.0f}s") from None
        if not first.startswith("READY "):
            self.stop()
            detail = first.removeprefix("ERROR ") or f"exit code {process.poll()}"
            raise EmbeddedAwsError(
                f"embedded AWS could not listen on {self.host}:{self._requested_port}: {detail}"
            )
        self.port = int(first.split()[1])

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        if process.stdin is not None:
            with contextlib.suppress(OSError):
                process.stdin.close()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)

    def kill(self) -> None:
        """Stop the server process at once (nothing it holds is needed any more)."""
        process = self._process
        if process is not None and process.poll() is None:
            process.kill()
        self.stop()

    def client(self, service: str) -> Any:
        return boto3.client(
            service,
            endpoint_url=self.endpoint,
            region_name=self.region,
            aws_access_key_id=DUMMY_CREDENTIALS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=DUMMY_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
            config=Config(retries={"mode": "standard", "max_attempts": 3}),
        )

    def create_tables(self, stage: str, tables: tuple[Table, ...] = TABLES) -> list[str]:
        """Create every table (with its indexes) and enable TTL; returns the physical names."""
        dynamodb = self.client("dynamodb")
        names = []
        for table in tables:
            kwargs = table.create_table_kwargs(stage)
            dynamodb.create_table(**kwargs)
            dynamodb.update_time_to_live(
                TableName=kwargs["TableName"],
                TimeToLiveSpecification={"Enabled": True, "AttributeName": table.ttl_attribute},
            )
            names.append(kwargs["TableName"])
        return names

    def put_hash_key(self, stage: str, value: str) -> str:
        """The stack's HMAC key as the SecureString parameter the functions read, as on AWS;
        returns the parameter's name."""
        name = parameter_name_for(f"{PROJECT}-{stage}")
        self.client("ssm").put_parameter(
            Name=name, Value=value, Type="SecureString", Overwrite=True
        )
        return name

    def expire_items(self, stage: str, tables: tuple[Table, ...] = TABLES) -> int:
        """Delete items whose TTL attribute is in the past; returns how many were deleted."""
        dynamodb = self.client("dynamodb")
        deleted = 0
        for table in tables:
            deleted += _expire_table(dynamodb, table, table.physical_name(stage))
        return deleted


def _expire_table(dynamodb: Any, table: Table, name: str) -> int:
    now = {":now": {"N": str(int(time.time()))}}
    names = {"#ttl": table.ttl_attribute, "#key": table.hash_key}
    deleted = 0
    start_key: dict[str, Any] | None = None
    for _ in range(_SCAN_PAGES):
        kwargs: dict[str, Any] = {
            "TableName": name,
            "FilterExpression": "#ttl < :now",
            "ProjectionExpression": "#key",
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": now,
        }
        if start_key:
            kwargs["ExclusiveStartKey"] = start_key
        page = dynamodb.scan(**kwargs)
        for item in page.get("Items", []):
            try:
                dynamodb.delete_item(
                    TableName=name,
                    Key={table.hash_key: item[table.hash_key]},
                    ConditionExpression="#ttl < :now",
                    ExpressionAttributeNames={"#ttl": table.ttl_attribute},
                    ExpressionAttributeValues=now,
                )
                deleted += 1
            except ClientError as error:
                if not condition_failed(error):
                    raise
        start_key = page.get("LastEvaluatedKey")
        if not start_key:
            break
    return deleted


def _check_port_free(host: str, port: int) -> None:
    if port == 0:
        return
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as error:
            raise EmbeddedAwsError(
                f"port {port} is in use ({error.strerror}): is another local stack running? "
                "Pick another with --aws-port"
            ) from None


def _forward(process: subprocess.Popen[bytes], lines: queue.Queue[bytes]) -> None:
    """Hand the first stdout line to ``start``; pass anything later on to stderr."""
    assert process.stdout is not None
    for number, line in enumerate(process.stdout):
        if number == 0:
            lines.put(line)
        else:
            sys.stderr.write("aws: " + printable(line.decode(errors="replace").rstrip("\n")) + "\n")
    lines.put(b"")
