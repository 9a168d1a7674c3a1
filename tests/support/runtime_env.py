"""The functions' environment in tests and the tables of a fresh (moto) account."""

from __future__ import annotations

import boto3

from runtime.tables import TABLES

STAGE = "test"
IP_HASH_KEY = "test-hmac-key-0123456789"
IP_HASH_KEY_PARAMETER = f"/session-management-{STAGE}/ip-hash-key"
SOURCE_IP = "203.0.113.77"

ENV = {
    "STAGE": STAGE,
    "IP_HASH_KEY_PARAMETER": IP_HASH_KEY_PARAMETER,
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "CONNECTIONS_ENDPOINT": "https://example.execute-api.us-east-1.amazonaws.com/test",
    "AUTH_ISSUER": "https://issuer.example.test",
    "AUTH_AUDIENCE": "session-clients",
    "AUTH_JWKS_URL": "https://issuer.example.test/.well-known/jwks.json",
}


def put_hash_key(value: str = IP_HASH_KEY) -> None:
    """The stack's HMAC key as the SecureString parameter the functions read (as deployed)."""
    boto3.client("ssm").put_parameter(
        Name=IP_HASH_KEY_PARAMETER, Value=value, Type="SecureString", Overwrite=True
    )


def create_tables() -> None:
    """The service's tables, as the stack defines them, with TTL on, and its HMAC key."""
    put_hash_key()
    ddb = boto3.client("dynamodb")
    for table in TABLES:
        ddb.create_table(**table.create_table_kwargs(STAGE))
        ddb.update_time_to_live(
            TableName=table.physical_name(STAGE),
            TimeToLiveSpecification={"Enabled": True, "AttributeName": table.ttl_attribute},
        )
