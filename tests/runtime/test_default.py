"""``$default``: one structured error reply for every frame no route takes, no AWS calls."""

from __future__ import annotations

import json

import pytest

from runtime.handlers import default
from runtime.protocol import ACTIONS, MAX_MESSAGE_BYTES, MAX_NESTING_DEPTH
from tests.runtime.helpers_entry import assert_error, aws_calls
from tests.support.lambda_events import LambdaContext, message_event, new_connection_id


def _send(body: object) -> tuple[dict, dict]:
    response = default.handler(
        message_event(new_connection_id(), body, route_key="$default"), LambdaContext()
    )
    return response, json.loads(response["body"])


NOT_MESSAGES = {
    "not_json": "this is not json",
    "truncated_json": '{"action": "createSession"',
    "json_array": "[1, 2, 3]",
    "json_string": '"createSession"',
    "json_number": "42",
    "json_null": "null",
    "empty": "",
    "too_large": json.dumps({"action": "createSession", "pad": "x" * MAX_MESSAGE_BYTES}),
    "deeply_nested": "[" * 100_000 + "]" * 100_000,
}


@pytest.mark.parametrize("case", sorted(NOT_MESSAGES))
def test_frames_that_are_not_json_objects_are_invalid_message(aws: None, case: str) -> None:
    with aws_calls() as calls:
        response, message = _send(NOT_MESSAGES[case])
    assert response["statusCode"] == 400
    assert_error(message, "INVALID_MESSAGE", 400)
    # Zero AWS calls: ConnectionErrors rides in the EMF log line.
    assert calls.names == []
    assert calls.metric_sum("ConnectionErrors", ErrorCode="INVALID_MESSAGE") == 1


NESTED = {
    "arrays": "[" * 1000 + "]" * 1000,
    "objects": '{"a":' * 1000 + "1" + "}" * 1000,
    # Parses at the top of a stack, not always deeper in: refused the same way everywhere.
    "inside_a_field": '{"action":"joinSession","sessionId":' + "[" * 900 + "]" * 900 + "}",
    "just_over": "[" * (MAX_NESTING_DEPTH + 1) + "]" * (MAX_NESTING_DEPTH + 1),
}


@pytest.mark.parametrize("case", sorted(NESTED))
def test_deeply_nested_frames_get_one_invalid_message_naming_the_limit(
    aws: None, case: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with aws_calls() as calls:
        _response, message = _send(NESTED[case])
    details = assert_error(message, "INVALID_MESSAGE", 400)
    assert details == {"maxDepth": MAX_NESTING_DEPTH}
    assert "nests" in message["message"]
    assert calls.metric_sum("ConnectionErrors", ErrorCode="INVALID_MESSAGE") == 1
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [line.get("errorCode") for line in lines if line["level"] == "WARN"] == [
        "INVALID_MESSAGE"
    ]


def test_nesting_at_the_limit_and_brackets_inside_strings_are_fine(aws: None) -> None:
    nested = "[" * (MAX_NESTING_DEPTH - 1) + "]" * (MAX_NESTING_DEPTH - 1)
    _, message = _send('{"action":"dance","pad":' + nested + ',"s":"' + "[" * 500 + '"}')
    assert message["code"] == "INVALID_ACTION"  # parsed: got past the nesting check


def test_too_large_names_the_limit(aws: None) -> None:
    _, message = _send(NOT_MESSAGES["too_large"])
    assert message["details"]["maxBytes"] == MAX_MESSAGE_BYTES == 128 * 1024


def test_a_message_just_under_the_limit_is_parsed(aws: None) -> None:
    body = json.dumps({"action": "dance", "pad": ""})
    body = body.replace('"pad": ""', '"pad": "' + "x" * (MAX_MESSAGE_BYTES - len(body)) + '"')
    assert len(body.encode()) == MAX_MESSAGE_BYTES
    _, message = _send(body)
    assert message["code"] == "INVALID_ACTION"  # got past the size check


@pytest.mark.parametrize(
    "body",
    [{"action": "dance"}, {"action": "CREATESESSION"}, {"action": "createSession "}],
    ids=["unknown", "wrong_case", "trailing_space"],
)
def test_unknown_actions_are_invalid_action(aws: None, body: dict) -> None:
    with aws_calls() as calls:
        response, message = _send(body)
    assert response["statusCode"] == 400
    details = assert_error(message, "INVALID_ACTION", 400)
    assert details["action"] == body["action"]
    assert details["supportedActions"] == list(ACTIONS)
    assert calls.names == []


@pytest.mark.parametrize(
    "body",
    [{}, {"sessionId": "golden-eagle-427"}, {"action": None}],
    ids=["empty_object", "no_action", "null_action"],
)
def test_missing_actions_are_invalid_action(aws: None, body: dict) -> None:
    response, message = _send(body)
    assert response["statusCode"] == 400
    details = assert_error(message, "INVALID_ACTION", 400)
    assert "no 'action'" in message["message"]
    assert details["supportedActions"] == list(ACTIONS)


@pytest.mark.parametrize(
    ("action", "kind"),
    [("", "an empty string"), (5, "a number"), ([1], "an array"), ({}, "an object")],
    ids=["empty", "number", "array", "object"],
)
def test_an_action_that_is_not_a_string_is_told_so(aws: None, action: object, kind: str) -> None:
    # {"action": 5} has an action; the client needs to hear that it is the wrong kind.
    _, message = _send({"action": action})
    details = assert_error(message, "INVALID_ACTION", 400)
    assert message["message"].startswith(f"'action' must be a non-empty string, not {kind};")
    assert "no 'action'" not in message["message"]
    assert details["supportedActions"] == list(ACTIONS)


@pytest.mark.parametrize("action", ACTIONS)
def test_a_known_action_reaching_default_is_told_so_plainly(aws: None, action: str) -> None:
    # Happens when that route is not deployed: the client still gets one clear reply.
    with aws_calls() as calls:
        _, message = _send({"action": action})
    details = assert_error(message, "INVALID_ACTION", 400)
    assert action in message["message"] and "not available" in message["message"]
    assert details["action"] == action
    assert calls.names == []


def test_long_unknown_action_is_echoed_truncated(aws: None) -> None:
    _, message = _send({"action": "z" * 5000})
    assert len(message["details"]["action"]) <= 64
    assert len(message["message"]) < 500


def test_request_id_is_the_lambda_request_id(aws: None) -> None:
    context = LambdaContext()
    response = default.handler(message_event(new_connection_id(), "nope"), context)
    assert json.loads(response["body"])["requestId"] == context.aws_request_id
