"""``make test`` tries the same hypothesis examples on every machine; ``make fuzz`` new ones."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import settings

from tests.support import hypothesis_profiles

ROOT = Path(__file__).resolve().parent.parent


def test_the_ci_profile_is_derandomised_and_keeps_no_database() -> None:
    ci = settings.get_profile(hypothesis_profiles.CI)
    assert ci.derandomize is True
    assert ci.database is None
    assert ci.print_blob is True


def test_the_fuzz_profile_is_random_and_scales_every_tests_examples(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fuzz = settings.get_profile(hypothesis_profiles.FUZZ)
    assert fuzz.derandomize is False
    assert fuzz.database is not None  # failures found are replayed first next time
    monkeypatch.setenv("FUZZ_SCALE", "7")
    current = settings.get_current_profile_name()
    try:
        settings.load_profile(hypothesis_profiles.FUZZ)
        assert hypothesis_profiles.examples(80) == 560
        settings.load_profile(hypothesis_profiles.CI)
        assert hypothesis_profiles.examples(80) == 80
    finally:
        settings.load_profile(current)


def test_a_run_without_a_profile_option_uses_the_ci_profile(pytestconfig: pytest.Config) -> None:
    # What `make test` and a bare `pytest` get: this very process, loaded by the root conftest.
    if pytestconfig.getoption("--hypothesis-profile") or os.environ.get("HYPOTHESIS_PROFILE"):
        pytest.skip("a profile was chosen explicitly")
    assert settings.get_current_profile_name() == hypothesis_profiles.CI
    assert settings.default.derandomize is True and settings.default.database is None


def test_make_test_pins_ci_and_make_fuzz_runs_the_property_tests_with_fuzz() -> None:
    makefile = (ROOT / "Makefile").read_text()
    test_recipe = re.search(r"^test:.*\n((?:\t.*\n)+)", makefile, re.M)
    fuzz_recipe = re.search(r"^fuzz:.*\n((?:\t.*\n)+)", makefile, re.M)
    assert test_recipe and "--hypothesis-profile=ci" in test_recipe.group(1)
    assert fuzz_recipe and "--hypothesis-profile=fuzz" in fuzz_recipe.group(1)
    assert "-m hypothesis" in fuzz_recipe.group(1)


def test_a_property_test_sees_the_same_examples_in_two_runs(tmp_path: Path) -> None:
    # The profile as the root conftest loads it, in a separate pytest run.
    (tmp_path / "conftest.py").write_text(
        "from tests.support import hypothesis_profiles\nhypothesis_profiles.register()\n"
    )
    probe = tmp_path / "test_probe.py"
    seen = tmp_path / "seen.txt"
    probe.write_text(
        "from hypothesis import given, strategies as st\n"
        "@given(st.text())\n"
        "def test_probe(s):\n"
        f"    open({str(seen)!r}, 'a').write(repr(s) + '\\n')\n"
    )
    runs = []
    for _ in range(2):
        seen.write_text("")
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pytest",
                "-q",
                "-p",
                "no:cacheprovider",
                "-p",
                "no:xdist",
                "--rootdir",
                str(tmp_path),
                str(probe),
            ],
            cwd=tmp_path,
            check=True,
            capture_output=True,
            env={**os.environ, "PYTHONPATH": str(ROOT), "HYPOTHESIS_PROFILE": ""},
        )
        runs.append(seen.read_text())
    assert len(runs[0].splitlines()) > 10 and runs[0] == runs[1]
