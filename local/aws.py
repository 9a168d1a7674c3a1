"""Embedded AWS: a moto server on 127.0.0.1 with the tables of ``runtime.tables``.

Tables are created from the one set of definitions (keys, GSIs, on-demand) with TTL enabled.
moto never expires items, so ``expire_items`` simulates DynamoDB TTL: it deletes items whose
TTL attribute (epoch seconds) is in the past, with a condition so a concurrent refresh wins.
"""

from __future__ import annotations

import logging
import socket
import time
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError
from moto.server import ThreadedMotoServer

from runtime.tables import TABLES, Table

DUMMY_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "local", "AWS_SECRET_ACCESS_KEY": "local"}
_SCAN_PAGES = 100  # bound on one TTL pass: 100 pages of up to 1 MB each


class EmbeddedAwsError(RuntimeError):
    """The embedded AWS server could not start."""


class _MotoServer(ThreadedMotoServer):
    """ThreadedMotoServer that reports a failed bind instead of waiting forever."""

    error: BaseException | None = None

    def _server_entry(self) -> None:
        try:
            super()._server_entry()
        except BaseException as error:
            self.error = error
            self._server_ready_event.set()


class EmbeddedAws:
    """The moto server and boto3 clients bound to it."""

    def __init__(self, port: int, region: str, host: str = "127.0.0.1") -> None:
        self.region = region
        self.host = host
        self._requested_port = port
        self._server: _MotoServer | None = None
        self.port = port

    @property
    def endpoint(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> None:
        # werkzeug would log every request; moto's own output is not for stdout either.
        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        _check_port_free(self.host, self._requested_port)
        server = _MotoServer(ip_address=self.host, port=self._requested_port, verbose=False)
        server.start()
        if server.error is not None:
            raise EmbeddedAwsError(
                f"embedded AWS could not listen on {self.host}:{self._requested_port}: "
                f"{server.error}"
            )
        self._server = server
        self.port = server.get_host_and_port()[1]

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None

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
                if error.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
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
