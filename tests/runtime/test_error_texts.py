"""Every error message the service can send reads the same way (issue 14, item 3).

The handlers are driven with hostile inputs and every error reply they send is collected.
Two checks follow: the collection covers every message the runtime's source can build (each
``ServiceError(...)`` and token-refusal text, found by reading the source), and each message
follows the house style a client developer can rely on:

- one or more sentences, starting with a capital letter (or a quoted field) and ending in ".";
- field names and values the client sent in single quotes ('targetLanguage', 'xx'), never
  double quotes or backticks;
- JSON words for kinds of value (a number, an array, null), never Python type names;
- a clause that says what to do (send, use, retry, wait, ...).
"""

from __future__ import annotations

import ast
import json
import re
import time
from pathlib import Path
from typing import Any

import boto3
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from runtime import auth, invocation, store
from runtime.config import config
from runtime.errors import ServiceError
from runtime.handlers import create_session, default, heartbeat, join_session
from runtime.protocol import MAX_MESSAGE_BYTES, require_string
from tests.runtime.helpers_entry import (
    KID,
    Issuer,
    alg_none_token,
    claims,
    closed_port,
    do_connect,
    join,
    listener,
    new_session,
    rsa_key,
    send,
    sign,
    speaker,
    use_jwks_url,
)
from tests.runtime.helpers_resilience import refresh, set_listener_count
from tests.support.clock import FrozenClock
from tests.support.lambda_events import LambdaContext, message_event, reply
from tests.support.runtime_env import STAGE

RUNTIME = Path(__file__).resolve().parents[2] / "runtime"

# Protocol fields a message may name; each must appear in single quotes. ('action' and
# 'role' are also plain English words, so only their quoted use as a field is checked below.)
FIELDS = ("sessionId", "sourceLanguage", "targetLanguage", "qualityTier", "requestId")
PYTHON_TYPES = re.compile(r"\b(NoneType|None|list|dict|str|int|float|bool|tuple|True|False)\b")
WHAT_TO_DO = re.compile(
    r"\b(send|use|set|add|retry|try|wait|open|connect|check|choose|sign in|ask|leave|report"
    r"|keep)\b",
    re.IGNORECASE,
)
# Values the hostile inputs below send; when a message echoes one, it must be quoted.
SENT_VALUES = ("dance", "gold", "zz", "quiet-lake-555", "not a session", "boss")


