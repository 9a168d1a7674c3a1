"""Fixed-window rate limits: one conditional UpdateItem per check, keyed hashes, fail-open."""

from __future__ import annotations

import hashlib
import json
from concurrent.futures import ThreadPoolExecutor

import boto3
import pytest

from runtime import aws as runtime_aws
from runtime import rate_limits
from runtime.config import config
from runtime.errors import ErrorCode, ServiceError
from runtime.hash_key import ip_hash_key
from runtime.invocation import Invocation
from runtime.metric_names import DEPENDENCY_FAILURES
from runtime.observability import logs
from runtime.observability.metrics import MetricsBuffer
from tests.runtime.helpers_entry import aws_calls, closed_port, do_connect
from tests.support.clock import FrozenClock
from tests.support.runtime_env import STAGE, put_hash_key

TABLE = f"session-management-{STAGE}-RateLimits"
IP = "203.0.113.9"
WINDOW_START = 1_800_000_000 // 60 * 60  # a whole minute, in epoch seconds


def _inv() -> Invocation:
    cfg = config()
    return Invocation(
        event={},
        context=None,
        operation="test",
        metrics=MetricsBuffer(cfg.metricsNamespace, cfg.stage),
        request_id="req-1",
    )


def _items() -> list[dict]:
    items = boto3.client("dynamodb").scan(TableName=TABLE)["Items"]
    return sorted(items, key=lambda i: i["identifier"]["S"])


def test_allows_up_to_the_limit_then_rejects_with_retry_after(aws: None) -> None:
    inv = _inv()
    for _ in range(3):
        rate_limits.enforce(inv, "joinSession", "ip", IP, 3, 60, now=WINDOW_START + 15.2)
    with pytest.raises(ServiceError) as raised:
        rate_limits.enforce(inv, "joinSession", "ip", IP, 3, 60, now=WINDOW_START + 15.2)
    error = raised.value
    assert error.code is ErrorCode.RATE_LIMIT_EXCEEDED
    assert error.details["retryAfter"] == 45  # ceil(60 - 15.2)
    assert "3 per minute" in error.message
    # A rejected request is not counted: the item stays at the limit.
    assert _items()[0]["count"] == {"N": "3"}


def test_retry_after_is_at_least_one_second(aws: None) -> None:
    inv = _inv()
    rate_limits.enforce(inv, "connect", "ip", IP, 1, 60, now=WINDOW_START + 59.9)
    with pytest.raises(ServiceError) as raised:
        rate_limits.enforce(inv, "connect", "ip", IP, 1, 60, now=WINDOW_START + 59.95)
    assert raised.value.details["retryAfter"] == 1


def test_each_window_is_a_new_item(aws: None) -> None:
    inv = _inv()
    rate_limits.enforce(inv, "connect", "ip", IP, 1, 60, now=WINDOW_START + 1)
    with pytest.raises(ServiceError):
        rate_limits.enforce(inv, "connect", "ip", IP, 1, 60, now=WINDOW_START + 59)
    rate_limits.enforce(inv, "connect", "ip", IP, 1, 60, now=WINDOW_START + 60)
    items = _items()
    assert [i["windowStart"]["N"] for i in items] == [str(WINDOW_START), str(WINDOW_START + 60)]


def test_key_shape_hashing_and_ttl(aws: None, frozen_clock: FrozenClock) -> None:
    now = frozen_clock.now  # the windows below are this instant's, wherever in the minute
    rate_limits.enforce(_inv(), "joinSession", "ip", IP, 5, 60)
    rate_limits.enforce(_inv(), "createSession", "user", "alice@example.com", 5, 3600)
    for item, operation, scope, window, raw in zip(
        _items(),
        ("createSession", "joinSession"),
        ("user", "ip"),
        (3600, 60),
        ("alice@example.com", IP),
        strict=True,
    ):
        key = item["identifier"]["S"]
        op, scoped, hashed = key.split(":")
        scope_name, start = scoped.split("@")
        assert (op, scope_name) == (operation, scope)
        assert int(start) % window == 0 and int(start) <= now < int(start) + window
        assert raw not in json.dumps(item)
        # Keyed: not the plain SHA-256 of the value.
        assert hashed not in hashlib.sha256(raw.encode()).hexdigest()
        assert item["count"] == {"N": "1"}
        assert item["windowStart"] == {"N": start}
        expires = int(item["expiresAt"]["N"])
        assert now < expires <= int(start) + window + 120  # epoch seconds, soon after the window


