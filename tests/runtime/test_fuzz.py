"""Every replying route, fed arbitrary frames, answers with exactly one well-formed JSON message.

Handlers are imported from the route table, so a route added there is fuzzed too (and a
route whose handler module is missing fails here, as it should).
"""

from __future__ import annotations

import base64
import importlib
import json
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import event as event_note
from hypothesis import strategies as st

from runtime import store
from runtime.config import config
from runtime.errors import ErrorCode
from runtime.handlers import connect
from runtime.protocol import ACTIONS, MAX_MESSAGE_BYTES
from runtime.routes import WEBSOCKET_ROUTES, Function
from tests.runtime.helpers_entry import ERROR_KEYS
from tests.support.hypothesis_profiles import examples
from tests.support.lambda_events import LambdaContext, connect_event, message_event

REPLYING = [route for route in WEBSOCKET_ROUTES if route.replies]
SUCCESS_TYPES = {
    "createSession": {"sessionCreated"},
    "joinSession": {"sessionJoined"},
    "heartbeat": {"heartbeatAck"},
    "refreshConnection": {"connectionRefreshComplete"},
    "$default": set(),
}
FIELDS = {
    "createSession": ("sourceLanguage", "qualityTier"),
    "joinSession": ("sessionId", "targetLanguage"),
    "refreshConnection": ("sessionId", "role", "targetLanguage"),
}
SESSION_ID = "calm-river-101"
KNOWN_CODES = {code.value for code in ErrorCode}
# A reply of these codes means a bug (an unexpected exception) or a fault we did not inject.
NEVER = {ErrorCode.INTERNAL_ERROR.value}

# Any text, lone surrogates included (hypothesis leaves category Cs out unless asked).
CHARS = st.one_of(st.characters(), st.characters(categories=["Cs"]))
TEXT = st.text(CHARS, max_size=40)
JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()  # NaN and ±Infinity too: json.dumps writes them, json.loads reads them
    | TEXT,
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(TEXT.filter(lambda k: k != "action"), children, max_size=4)
    ),
    max_leaves=12,
)
LANGUAGES = ["en", "es", "de", " FR ", "xx", "en-US"]
# Per field: values that pass validation (mostly) or miss it narrowly.
PLAUSIBLE = {
    "sessionId": st.sampled_from([SESSION_ID, SESSION_ID, "golden-eagle-427", "Calm-river-101"]),
    "sourceLanguage": st.sampled_from(LANGUAGES),
    "targetLanguage": st.sampled_from(LANGUAGES),
    "qualityTier": st.sampled_from(["standard", "premium", "gold"]),
    "role": st.sampled_from(["speaker", "listener", "listener", "admin"]),
}


def _handler(route: Function) -> Callable[..., dict[str, Any]]:
    module_name, _, attribute = route.handler.rpartition(".")
    return getattr(importlib.import_module(module_name), attribute)


def _encode(value: Any, ascii_only: bool) -> str:
    # ensure_ascii=False leaves lone surrogates raw in the frame instead of \\udXXX escapes.
    return json.dumps(value, ensure_ascii=ascii_only)


def _weighted(usual: st.SearchStrategy[Any], rare: st.SearchStrategy[Any]) -> Any:
    """``usual`` 3 times in 4. Not one_of(usual, usual, usual, rare): one_of flattens and
    de-duplicates its branches, so a rare one_of of five would win 5 times in 6."""
    return st.sampled_from((True, True, True, False)).flatmap(lambda u: usual if u else rare)


