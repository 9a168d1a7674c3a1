"""Fixtures every suite may request, from the modules that define them beside their helpers.

The repository root is importable through ``pythonpath`` in pyproject.toml, so tests import
helpers as ``tests.support.…`` / ``tests.runtime.helpers_…`` — never from a conftest.
"""

from tests.support import hypothesis_profiles

# Hypothesis: `ci` (derandomised, no database) unless --hypothesis-profile / HYPOTHESIS_PROFILE
# says otherwise; `make fuzz` runs the property tests with the `fuzz` profile.
hypothesis_profiles.register()

pytest_plugins = (
    "tests.runtime.helpers_entry",
    "tests.runtime.helpers_lifecycle",
    "tests.runtime.helpers_resilience",
    "tests.support.clock",
)