def test_hash_depends_on_the_stack_key(aws: None, monkeypatch: pytest.MonkeyPatch) -> None:
    first = rate_limits.identifier("connect", "ip", IP, WINDOW_START)
    put_hash_key("another-stack-key")
    # Read once per cold start: the running process keeps the key it started with…
    assert rate_limits.identifier("connect", "ip", IP, WINDOW_START) == first
    ip_hash_key.cache_clear()  # …and the next cold start reads the new one.
    assert rate_limits.identifier("connect", "ip", IP, WINDOW_START) != first


def test_operations_scopes_and_values_are_counted_separately(aws: None) -> None:
    inv = _inv()
    at = WINDOW_START + 1
    rate_limits.enforce(inv, "connect", "ip", IP, 1, 60, now=at)
    rate_limits.enforce(inv, "joinSession", "ip", IP, 1, 60, now=at)
    rate_limits.enforce(inv, "connect", "ip", "203.0.113.10", 1, 60, now=at)
    rate_limits.enforce(inv, "connect", "user", IP, 1, 60, now=at)
    assert len(_items()) == 4


def test_one_update_item_per_check(aws: None) -> None:
    with aws_calls() as calls:
        rate_limits.enforce(_inv(), "connect", "ip", IP, 5, 60)
    assert calls.names == [f"dynamodb.UpdateItem({TABLE})"]


def test_missing_table_fails_open_with_warning_and_metric(aws: None, capsys) -> None:
    boto3.client("dynamodb").delete_table(TableName=TABLE)
    inv = _inv()
    logs.configure()
    token = logs.start_invocation({"operation": "test", "requestId": "req-1"})
    try:
        for _ in range(5):  # far over the limit, yet allowed
            rate_limits.enforce(inv, "connect", "ip", IP, 1, 60)
    finally:
        logs.end_invocation(token)
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    warnings = [line for line in lines if line["level"] == "WARN"]
    assert len(warnings) == 5
    assert "rateLimits" in warnings[0]["message"]
    assert "ResourceNotFoundException" in warnings[0]["errorMessage"]
    data = {
        (d["MetricName"], tuple(sorted((x["Name"], x["Value"]) for x in d["Dimensions"])))
        for d in inv.metrics.metric_data()
    }
    assert (DEPENDENCY_FAILURES.name, (("Operation", "rateLimits"), ("Stage", STAGE))) in data
    assert len(inv.metrics) == 10  # 5 failures × 2 dimension sets


def test_unreachable_dynamodb_fails_open(aws: None, monkeypatch: pytest.MonkeyPatch) -> None:
    # Only DynamoDB is unreachable; the request still gets through (after botocore's retries).
    monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", f"http://127.0.0.1:{closed_port()}")
    runtime_aws.reset_clients()
    inv = _inv()
    rate_limits.enforce(inv, "connect", "ip", IP, 1, 60)
    assert len(inv.metrics) == 2


def test_connect_with_rate_limits_table_missing_logs_a_warning(aws: None, capsys) -> None:
    boto3.client("dynamodb").delete_table(TableName=TABLE)
    assert do_connect(ip=IP)[1] == {"statusCode": 200}
    every_line = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    (metrics,) = [line for line in every_line if "_aws" in line]  # the EMF line, last
    assert metrics is every_line[-1] and metrics["DependencyFailures"] == 1
    assert metrics["Operation"] == "rateLimits"
    lines = [line for line in every_line if "_aws" not in line]
    assert [line["level"] for line in lines] == ["WARN", "INFO"]
    assert lines[0]["operation"] == "connect"
    assert lines[0]["message"] == "rateLimits failed; continuing degraded"


def test_unknown_scope_is_a_programming_error(aws: None) -> None:
    with pytest.raises(ValueError, match="scope"):
        rate_limits.enforce(_inv(), "connect", "planet", IP, 1, 60)


def test_concurrent_checks_never_exceed_the_limit(
    aws_server: str, race_prone: None, unhurried: None
) -> None:
    # Against the moto server: rounds of 40 simultaneous checks against a limit of 7.
    def attempt(value: str) -> bool:
        try:
            rate_limits.enforce(_inv(), "joinSession", "ip", value, 7, 3600)
        except ServiceError:
            return False
        return True

    with ThreadPoolExecutor(max_workers=16) as pool:
        for round_ in range(5):
            value = f"192.0.2.{round_}"
            results = list(pool.map(attempt, [value] * 40))
            assert results.count(True) == 7, f"round {round_}"
    assert {item["count"]["N"] for item in _items()} == {"7"}


# --- token buckets (connection admission per address) --------------------------------------------

T = 1_800_000_000.0