def bodies(route: Function) -> st.SearchStrategy[Any]:
    """Frames a client could send to this route: valid-looking, malformed and hostile."""
    action = (
        st.sampled_from([*ACTIONS, "dance"]) | TEXT
        if route.route_key == "$default"
        else st.just(route.route_key)
    )
    fields = FIELDS.get(route.route_key or "", ())
    # Mostly plausible values, so that examples get past validation to the data layer.
    values = {f: _weighted(PLAUSIBLE[f], JSON_VALUES) for f in fields}
    shaped = st.builds(
        lambda action, values, extra: {"action": action, **extra, **values},
        action,
        _weighted(st.fixed_dictionaries(values), st.fixed_dictionaries({}, optional=values)),
        st.dictionaries(TEXT.filter(lambda k: k != "action"), JSON_VALUES, max_size=3),
    )
    objects = st.builds(_encode, shaped, st.booleans())
    any_json = st.builds(_encode, JSON_VALUES, st.booleans())
    near_limit = st.builds(
        lambda n, char, action: json.dumps({"action": action, "pad": char * n}, ensure_ascii=False),
        st.integers(MAX_MESSAGE_BYTES // 2 - 64, MAX_MESSAGE_BYTES + 64),
        st.sampled_from(["x", "é"]),  # 1 and 2 UTF-8 bytes: the limit is in bytes
        action,
    )
    nested = st.builds(
        lambda n, opener, closer: opener * n + closer * n,
        st.integers(1, 70_000),
        st.sampled_from(["[", '{"a":']),
        st.just("]"),
    )
    hostile = st.one_of(any_json, TEXT, near_limit, nested, st.none())
    # Mostly route-shaped objects: the hostile frames all stop at parsing.
    return _weighted(objects, hostile)


@pytest.fixture
def fuzz_env(aws: None, monkeypatch: pytest.MonkeyPatch) -> None:
    """Generous limits so examples reach the deep paths (rate limits are tested elsewhere)."""
    for key in ("SESSIONS_PER_HOUR", "LISTENER_JOINS_PER_MINUTE", "HEARTBEATS_PER_MINUTE"):
        monkeypatch.setenv(key, "1000000")
    config.cache_clear()
    store.put_connection("FuzzSpeaker=", connected_at_ms=1, ip_hash="h", user_id="speaker")
    store.create_session(
        {
            "sessionId": SESSION_ID,
            "speakerConnectionId": "FuzzSpeaker=",
            "speakerUserId": "speaker",
            "sourceLanguage": "en",
            "qualityTier": "standard",
            "createdAt": 1,
            "isActive": True,
            "listenerCount": 0,
            "expiresAt": store.ttl_from_now(),
        },
        max_active=1000,
        max_per_user=1000,
    )


_examples = iter(range(10**9))


def _check_reply(route: Function, response: Any) -> str:
    """Assert the one-reply contract; returns the reply's type or error code."""
    assert isinstance(response, dict) and isinstance(response.get("body"), str), response
    message = json.loads(response["body"])
    assert isinstance(message, dict) and isinstance(message.get("type"), str), message
    if message["type"] == "error":
        assert set(message) == ERROR_KEYS, message
        assert message["code"] in KNOWN_CODES - NEVER, message
        assert message["status"] == ErrorCode(message["code"]).status == response["statusCode"]
        assert isinstance(message["details"], dict)
        return message["code"]
    assert message["type"] in SUCCESS_TYPES[route.route_key or ""], message
    assert response["statusCode"] == 200
    return message["type"]


@pytest.mark.parametrize("route", REPLYING, ids=[r.route_key for r in REPLYING])
@settings(
    max_examples=examples(80),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_every_frame_gets_exactly_one_json_reply(
    fuzz_env: None, route: Function, data: st.DataObject
) -> None:
    handler = _handler(route)
    body = data.draw(bodies(route), label="body")
    # State carries across examples (sessions, roles, counts), so each example uses a new
    # connection; half of them belong to a verified speaker, as after a token handshake.
    connection_id = f"Fuzz{next(_examples):08d}="
    store.put_connection(
        connection_id,
        connected_at_ms=1,
        ip_hash="h",
        user_id="fuzz-user" if data.draw(st.booleans(), label="verified") else None,
    )
    event = message_event(connection_id, "", route_key=route.route_key)
    event["body"] = body
    outcome = _check_reply(route, handler(event, LambdaContext()))
    event_note(f"reply: {outcome}")  # --hypothesis-show-statistics shows the paths reached


def test_every_replying_route_is_fuzzed() -> None:
    assert {r.route_key for r in REPLYING} <= set(SUCCESS_TYPES)
    assert {"$default", "createSession", "joinSession"} <= {r.route_key for r in REPLYING}


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


JWT_SHAPED = st.builds(
    lambda header, payload, signature: ".".join(
        [_b64(json.dumps(header).encode()), _b64(json.dumps(payload).encode()), signature]
    ),
    st.fixed_dictionaries(
        {"alg": st.sampled_from(["RS256", "HS256", "none", "ES256"]) | JSON_VALUES},
        optional={"kid": st.sampled_from(["test-key-1", "other"]) | JSON_VALUES},
    )
    | JSON_VALUES,
    JSON_VALUES,
    st.text("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_", max_size=40),
)


@settings(
    max_examples=examples(80),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(token=st.one_of(TEXT, JWT_SHAPED))
# Found by hypothesis: PyJWT encodes the token as UTF-8 first, and a lone surrogate raised
# UnicodeEncodeError (not a PyJWTError), so $connect answered 500 instead of 401.
@example(token="\ud800")
@example(token="a.\ud800.c")
@example(token="é.é.é")
def test_connect_answers_any_token_with_a_handshake_status(issuer: Any, token: str) -> None:
    # The issuer fixture serves a local JWKS, so no example can reach the network.
    cid = f"Fuzz{next(_examples):08d}="
    response = connect.handler(
        connect_event(cid, token=token, ip=f"10.0.{len(token) % 250}.1"), LambdaContext()
    )
    status = response["statusCode"]
    event_note(f"status: {status}")
    assert status in (200, 401, 429), response
    if status != 200:
        message = json.loads(response["body"])
        assert set(message) == ERROR_KEYS and message["status"] == status
