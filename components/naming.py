"""Physical names of a stack's resources, and the AWS rules each must satisfy.

Pulumi accepts stack names that AWS does not (``.`` for one): the stack name flows into
function, rule, topic, dashboard, stage, table, log group, user pool and alarm names, and a
name AWS refuses would fail ``pulumi up`` halfway. ``check_stack_name`` checks every one of
them before any resource is created; the components build their names with the same
functions, so the check cannot drift from what is deployed.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from runtime import hash_key
from runtime.routes import ROUTES, SCHEDULED
from runtime.settings import PROJECT, SettingsError
from runtime.tables import TABLES


def name_prefix(stack: str) -> str:
    """What every physical name of a stack starts with: ``session-management-<stack>``."""
    return f"{PROJECT}-{stack}"


def function_name(prefix: str, function: str) -> str:
    """A Lambda function (and its EventBridge rule, when scheduled)."""
    return f"{prefix}-{function}"


def table_name(prefix: str, logical_name: str) -> str:
    """A DynamoDB table; with the stack's own prefix this is ``Table.physical_name``."""
    return f"{prefix}-{logical_name}"


def function_log_group(prefix: str, function: str) -> str:
    return f"/aws/lambda/{function_name(prefix, function)}"


def access_log_group(prefix: str) -> str:
    return f"/aws/apigateway/{prefix}/access"


def alarm_topic_name(prefix: str) -> str:
    return f"{prefix}-alarms"


def dashboard_name(prefix: str) -> str:
    return prefix


def user_pool_name(prefix: str) -> str:
    return f"{prefix}-speakers"


def user_pool_client_name(prefix: str) -> str:
    return f"{prefix}-speaker-app"


def alarm_name(prefix: str, slug: str) -> str:
    return f"{prefix}-{slug}"


def query_name(prefix: str, slug: str) -> str:
    """A saved Logs Insights query; the console shows ``<prefix>/`` as its folder."""
    return f"{prefix}/{slug}"


def ip_hash_key_parameter(prefix: str) -> str:
    """The SSM parameter holding the stack's HMAC key."""
    return hash_key.parameter_name_for(prefix)


@dataclass(frozen=True)
class NameRule:
    """One kind of AWS name: how it is built from the stack name and what AWS accepts."""

    what: str
    names: Callable[[str], list[str]]  # stack → every name of this kind
    pattern: str
    allowed: str
    max_length: int
    min_length: int = 1

    def problem(self, stack: str) -> str | None:
        """What is wrong with the first name of this kind that AWS would refuse, if any."""
        for name in self.names(stack):
            if not (self.min_length <= len(name) <= self.max_length):
                return (
                    f"{self.what} {name!r} is {len(name)} characters "
                    f"({self.min_length}-{self.max_length} allowed)"
                )
            if not re.fullmatch(self.pattern, name):
                return f"{self.what} {name!r} may only contain {self.allowed}"
        return None


_SIMPLE = r"[A-Za-z0-9_-]+"
_SIMPLE_ALLOWED = "letters, digits, '-' and '_'"


def _prefixed(build: Callable[[str], str]) -> Callable[[str], list[str]]:
    return lambda stack: [build(name_prefix(stack))]


NAME_RULES: tuple[NameRule, ...] = (
    NameRule(
        "Lambda function name",
        lambda s: [function_name(name_prefix(s), f.name) for f in ROUTES],
        _SIMPLE,
        _SIMPLE_ALLOWED,
        64,
    ),
    NameRule(
        "EventBridge rule name",
        lambda s: [function_name(name_prefix(s), f.name) for f in SCHEDULED],
        r"[A-Za-z0-9_.-]+",
        "letters, digits, '.', '-' and '_'",
        64,
    ),
    NameRule("API Gateway stage name", lambda s: [s], _SIMPLE, _SIMPLE_ALLOWED, 128),
    NameRule("SNS topic name", _prefixed(alarm_topic_name), _SIMPLE, _SIMPLE_ALLOWED, 256),
    NameRule("CloudWatch dashboard name", _prefixed(dashboard_name), _SIMPLE, _SIMPLE_ALLOWED, 255),
    NameRule(
        "DynamoDB table name",
        lambda s: [t.physical_name(s) for t in TABLES],
        r"[A-Za-z0-9_.-]+",
        "letters, digits, '.', '-' and '_'",
        255,
        3,
    ),
    NameRule(
        "CloudWatch log group name",
        lambda s: [
            *(function_log_group(name_prefix(s), f.name) for f in ROUTES),
            access_log_group(name_prefix(s)),
        ],
        r"[A-Za-z0-9_./#-]+",
        "letters, digits, '.', '-', '_', '/' and '#'",
        512,
    ),
    NameRule(
        "Cognito user pool name",
        lambda s: [user_pool_name(name_prefix(s)), user_pool_client_name(name_prefix(s))],
        r"[\w\s+=,.@-]+",
        "letters, digits, spaces and + = , . @ - _",
        128,
    ),
    NameRule(
        "SSM parameter name",
        _prefixed(ip_hash_key_parameter),
        r"/[A-Za-z0-9_./-]+",
        "letters, digits, '.', '-', '_' and '/'",
        1011,
    ),
    NameRule(
        "CloudWatch alarm name",
        lambda s: [f"{function_name(name_prefix(s), f.name)}-errors" for f in ROUTES],
        r"[\x20-\x7e]+",
        "printable ASCII",
        255,
    ),
)


def check_stack_name(stack: str) -> None:
    """Raise ``SettingsError`` naming every resource name ``stack`` would make AWS refuse."""
    problems = [problem for rule in NAME_RULES if (problem := rule.problem(stack))]
    if problems:
        longest = max(len(f.name) for f in ROUTES)
        limit = 64 - len(name_prefix("")) - 1 - longest
        raise SettingsError(
            f"stack name {stack!r} cannot be deployed: "
            + "; ".join(problems)
            + f". Use a stack name of at most {limit} letters, digits, '-' and '_'."
        )