@pytest.fixture(name="sent")
def sent_fixture(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """Every error reply (or rejected handshake body) the handlers build during the test."""
    replies: list[dict[str, Any]] = []
    build = invocation.error_message

    def recording(error: Any, request_id: str) -> dict[str, Any]:
        message = build(error, request_id)
        replies.append(message)
        return message

    monkeypatch.setattr(invocation, "error_message", recording)
    return replies


def _set(monkeypatch: pytest.MonkeyPatch, **values: object) -> None:
    for key, value in values.items():
        monkeypatch.setenv(key, str(value))
    config.cache_clear()


def _drive_frames() -> None:
    """Frames that are not a usable message, through ``$default``."""
    bodies: list[Any] = [
        "",
        12345,  # not a text frame
        json.dumps({"action": "dance", "pad": "x" * MAX_MESSAGE_BYTES}),
        "{not json",
        "[1, 2]",
        "null",
        "true",
        '"createSession"',
        "7",
        {},
        {"action": 5},
        {"action": ""},
        {"action": ["createSession"]},
        {"action": "dance"},
        {"action": "heartbeat"},  # a known action whose route is not deployed
        "[" * 1000 + "]" * 1000,  # nested too deeply
    ]
    for body in bodies:
        event = message_event("Frames0000001=", body, route_key="$default")
        default.handler(event, LambdaContext())


def _drive_tokens(issuer: Issuer, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every kind of bad speaker token, at the handshake."""
    now = int(time.time())
    no_kid = jwt.encode(claims(), rsa_key(), algorithm="RS256")
    tokens = [
        "this-is-not-a-jwt",
        alg_none_token(claims()),
        no_kid,
        sign(claims(), kid="rotated-away"),
        sign(claims(iat=now - 7200, exp=now - 3600)),
        sign(claims(aud="someone-else")),
        sign(claims(iss="https://evil.example.test")),
        sign(claims(), rsa_key("attacker")),
        sign(claims(nbf=now + 3600)),
        sign(claims(exp=None)),
        sign(claims(token_use="access")),
        sign(claims(sub="   ")),
    ]
    for i, token in enumerate(tokens):
        do_connect(token, ip=f"198.51.100.{100 + i}")
    # A JWKS whose key under the token's kid is not RSA.
    ec_key = ec.generate_private_key(ec.SECP256R1())
    ec_jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(ec_key.public_key()))
    keys = issuer.state.jwks
    issuer.state.jwks = {"keys": [{**ec_jwk, "kid": KID, "use": "sig"}]}
    auth.clear_cache()
    do_connect(issuer.token(), ip="198.51.100.140")
    issuer.state.jwks = keys
    auth.clear_cache()
    # The identity provider down.
    use_jwks_url(monkeypatch, f"http://127.0.0.1:{closed_port()}/jwks.json")
    do_connect(issuer.token(), ip="198.51.100.141")
    use_jwks_url(monkeypatch, issuer.jwks_url)
    # Too many handshakes from one address.
    _set(monkeypatch, CONNECTION_ATTEMPTS_PER_MINUTE=1, CONNECTION_BURST_PER_ADDRESS=1)
    do_connect(ip="198.51.100.142")
    do_connect(ip="198.51.100.142")
    _set(monkeypatch, CONNECTION_ATTEMPTS_PER_MINUTE=20, CONNECTION_BURST_PER_ADDRESS=600)


def _create(connection_id: str, **fields: Any) -> dict[str, Any]:
    return send(create_session.handler, connection_id, {"action": "createSession", **fields})


def _drive_create(issuer: Issuer, monkeypatch: pytest.MonkeyPatch) -> None:
    _create(listener(ip="198.51.100.150"), sourceLanguage="en")  # no token
    cid = speaker(issuer, "validator", ip="198.51.100.151")
    for fields in (
        {},
        {"sourceLanguage": 5},
        {"sourceLanguage": "english"},
        {"sourceLanguage": "zz"},
        {"sourceLanguage": "en", "qualityTier": "gold"},
        {"sourceLanguage": "en", "qualityTier": None},
    ):
        _create(cid, **fields)
    first, _ = new_session(issuer, "twice", ip="198.51.100.152")
    _create(first, sourceLanguage="en")  # already a speaker
    # A concurrent request won the role between the read and the write.
    racer = speaker(issuer, "racer", ip="198.51.100.153")
    _create(racer, sourceLanguage="en")
    real_get = store.get_connection
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(
            store, "get_connection", lambda c: {k: v for k, v in real_get(c).items() if k != "role"}
        )
        _create(racer, sourceLanguage="en")
    _set(monkeypatch, SESSIONS_PER_HOUR=1)
    busy = speaker(issuer, "busy", ip="198.51.100.154")
    new_session(issuer, "busy", ip="198.51.100.155")
    _create(busy, sourceLanguage="en")
    _set(monkeypatch, SESSIONS_PER_HOUR=50)


def _drive_limits(issuer: Issuer, monkeypatch: pytest.MonkeyPatch) -> None:
    _set(monkeypatch, MAX_ACTIVE_SESSIONS=1)
    _create(speaker(issuer, "full", ip="198.51.100.160"), sourceLanguage="en")
    _set(monkeypatch, MAX_ACTIVE_SESSIONS=100)
    _set(monkeypatch, MAX_ACTIVE_SESSIONS_PER_USER=1)
    new_session(issuer, "hog", ip="198.51.100.163")
    _create(speaker(issuer, "hog", ip="198.51.100.164"), sourceLanguage="en")
    _set(monkeypatch, MAX_ACTIVE_SESSIONS_PER_USER=5)
    _, taken = new_session(issuer, "idowner", ip="198.51.100.161")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(create_session, "generate_session_id", lambda: taken)
        _create(speaker(issuer, "unlucky", ip="198.51.100.162"), sourceLanguage="en")


def _drive_join(issuer: Issuer, monkeypatch: pytest.MonkeyPatch) -> None:
    speaker_cid, session_id = new_session(issuer, "host", ip="198.51.100.170")
    cid = listener(ip="198.51.100.171")
    for body in (
        {},
        {"sessionId": 5, "targetLanguage": "es"},
        {"sessionId": "", "targetLanguage": "es"},
        {"sessionId": "x" * 200, "targetLanguage": "es"},
        {"sessionId": "not a session", "targetLanguage": "es"},
        {"sessionId": session_id},
        {"sessionId": session_id, "targetLanguage": ["es"]},
        {"sessionId": session_id, "targetLanguage": "zz"},
        {"sessionId": "quiet-lake-555", "targetLanguage": "es"},
    ):
        send(join_session.handler, cid, {"action": "joinSession", **body}, ip="198.51.100.171")
    join(speaker_cid, session_id, ip="198.51.100.170")  # the speaker cannot also listen
    join("Closed000001=", session_id, ip="198.51.100.174")  # its $disconnect already ran
    # Past the join limit, and past the failed-lookup budget.
    _set(monkeypatch, LISTENER_JOINS_PER_MINUTE=1, SESSION_LOOKUP_FAILURES_PER_MINUTE=1)
    for _ in range(2):
        join(listener(ip="198.51.100.175"), session_id, ip="198.51.100.175")
    for _ in range(2):
        join(listener(ip="198.51.100.176"), "quiet-lake-555", ip="198.51.100.176")
    _set(monkeypatch, LISTENER_JOINS_PER_MINUTE=10, SESSION_LOOKUP_FAILURES_PER_MINUTE=5)
    _set(monkeypatch, MAX_LISTENERS_PER_SESSION=1)
    join(listener(ip="198.51.100.172"), session_id, ip="198.51.100.172")
    join(listener(ip="198.51.100.173"), session_id, ip="198.51.100.173")  # full
    _set(monkeypatch, MAX_LISTENERS_PER_SESSION=500)


def _drive_refresh(issuer: Issuer, monkeypatch: pytest.MonkeyPatch) -> None:
    speaker_cid, session_id = new_session(issuer, "refresher", ip="198.51.100.180")
    fresh = listener(ip="198.51.100.181")
    refresh(fresh, session_id, "boss")
    refresh(fresh, session_id, "listener")  # no targetLanguage
    refresh(listener(ip="198.51.100.182"), session_id, "speaker")  # no token
    refresh(speaker(issuer, "intruder", ip="198.51.100.183"), session_id, "speaker")
    refresh(speaker_cid, session_id, "listener", "es")  # already has a role
    refresh(listener(ip="198.51.100.184"), "quiet-lake-555", "listener", "es")
    refresh(listener(ip="198.51.100.186"), session_id, "listener", "es", token=42)
    # Two refreshes replacing one speaker connection: the second finds it replaced.
    for ip in ("198.51.100.187", "198.51.100.188"):
        refresh(speaker(issuer, "refresher", ip=ip), session_id, "speaker", replacing=speaker_cid)
    # Past the cap (no proof), and past the cap and its refresh slack (with proof).
    member = listener(ip="198.51.100.189")
    join(member, session_id, ip="198.51.100.189")
    _set(monkeypatch, MAX_LISTENERS_PER_SESSION=1)
    set_listener_count(session_id, 2)
    refresh(listener(ip="198.51.100.185"), session_id, "listener", "es")
    refresh(listener(ip="198.51.100.185"), session_id, "listener", "es", replacing=member)
    _set(monkeypatch, MAX_LISTENERS_PER_SESSION=500)


def _drive_heartbeats(monkeypatch: pytest.MonkeyPatch) -> None:
    _set(monkeypatch, HEARTBEATS_PER_MINUTE=1)
    cid = listener(ip="198.51.100.190")
    for _ in range(2):
        reply(heartbeat.handler(message_event(cid, {"action": "heartbeat"}), LambdaContext()))
    _set(monkeypatch, HEARTBEATS_PER_MINUTE=4)


def _drive_failures(issuer: Issuer) -> None:
    cid = speaker(issuer, "unlucky-too", ip="198.51.100.200")

    def broken(*args: object, **kwargs: object) -> None:
        raise KeyError("bug")

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(store, "create_session", broken)
        _create(cid, sourceLanguage="en")  # INTERNAL_ERROR
    boto3.client("dynamodb").delete_table(TableName=f"session-management-{STAGE}-Sessions")
    _create(cid, sourceLanguage="en")  # SERVICE_UNAVAILABLE


def _drive_shared_checks(sent: list[dict[str, Any]]) -> None:
    """Checks no route reaches today (every caller passes a looser limit), called directly."""
    try:
        require_string({"sessionId": "x" * 65}, "sessionId", max_length=64)
    except ServiceError as error:
        sent.append({"code": error.code.value, "message": error.message})


def _templates() -> list[tuple[str, list[str]]]:
    """(where, literal fragments) of every error message the runtime's source can build."""
    found: list[tuple[str, list[str]]] = []
    for path in sorted(RUNTIME.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Name):
                continue
            if node.func.id == "ServiceError" and len(node.args) >= 2:
                text = node.args[1]
            elif node.func.id == "_unauthorized" and node.args:
                text = node.args[0]
            else:
                continue
            fragments = [f for f in _literal_parts(text) if len(f.strip(" ;:.,'")) >= 4]
            if fragments:
                found.append((f"{path.name}:{node.lineno}", fragments))
    found += [(f"auth._REASONS {reason}", [text]) for _, reason, text in auth._REASONS]
    return found


def _literal_parts(node: ast.AST) -> list[str]:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [node.value]
    if isinstance(node, ast.JoinedStr):
        return [v.value for v in node.values if isinstance(v, ast.Constant)]
    if isinstance(node, ast.BinOp):
        return _literal_parts(node.left) + _literal_parts(node.right)
    return []  # a name: its text is a literal elsewhere (e.g. auth._MALFORMED, _REASONS)


def style_problems(text: str) -> list[str]:
    """What is wrong with one error message, in words; empty when it reads the house way."""
    problems = []
    if not re.match(r"^['A-Z]", text) or not text.endswith("."):
        problems.append("not a sentence (capital or quoted field first, '.' last)")
    if '"' in text or "`" in text:
        problems.append("double quotes or backticks (use single quotes)")
    if PYTHON_TYPES.search(text):
        problems.append(f"Python type name {PYTHON_TYPES.search(text).group(0)!r}")
    for field in FIELDS:
        for match in re.finditer(rf"(?<![\w']){field}(?![\w'])", text):
            problems.append(f"field {field!r} not in single quotes at {match.start()}")
    for value in SENT_VALUES:
        if re.search(rf"(?<![\w']){re.escape(value)}(?![\w'])", text):
            problems.append(f"client value {value!r} not in single quotes")
    if not WHAT_TO_DO.search(text):
        problems.append("no clause saying what to do")
    return problems


def test_every_error_message_the_service_can_send_reads_the_same_way(
    issuer: Issuer,
    sent: list[dict[str, Any]],
    monkeypatch: pytest.MonkeyPatch,
    frozen_clock: FrozenClock,  # the rate limits it drives must not roll over midway
) -> None:
    _drive_frames()
    _drive_tokens(issuer, monkeypatch)
    _drive_join(issuer, monkeypatch)
    _drive_refresh(issuer, monkeypatch)
    _drive_heartbeats(monkeypatch)
    _drive_create(issuer, monkeypatch)
    _drive_limits(issuer, monkeypatch)
    _drive_failures(issuer)  # last: it deletes a table
    _drive_shared_checks(sent)
    messages = sorted({m["message"] for m in sent})
    codes = {m["code"] for m in sent}

    uncovered = [
        where
        for where, fragments in _templates()
        if not any(all(f in text for f in fragments) for text in messages)
    ]
    assert not uncovered, f"error texts no hostile input produced: {uncovered}"
    assert codes >= {
        "INVALID_MESSAGE",
        "INVALID_ACTION",
        "INVALID_PARAMETERS",
        "INVALID_SESSION_ID",
        "UNSUPPORTED_LANGUAGE",
        "UNAUTHORIZED",
        "FORBIDDEN",
        "SESSION_NOT_FOUND",
        "RATE_LIMIT_EXCEEDED",
        "SESSION_FULL",
        "SESSION_LIMIT_REACHED",
        "USER_SESSION_LIMIT_REACHED",
        "SERVICE_UNAVAILABLE",
        "INTERNAL_ERROR",
    }
    bad = {text: style_problems(text) for text in messages if style_problems(text)}
    assert not bad, json.dumps(bad, indent=1, ensure_ascii=False)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("The message must be a JSON object, not list.", "Python type name"),
        ("targetLanguage is required; send it.", "field 'targetLanguage' not in single quotes"),
        ("'targetLanguage' is required.", "no clause saying what to do"),
        ('"sessionId" is required; add it.', "double quotes"),
        ("Unknown action dance; use another.", "client value 'dance' not in single quotes"),
        ("the token is bad; sign in again", "not a sentence"),
    ],
)
def test_the_style_check_catches_each_kind_of_slip(text: str, problem: str) -> None:
    assert any(p.startswith(problem) for p in style_problems(text)), style_problems(text)


def test_the_message_for_a_number_action_says_what_is_wrong(
    issuer: Issuer, sent: list[dict[str, Any]]
) -> None:
    default.handler(message_event("Frames0000002=", {"action": 5}), LambdaContext())
    assert sent[-1]["message"] == (
        "'action' must be a non-empty string, not a number; "
        "use one of createSession, joinSession, heartbeat, refreshConnection."
    )
