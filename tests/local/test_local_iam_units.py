"""The local stack's IAM reporting: ``--iam-deny`` parsing and the stderr line."""

from __future__ import annotations

import pytest

from local.functions.iam import DenyError, LocalIam, parse_denies, terminal_safe
from runtime.iam.calls import Denial
from runtime.settings import parse_settings


def test_denies_name_a_function_an_action_and_optionally_a_resource():
    assert parse_denies(["sweeper=dynamodb:Scan", "sweeper=execute-api:*@*/DELETE/*"]) == {
        "sweeper": (("dynamodb:Scan", "*"), ("execute-api:*", "*/DELETE/*"))
    }
    with pytest.raises(DenyError, match="no function 'nope'"):
        parse_denies(["nope=dynamodb:Scan"])
    with pytest.raises(DenyError, match="service:Action"):
        parse_denies(["sweeper=Scan"])


def test_the_line_is_terminal_safe():
    assert terminal_safe("a\x1b[31mb\nc\u2028") == "a\\x1b[31mb\\x0ac\\u2028"


def test_a_denial_is_one_stderr_line_with_the_connection_hashed(capsys):
    iam = LocalIam("dev", "eu-west-1", parse_settings("dev", {}), api_id=lambda: "abc123",
                   label=lambda cid: f"hash-of-{len(cid)}")  # fmt: skip
    resource = "arn:aws:execute-api:eu-west-1:123456789012:abc123/dev/POST/@connections/Xy1="
    iam._denied(
        Denial("heartbeat", "apigatewaymanagementapi", "PostToConnection",
               "execute-api:ManageConnections", resource, 403, "AccessDeniedException", "m")
    )  # fmt: skip
    (line,) = capsys.readouterr().err.splitlines()
    assert "IAM AccessDenied: session-management-dev-heartbeat may not " in line
    assert "execute-api:ManageConnections on arn:aws:execute-api:" in line
    assert line.count("/@connections/<hash-of-4>") == 1 and "Xy1=" not in line
    assert iam.info()["denialsByFunction"] == {"heartbeat": 1}
    assert iam.info()["enforced"] is True
