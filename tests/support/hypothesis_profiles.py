"""Hypothesis profiles: ``ci`` for ``make test``, ``fuzz`` for ``make fuzz``.

``ci`` (the default) is derandomised and keeps no example database, so every run — a fresh
clone, CI, a developer's machine — tries exactly the same examples, and a test that passes
once passes everywhere. ``fuzz`` draws fresh random examples, ``FUZZ_SCALE`` times as many as
each test's own ``max_examples`` (``examples(n)``), and keeps the failures it finds in
``.hypothesis/examples`` so a rerun replays them first. A failure it finds is fixed and then
pinned with an explicit ``@example`` on the test, so ``make test`` tries it forever after.

Select a profile with ``pytest --hypothesis-profile=fuzz`` or ``HYPOTHESIS_PROFILE=fuzz``.
"""

from __future__ import annotations

import os

from hypothesis import settings
from hypothesis.database import DirectoryBasedExampleDatabase

CI = "ci"
FUZZ = "fuzz"
DEFAULT_FUZZ_SCALE = 25


def fuzz_scale() -> int:
    """How many times each test's example count ``make fuzz`` runs (``FUZZ_SCALE``)."""
    return max(1, int(os.environ.get("FUZZ_SCALE") or DEFAULT_FUZZ_SCALE))


def register() -> None:
    """Register both profiles and load ``HYPOTHESIS_PROFILE`` (``ci`` when unset)."""
    settings.register_profile(CI, derandomize=True, database=None, print_blob=True)
    settings.register_profile(
        FUZZ,
        derandomize=False,
        database=DirectoryBasedExampleDatabase(".hypothesis/examples"),
        print_blob=True,
        max_examples=100 * fuzz_scale(),
    )
    settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE") or CI)


def examples(n: int) -> int:
    """A test's ``max_examples``: ``n`` under ``ci``, ``FUZZ_SCALE`` × ``n`` under ``fuzz``.

    Read when the test module is imported, after the profile is loaded (the root conftest
    loads it, and ``--hypothesis-profile`` before collection).
    """
    return n * fuzz_scale() if settings.get_current_profile_name() == FUZZ else n
