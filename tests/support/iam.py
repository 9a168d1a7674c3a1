"""IAM in the runtime tests: every function's calls checked against its own policy.

``TestIam`` holds one ``runtime.iam.calls.Enforcer`` whose names are the test
environment's (moto's account, the region, the test API's ID and stage, the settings the
test runs with). ``tests/runtime/conftest.py`` attaches it to every client the runtime creates
during a runtime test; a denied call fails as on AWS (``AccessDeniedException`` through
botocore), is recorded, and fails the test at teardown unless the test expects it
(``iam.expect_denials()``). Calls made outside a function (fixtures seeding tables) are not
checked: no function is running then.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field

from moto.core import DEFAULT_ACCOUNT_ID

from runtime.config import config
from runtime.iam.calls import RUNNING, Denial, Enforcer, Request
from runtime.iam.policy import StackNames
from runtime.routes import Function
from runtime.settings import PROJECT
from tests.support.lambda_events import API


def runtime_test_names() -> StackNames:
    """The stack names of the runtime tests' environment (read when a call is checked)."""
    cfg = config()
    return StackNames(
        account=DEFAULT_ACCOUNT_ID,
        region=API.region,
        api_id=API.api_id,
        stage=cfg.stage,
        prefix=f"{PROJECT}-{cfg.stage}",
        namespace=cfg.metricsNamespace,
        metrics_transport=cfg.metricsTransport,
    )


@contextlib.contextmanager
def as_the_test() -> Iterator[None]:
    """Calls made here are the test's (stand-ins for AWS's own doing), not the running
    function's: not checked against its policy."""
    token = RUNNING.set(None)
    try:
        yield
    finally:
        RUNNING.reset(token)


@dataclass
class Recorded:
    """One checked request of one function."""

    function: str
    request: Request
    allowed: bool


@dataclass
class TestIam:
    """The runtime tests' enforcer and what it saw during the current test."""

    __test__ = False  # not a test class

    denials: list[Denial] = field(default_factory=list)
    requests: list[Recorded] = field(default_factory=list)
    expecting_denials: bool = False

    def __post_init__(self) -> None:
        self.enforcer = Enforcer(
            runtime_test_names, on_denied=self.denials.append, on_request=self._seen
        )

    def _seen(self, function: Function, request: Request, allowed: bool) -> None:
        self.requests.append(Recorded(function.name, request, allowed))

    def expect_denials(self) -> None:
        """This test provokes AccessDenied on purpose: do not fail it for that."""
        self.expecting_denials = True

    def reset(self) -> None:
        self.denials.clear()
        self.requests.clear()
        self.expecting_denials = False
        self.enforcer.overrides.clear()


def describe(denials: list[Denial]) -> str:
    return "; ".join(
        f"{d.function}: {d.code} {d.action} on {d.resource} ({d.operation})" for d in denials
    )
