"""AWS calls per operation, against the budgets.

The counting is ``bench/call_counter.py`` (botocore's ``before-call`` event) and the
operations are ``bench/call_scenarios.py`` (the real handlers on moto, with a recording
@connections endpoint); this module only compares the counts with the budgets and turns them
into table rows. The budgets are for the default ``metricsTransport: emf``, where metrics ride
in the log lines and no function calls CloudWatch; with ``api`` every invocation that measured
something adds exactly one PutMetricData.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping

from bench.report import Section

# Operation (as call_scenarios names it) → the most AWS calls it may make.
FIXED_BUDGETS: dict[str, int] = {
    # The address's token bucket (idle: one conditional write), the record.
    "$connect (listener)": 2,
    # A bucket in use: the idle write fails its condition, the in-use one takes the token.
    "$connect (listener, venue address)": 3,
    "createSession": 3,
    "joinSession": 3,
    # Join limit + failed-lookup budget (one write), the lookup, the failure counted.
    "joinSession (unknown session)": 3,
    # The join limit (a listener refresh counts as a join), the transaction.
    "refreshConnection (listener)": 2,
    # Its connection, the failed-lookup budget (GetItem), the transaction.
    "refreshConnection (speaker)": 3,
    # Without a refreshToken: the same, held to the cap like a join.
    "refreshConnection (listener, no refreshToken)": 2,
    # Without a refreshToken: the session's GetItem says which connection it replaces.
    "refreshConnection (speaker, no refreshToken)": 4,
    "heartbeat": 1,
    "$disconnect (listener)": 2,
}
SPEAKER_DISCONNECT = re.compile(r"^\$disconnect \(speaker, (\d+) listeners?\)$")
SPEAKER_BASE_BUDGET = 3
BATCH_WRITE_LIMIT = 25  # DynamoDB's BatchWriteItem takes 25 requests at most
# The listener index projects keys and role only: the records released are read whole,
# by key, with BatchGetItem (100 keys at most).
BATCH_GET_LIMIT = 100
# The rows the table shows first, in this order; other measured operations follow.
ORDER = (
    "$connect (listener)",
    "$connect (listener, venue address)",
    "createSession",
    "joinSession",
    "heartbeat",
    "$disconnect (listener)",
    "$disconnect (speaker, 10 listeners)",
    "$disconnect (speaker, 500 listeners)",
)


def speaker_disconnect_budget(listeners: int) -> int:
    """3, plus one post per listener, one BatchGetItem per 100 listener records and one
    BatchWriteItem per 25."""
    return (
        SPEAKER_BASE_BUDGET
        + listeners
        + math.ceil(listeners / BATCH_GET_LIMIT)
        + math.ceil(listeners / BATCH_WRITE_LIMIT)
    )


def budget_for(operation: str) -> tuple[int, str] | None:
    """(budget, how it is made up) for an operation, or None when it has no budget."""
    if operation in FIXED_BUDGETS:
        budget = FIXED_BUDGETS[operation]
        return budget, f"≤ {budget}"
    match = SPEAKER_DISCONNECT.match(operation)
    if match:
        n = int(match.group(1))
        budget = speaker_disconnect_budget(n)
        return (
            budget,
            f"≤ {budget} ({SPEAKER_BASE_BUDGET} + {n} posts + "
            f"{math.ceil(n / BATCH_GET_LIMIT)} read + "
            f"{math.ceil(n / BATCH_WRITE_LIMIT)} write batches)",
        )
    return None


def breakdown(counts: Mapping[str, int]) -> str:
    """``dynamodb UpdateItem×3; cloudwatch PutMetricData×1`` grouped by service."""
    by_service: dict[str, list[str]] = {}
    for key, n in sorted(counts.items()):
        service, _, api = key.partition(":")
        by_service.setdefault(service, []).append(f"{api}×{n}")
    return "; ".join(f"{service} {', '.join(apis)}" for service, apis in by_service.items())


def rows_section(measured: Mapping[str, Mapping[str, int]]) -> Section:
    """The table section for already-measured counts (operation → ``service:API`` → n)."""
    section = Section("AWS calls per operation (real handlers on moto; botocore event hooks)")
    ordered = [op for op in ORDER if op in measured]
    ordered += [op for op in measured if op not in ordered]
    for operation in ordered:
        counts = measured[operation]
        total = sum(counts.values())
        budget = budget_for(operation)
        if budget is None:
            reference, status = "no budget (shown for completeness)", ""
        else:
            reference, status = budget[1], "OK" if total <= budget[0] else "OVER"
        section.add(f"{operation}: {breakdown(counts)}", f"{total} calls", reference, status)
    missing = [op for op in ORDER if op not in measured]
    if missing:
        section.notes.append(f"not measured by bench/call_scenarios.py: {', '.join(missing)}")
        for operation in missing:
            section.add(operation, "not measured", "", "ERROR")
    return section


def calls_section() -> Section:
    """Run every scenario of bench/call_scenarios.py and compare with the budgets."""
    from bench.call_scenarios import measure_all

    return rows_section(measure_all())
