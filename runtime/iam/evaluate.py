"""Evaluate an identity policy for one request, as IAM does for a single identity policy.

A request is allowed when some ``Allow`` statement matches it and no ``Deny`` statement does
(an explicit deny wins; nothing matching is an implicit deny). A statement matches when its
``Action`` (or ``NotAction``), its ``Resource`` (or ``NotResource``) and every condition
match. Actions compare case-insensitively, resources case-sensitively; both take IAM's
wildcards: ``*`` (any run of characters, ``/`` and ``:`` included) and ``?`` (one character).

Conditions: the operators the program's policies use and their usual relatives —
``StringEquals``, ``StringNotEquals``, ``StringLike``, ``StringNotLike`` (with ``…IfExists``).
Any other operator never matches, so a policy this evaluator does not understand denies
rather than allows. Not emulated: resource policies, SCPs, permission boundaries, session
policies, KMS key policies and policy variables (``${aws:username}``).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from typing import Any


@functools.lru_cache(maxsize=4096)
def _pattern(wildcard: str, ignore_case: bool) -> re.Pattern[str]:
    parts = (".*" if c == "*" else "." if c == "?" else re.escape(c) for c in wildcard)
    return re.compile("".join(parts), re.IGNORECASE | re.DOTALL if ignore_case else re.DOTALL)


def matches(wildcard: str, value: str, *, ignore_case: bool = False) -> bool:
    """True when ``value`` matches the IAM pattern ``wildcard`` (``*`` and ``?``)."""
    return _pattern(wildcard, ignore_case).fullmatch(value) is not None


def _as_list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list | tuple) else [value]


def _any_match(patterns: Any, value: str, *, ignore_case: bool) -> bool:
    return any(matches(str(p), value, ignore_case=ignore_case) for p in _as_list(patterns))


def _condition_holds(operator: str, tests: Mapping[str, Any], context: Mapping[str, str]) -> bool:
    if_exists = operator.endswith("IfExists")
    base = operator.removesuffix("IfExists")
    for key, expected in tests.items():
        # Condition keys are case-insensitive; their values are not (for String* operators).
        actual = next((v for k, v in context.items() if k.lower() == key.lower()), None)
        if actual is None:
            if if_exists or base in ("StringNotEquals", "StringNotLike"):
                continue
            return False
        wanted = [str(e) for e in _as_list(expected)]
        if base == "StringEquals":
            ok = actual in wanted
        elif base == "StringNotEquals":
            ok = actual not in wanted
        elif base == "StringLike":
            ok = any(matches(w, actual) for w in wanted)
        elif base == "StringNotLike":
            ok = not any(matches(w, actual) for w in wanted)
        else:
            return False  # an operator not emulated never matches: deny, never allow
        if not ok:
            return False
    return True


def statement_matches(
    statement: Mapping[str, Any], action: str, resource: str, context: Mapping[str, str]
) -> bool:
    """True when ``statement`` applies to ``action`` on ``resource`` in ``context``."""
    if "Action" in statement:
        if not _any_match(statement["Action"], action, ignore_case=True):
            return False
    elif "NotAction" in statement:
        if _any_match(statement["NotAction"], action, ignore_case=True):
            return False
    else:
        return False
    if "Resource" in statement:
        if not _any_match(statement["Resource"], resource, ignore_case=False):
            return False
    elif "NotResource" in statement:
        if _any_match(statement["NotResource"], resource, ignore_case=False):
            return False
    else:
        return False
    conditions: Mapping[str, Mapping[str, Any]] = statement.get("Condition") or {}
    return all(_condition_holds(op, tests, context) for op, tests in conditions.items())


def is_allowed(
    policy: Mapping[str, Any],
    action: str,
    resource: str,
    context: Mapping[str, str] | None = None,
) -> bool:
    """IAM's decision for one request under one identity policy."""
    allowed = False
    for statement in _as_list(policy.get("Statement", [])):
        if not statement_matches(statement, action, resource, context or {}):
            continue
        if statement.get("Effect") == "Deny":
            return False
        if statement.get("Effect") == "Allow":
            allowed = True
    return allowed
