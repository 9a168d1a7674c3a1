"""Fixtures every suite may request, from the modules that define them beside their helpers.

The repository root is importable through ``pythonpath`` in pyproject.toml, so tests import
helpers as ``tests.support.…`` / ``tests.runtime.helpers_…`` — never from a conftest.
"""

pytest_plugins = (
    "tests.runtime.helpers_entry",
    "tests.runtime.helpers_lifecycle",
    "tests.runtime.helpers_resilience",
)
