"""Unit tests of the local stack's pieces: events, context, routing, tokens, environment."""

from __future__ import annotations

import re
import subprocess
import sys
import time

import jwt
import pytest

from local.config import load_config
from local.functions.environment import function_environment
from local.functions.events import (
    ApiInfo,
    LambdaContext,
    Peer,
    connect_event,
    disconnect_event,
    gateway_id,
    message_event,
    scheduled_event,
)
from local.gateway.connection import select_route
from local.gateway.connections_api import connection_id_of
from local.gateway.loopback import host_of, is_loopback_host
from local.process import StackProcess
from local.tokens import TokenIssuer
from runtime.routes import BY_ROUTE_KEY, SCHEDULED
from runtime.settings import SETTINGS
from runtime.tables import TABLES

API = ApiInfo(api_id="abcdefghij", stage="dev", domain_name="localhost:8080", region="eu-west-1")
PEER = Peer(
    connection_id=gateway_id(),
    source_ip="127.0.0.1",
    user_agent="pytest",
    connected_at=1_700_000_000_000,
    headers={"Host": "127.0.0.1:8080", "User-Agent": "pytest"},
)


def test_gateway_ids_look_like_api_gateway_ids():
    ids = {gateway_id() for _ in range(200)}
    assert len(ids) == 200
    assert all(re.fullmatch(r"[A-Za-z0-9]{15}=", i) for i in ids)


def test_connect_event_shape():
    event = connect_event(API, PEER, {"token": ["abc"], "x": ["1", "2"]})
    ctx = event["requestContext"]
    assert ctx["routeKey"] == "$connect" and ctx["eventType"] == "CONNECT"
    assert ctx["connectionId"] == PEER.connection_id
    assert ctx["connectedAt"] == PEER.connected_at
    assert ctx["identity"]["sourceIp"] == "127.0.0.1"
    assert ctx["stage"] == "dev" and ctx["apiId"] == "abcdefghij"
    assert ctx["messageDirection"] == "IN"
    for key in ("requestId", "extendedRequestId", "requestTimeEpoch", "requestTime", "domainName"):
        assert ctx[key]
    assert event["queryStringParameters"] == {"token": "abc", "x": "2"}
    assert event["multiValueQueryStringParameters"]["x"] == ["1", "2"]
    assert event["headers"]["User-Agent"] == "pytest"
    assert event["isBase64Encoded"] is False
    assert connect_event(API, PEER)["queryStringParameters"] is None


def test_message_and_disconnect_events():
    message = message_event(API, PEER, "heartbeat", '{"action":"heartbeat"}')
    assert message["body"] == '{"action":"heartbeat"}'
    assert message["requestContext"]["eventType"] == "MESSAGE"
    assert message["requestContext"]["messageId"]
    assert "queryStringParameters" not in message
    gone = disconnect_event(API, PEER, 1006, "Connection lost")
    ctx = gone["requestContext"]
    assert (ctx["eventType"], ctx["routeKey"]) == ("DISCONNECT", "$disconnect")
    assert (ctx["disconnectStatusCode"], ctx["disconnectReason"]) == (1006, "Connection lost")


def test_scheduled_event_and_context():
    function = SCHEDULED[0]
    event = scheduled_event(API, function)
    assert event["source"] == "aws.events" and event["detail-type"] == "Scheduled Event"
    assert event["detail"] == {} and event["region"] == "eu-west-1"
    context = LambdaContext(BY_ROUTE_KEY["createSession"], "dev", "eu-west-1", "stream")
    assert context.function_name == "session-management-dev-create-session"
    assert context.invoked_function_arn.endswith(":function:session-management-dev-create-session")
    assert context.memory_limit_in_mb == str(BY_ROUTE_KEY["createSession"].memory_mb)
    assert context.log_group_name == "/aws/lambda/session-management-dev-create-session"
    remaining = context.get_remaining_time_in_millis()
    assert 0 < remaining <= BY_ROUTE_KEY["createSession"].timeout_s * 1000


@pytest.mark.parametrize(
    ("body", "route"),
    [
        ('{"action":"createSession"}', "createSession"),
        ('{"action":"joinSession","sessionId":"x"}', "joinSession"),
        ('{"action":"nope"}', "$default"),
        ('{"action":"$connect"}', "$default"),
        ('{"action":"$disconnect"}', "$default"),
        ('{"action":"$default"}', "$default"),
        ('{"action":5}', "$default"),
        ('{"noAction":true}', "$default"),
        ("[1,2]", "$default"),
        ("not json", "$default"),
        ("", "$default"),
        # Nested too deeply for json to parse: the action cannot be read (issue 9, item 4).
        ("[" * 100_000 + "]" * 100_000, "$default"),
        ('{"a":' * 100_000 + "1" + "}" * 100_000, "$default"),
    ],
)
def test_route_selection(body, route):
    assert select_route(body, BY_ROUTE_KEY) == route