def _take(value: str = IP, *, at: float, per_minute: int = 6, burst: int = 4) -> None:
    rate_limits.take_token(
        _inv(), "connect", "ip", value, per_minute=per_minute, burst=burst, now=at
    )


def _refused(**kwargs) -> ServiceError:
    with pytest.raises(ServiceError) as raised:
        _take(**kwargs)
    return raised.value


def test_a_bucket_gives_its_burst_at_once_then_one_token_per_interval(aws: None) -> None:
    for _ in range(4):
        _take(at=T)  # the burst: 4 at once
    error = _refused(at=T)
    assert error.code is ErrorCode.RATE_LIMIT_EXCEEDED
    assert error.details["retryAfter"] == 10  # 6 a minute: a token every 10 s
    assert error.details["burst"] == 4 and error.details["limit"] == 6
    assert "4 at once, then 6 per minute" in error.message
    _refused(at=T + 9.9)
    _take(at=T + 10)  # one token back
    _refused(at=T + 10)
    # Refused requests took nothing: 10 s later there is exactly one more.
    _take(at=T + 20)
    _refused(at=T + 20)


def test_an_idle_bucket_refills_to_its_burst_and_no_more(aws: None) -> None:
    for _ in range(4):
        _take(at=T)
    # An hour idle refills 4, not 360.
    for _ in range(4):
        _take(at=T + 3600)
    _refused(at=T + 3600)


def test_a_bucket_item_is_keyed_by_hash_and_expires_once_full_again(aws: None) -> None:
    _take(at=T)
    (item,) = _items()
    key = item["identifier"]["S"]
    assert key.startswith("connect:ip:") and IP not in key
    assert key == rate_limits.bucket_identifier("connect", "ip", IP)
    assert int(item["tat"]["N"]) == int(T * 1000) + 10_000
    # Full again after at most burst × interval: the item is not needed after that (+ margin).
    assert int(item["expiresAt"]["N"]) == int(T) + 40 + 60


def test_a_fresh_address_costs_one_write_and_one_in_use_two(aws: None) -> None:
    with aws_calls() as calls:
        _take(at=T)
    assert calls.names == [f"dynamodb.UpdateItem({TABLE})"]
    with aws_calls() as calls:
        _take(at=T + 1)
    assert calls.names == [f"dynamodb.UpdateItem({TABLE})"] * 2


def test_addresses_have_their_own_buckets(aws: None) -> None:
    for _ in range(4):
        _take(at=T)
    _refused(at=T)
    _take("203.0.113.77", at=T)


def test_the_bucket_fails_open_without_its_table(aws: None) -> None:
    boto3.client("dynamodb").delete_table(TableName=TABLE)
    inv = _inv()
    for _ in range(10):
        rate_limits.take_token(inv, "connect", "ip", IP, per_minute=1, burst=1, now=T)
    assert len(inv.metrics) == 20  # a DependencyFailures datum (2 dimension sets) each


def test_concurrent_takes_never_exceed_the_burst(
    aws_server: str, race_prone: None, unhurried: None
) -> None:
    # Against the moto server: rounds of 40 simultaneous takes from a bucket of 7 (refill
    # 1 a minute, so none comes back during a round).
    def attempt(value: str) -> bool:
        try:
            rate_limits.take_token(_inv(), "connect", "ip", value, per_minute=1, burst=7)
        except ServiceError:
            return False
        return True

    with ThreadPoolExecutor(max_workers=16) as pool:
        for round_ in range(4):
            results = list(pool.map(attempt, [f"192.0.2.{round_}"] * 40))
            assert results.count(True) == 7, f"round {round_}"


def test_the_handlers_windows_follow_the_functions_clock(
    issuer, monkeypatch: pytest.MonkeyPatch, frozen_clock: FrozenClock
) -> None:
    """Windows and buckets are read from ``runtime.clock``, so a test holding it still cannot
    see one roll over or refill midway (a burst once crossed a minute and got twice its
    budget)."""
    monkeypatch.setenv("CONNECTION_ATTEMPTS_PER_MINUTE", "2")
    monkeypatch.setenv("CONNECTION_BURST_PER_ADDRESS", "2")
    config.cache_clear()
    frozen_clock.now = WINDOW_START + 59.999  # the last instant of a minute
    assert [do_connect(ip=IP)[1]["statusCode"] for _ in range(3)] == [200, 200, 429]
    frozen_clock.advance(29.9)  # the bucket refills one every 30 s: not yet
    assert do_connect(ip=IP)[1]["statusCode"] == 429
    frozen_clock.advance(0.2)  # only the clock moved
    assert do_connect(ip=IP)[1]["statusCode"] == 200
