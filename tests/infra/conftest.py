"""Fixtures: the whole program run once per stack (dev, prod) under Pulumi mocks."""

from __future__ import annotations

import pytest

from tests.infra.harness import PROD_OPERATOR, ProgramRun, run_program


@pytest.fixture(scope="session")
def dev() -> ProgramRun:
    """``__main__.py`` with the real ``Pulumi.dev.yaml``."""
    return run_program("dev")


@pytest.fixture(scope="session")
def prod() -> ProgramRun:
    """``__main__.py`` with the real ``Pulumi.prod.yaml``, its alarmEmail placeholder
    replaced as an operator must (the placeholder itself is refused: test_config)."""
    return run_program("prod", PROD_OPERATOR)


@pytest.fixture(params=["dev", "prod"], scope="session")
def stack_run(request: pytest.FixtureRequest, dev: ProgramRun, prod: ProgramRun) -> ProgramRun:
    """Each real stack in turn."""
    return dev if request.param == "dev" else prod