def test_tokens_verify_against_the_jwks():
    issuer = TokenIssuer("http://localhost:1/local-issuer/dev", "aud-1")
    token = issuer.mint("alice", 60)
    assert jwt.get_unverified_header(token)["kid"] == issuer.kid
    (key,) = jwt.PyJWKSet.from_dict(issuer.jwks()).keys
    claims = jwt.decode(
        token, key.key, algorithms=["RS256"], audience="aud-1", issuer=issuer.issuer
    )
    assert claims["sub"] == "alice" and claims["token_use"] == "id"
    assert claims["exp"] > time.time()
    with pytest.raises(jwt.ExpiredSignatureError):
        jwt.decode(issuer.mint("alice", -120), key.key, algorithms=["RS256"], audience="aud-1")
    other = TokenIssuer(issuer.issuer, "aud-1")
    with pytest.raises(jwt.InvalidSignatureError):
        jwt.decode(other.mint("mallory"), key.key, algorithms=["RS256"], audience="aud-1")


def test_function_environment_renders_every_contract(tmp_path):
    config = load_config("dev", ["maxActiveSessions=3"], root=tmp_path, environ={})
    env = function_environment(
        config,
        aws_endpoint="http://127.0.0.1:4566",
        connections_endpoint="http://127.0.0.1:8080/dev",
        issuer="iss",
        audience="aud",
        jwks_url="http://127.0.0.1:8080/.well-known/jwks.json",
        ip_hash_key_parameter="/session-management-dev/ip-hash-key",
    )
    for setting in SETTINGS:
        if setting.runtime and not setting.secret:
            assert setting.env in env
    assert env["MAX_ACTIVE_SESSIONS"] == "3" and env["STAGE"] == "dev"
    for table in TABLES:
        assert env[table.env] == table.physical_name("dev")
    assert env["CONNECTIONS_ENDPOINT"] == "http://127.0.0.1:8080/dev"
    # The key is in the embedded SSM, as on AWS; the environment only names it.
    assert "IP_HASH_KEY" not in env
    assert env["IP_HASH_KEY_PARAMETER"] == "/session-management-dev/ip-hash-key"
    assert (env["AUTH_ISSUER"], env["AUTH_AUDIENCE"]) == ("iss", "aud")
    assert env["AUTH_JWKS_URL"].endswith("/.well-known/jwks.json")
    assert env["AWS_ENDPOINT_URL"] == "http://127.0.0.1:4566"
    assert env["AWS_DEFAULT_REGION"] == config.region


@pytest.mark.parametrize(
    ("authority", "loopback"),
    [
        ("localhost:8080", True),
        ("LOCALHOST", True),
        ("127.0.0.1:8080", True),
        ("127.1.2.3", True),
        ("[::1]:8080", True),
        ("[::1]", True),
        ("evil.example:8080", False),
        ("localhost.evil.example:8080", False),
        ("128.0.0.1:8080", False),
        ("0.0.0.0:8080", False),
        ("[::2]:8080", False),
        ("", False),
        ("127.0.0.1.evil.example", False),
    ],
)
def test_loopback_hosts(authority, loopback):
    assert is_loopback_host(host_of(authority)) is loopback


def test_connection_paths():
    assert connection_id_of("/dev/@connections/abc%3D", "dev") == "abc="
    assert connection_id_of("/@connections/abc=", "dev") == "abc="
    assert connection_id_of("/prod/@connections/abc=", "dev") is None
    assert connection_id_of("/dev/@connections/", "dev") is None
    assert connection_id_of("/dev/other/abc", "dev") is None


def test_a_running_stacks_log_leaves_out_the_line_still_being_written(tmp_path) -> None:
    # A test polling the log of a running stack read half a JSON line and failed to parse it.
    stack = StackProcess((), tmp_path, "partial")
    stack.stdout_path.write_text('{"a": 1}\n{"b": ')
    stack.process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        assert stack.log_records() == [{"a": 1}]
    finally:
        stack.process.kill()
        stack.process.wait()
    # Once it has exited every line counts: a torn last line is then a bug to report.
    assert stack.stdout_lines() == ['{"a": 1}', '{"b": ']


def test_connections_age_on_the_alarms_clock_in_the_functions_events():
    # --alarm-time-scale 60: a connection open for 100 s looks 100 minutes old to the
    # functions (its refresh comes); scale 1 is API Gateway's own connectedAt.
    from local.functions.events import scaled_connected_at

    now = 1_800_000_000_000
    assert scaled_connected_at(now - 100_000, now, 60) == now - 6_000_000
    assert scaled_connected_at(now - 100_000, now, 1) == now - 100_000
    assert scaled_connected_at(now + 5, now, 60) == now  # never younger than now
