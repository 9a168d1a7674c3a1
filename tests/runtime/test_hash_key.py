"""The stack's HMAC key comes from SSM Parameter Store, once per process (cold start)."""

from __future__ import annotations

import hashlib
import hmac
import json

import boto3

from runtime import aws as runtime_aws
from runtime.handlers import connect, heartbeat
from runtime.hash_key import PARAMETER_ENV, ip_hash_key
from runtime.hashing import connection_hash
from tests.support.lambda_events import LambdaContext, connect_event, message_event
from tests.support.runtime_env import IP_HASH_KEY, IP_HASH_KEY_PARAMETER


def count_get_parameter() -> list[str]:
    calls: list[str] = []
    runtime_aws.ssm().meta.events.register(
        "provide-client-params.ssm.GetParameter",
        lambda params, **_: calls.append(params["Name"]),
    )
    return calls


def test_the_key_is_the_decrypted_parameter_read_once_per_process(aws: None) -> None:
    calls = count_get_parameter()
    assert ip_hash_key() == IP_HASH_KEY.encode()
    expected = hmac.new(IP_HASH_KEY.encode(), b"conn:Abc123=", hashlib.sha256).hexdigest()
    assert connection_hash("Abc123=") == expected[:16]
    for n in range(3):
        connect.handler(connect_event(f"Once{n:03d}="), LambdaContext())
        heartbeat.handler(
            message_event(f"Once{n:03d}=", '{"action": "heartbeat"}'), LambdaContext()
        )
    assert calls == [IP_HASH_KEY_PARAMETER]


def test_the_environment_names_the_parameter_and_holds_no_key(runtime_env: dict) -> None:
    assert runtime_env[PARAMETER_ENV] == IP_HASH_KEY_PARAMETER
    assert IP_HASH_KEY not in json.dumps(runtime_env)


def test_an_unreadable_key_is_a_structured_error_not_an_exception(aws: None, capsys) -> None:
    boto3.client("ssm").delete_parameter(Name=IP_HASH_KEY_PARAMETER)
    response = connect.handler(connect_event("NoKey001="), LambdaContext())
    assert response["statusCode"] == 500
    body = json.loads(response["body"])
    assert (body["type"], body["code"], body["status"]) == ("error", "INTERNAL_ERROR", 500)
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line]
    assert any(line.get("errorCode") == "INTERNAL_ERROR" for line in lines)
    assert all("NoKey001=" not in json.dumps(line) for line in lines)
