"""The web console tests' browser: skip without Chromium locally, fail without it under CI.

``.ci/run`` installs Debian's ``chromium`` and ``chromium-driver`` and sets ``CI=true``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from bench.browser import MISSING, chromium, find_chromium


def require_chromium() -> tuple[str, str]:
    paths = find_chromium()
    if paths is not None:
        return paths
    if os.environ.get("CI", "").strip().lower() in ("1", "true", "yes"):
        pytest.fail(f"CI is set but {MISSING}")
    pytest.skip(MISSING)


@contextmanager
def browser(width: int = 1400, height: int = 1000) -> Iterator[Any]:
    with chromium(require_chromium(), width, height) as driver:
        yield driver
