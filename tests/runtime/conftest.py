"""Fixtures for runtime tests: an isolated moto AWS with the tables, and a Lambda context.

Events, the context class and the environment are importable helpers in ``tests.support``;
the fixtures of ``tests.runtime.helpers_*`` are registered by the root conftest.

``aws`` uses moto's in-process ``mock_aws`` (single-threaded tests); concurrency tests use
``moto_server`` (a ThreadedMotoServer, which is thread-safe) through ``aws_server``.
"""

from __future__ import annotations

import urllib.request
from collections.abc import Iterator

import pytest
from botocore.config import Config
from moto import mock_aws
from moto.server import ThreadedMotoServer

from local.aws.server import OneRequestAtATime
from runtime import aws as runtime_aws
from runtime.config import config
from tests.support.cloudwatch_logs import CloudWatchLogs
from tests.support.iam import TestIam, describe
from tests.support.lambda_events import LambdaContext
from tests.support.runtime_env import ENV, create_tables


@pytest.fixture(autouse=True)
def cloudwatch_logs(monkeypatch: pytest.MonkeyPatch) -> Iterator[CloudWatchLogs]:
    """Every EMF line a function writes in a runtime test must be valid: checked at teardown."""
    emulation = CloudWatchLogs().observe(monkeypatch)
    CloudWatchLogs.current = emulation
    try:
        yield emulation
    finally:
        CloudWatchLogs.current = None
    assert not emulation.invalid, f"EMF lines that break the specification: {emulation.invalid}"


_IAM = TestIam()


@pytest.fixture(autouse=True)
def iam() -> Iterator[TestIam]:
    """IAM as AWS enforces it: every AWS call a function makes in a runtime test is checked
    against that function's policy (``runtime.iam``); a denial fails the test here unless the
    test called ``iam.expect_denials()``."""
    _IAM.reset()
    runtime_aws.add_client_hook(_IAM.enforcer.attach)
    runtime_aws.reset_clients()
    try:
        yield _IAM
    finally:
        runtime_aws.remove_client_hook(_IAM.enforcer.attach)
        runtime_aws.reset_clients()
    denials = list(_IAM.denials)
    expected = _IAM.expecting_denials
    _IAM.reset()
    assert expected or not denials, f"AccessDenied: {describe(denials)}"


@pytest.fixture
def runtime_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    """The functions' environment; config and clients are re-read for every test."""
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    for key, value in ENV.items():
        monkeypatch.setenv(key, value)
    config.cache_clear()
    runtime_aws.reset_clients()
    yield ENV
    config.cache_clear()
    runtime_aws.reset_clients()


@pytest.fixture
def aws(runtime_env: dict[str, str], cloudwatch_logs: CloudWatchLogs) -> Iterator[None]:
    """In-process moto with the service's tables (and EMF metrics published to its CloudWatch)."""
    with mock_aws():
        create_tables()
        cloudwatch_logs.publish = True
        yield
        cloudwatch_logs.publish = False


@pytest.fixture(scope="session")
def moto_server() -> Iterator[str]:
    """A moto server for concurrency tests (each request atomic, as in DynamoDB); its URL."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    server._server.app = OneRequestAtATime(server._server.app)  # type: ignore[union-attr]
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def aws_server(
    runtime_env: dict[str, str],
    moto_server: str,
    monkeypatch: pytest.MonkeyPatch,
    cloudwatch_logs: CloudWatchLogs,
) -> Iterator[str]:
    """The runtime pointed at the moto server, with fresh tables for this test."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_server)
    config.cache_clear()
    runtime_aws.reset_clients()
    # Every test starts from empty AWS state.
    urllib.request.urlopen(
        urllib.request.Request(f"{moto_server}/moto-api/reset", method="POST")
    ).read()
    create_tables()
    cloudwatch_logs.publish = True
    yield moto_server
    cloudwatch_logs.publish = False


@pytest.fixture
def unhurried(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Exact counts under concurrency, on a machine that may be overloaded: no AWS call
    times out and no invocation runs short of time.

    Dozens of threads queue on one serialised moto server, and under full-suite load a
    request can wait past botocore's 2 s read timeout: botocore then retries a
    ``listenerCount`` ADD that was already applied (counted twice until the next sweep, by
    design: the lost-response test of ``test_join_races.py``), and
    ``runtime.budget`` refuses calls of an invocation that has run for 6 of its 10 s. Both
    are timing; what these tests check is the ordering of conditional writes.
    """
    unhurried_config = Config(
        retries=runtime_aws.RETRIES,  # type: ignore[arg-type]
        connect_timeout=runtime_aws.CONNECT_TIMEOUT_S,
        read_timeout=120,
        max_pool_connections=runtime_aws.CLIENT_CONFIG.max_pool_connections,
    )
    monkeypatch.setattr(runtime_aws, "CLIENT_CONFIG", unhurried_config)
    monkeypatch.setattr(LambdaContext, "get_remaining_time_in_millis", lambda _self: 900_000)
    runtime_aws.reset_clients()
    yield
    runtime_aws.reset_clients()


@pytest.fixture
def context() -> LambdaContext:
    return LambdaContext()
