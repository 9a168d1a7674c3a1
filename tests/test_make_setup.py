"""`make setup` tells the operator when `uv` is not on PATH, which `pulumi up` needs."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MAKE = shutil.which("make") or "/usr/bin/make"


def run_check(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [MAKE, "-s", "-C", str(ROOT), "uv-on-path"],
        env={"PATH": str(path)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_setup_runs_the_uv_path_check():
    recipe = subprocess.run(
        [MAKE, "-n", "-C", str(ROOT), "setup"], capture_output=True, text=True, check=False
    ).stdout
    assert "uv-on-path" in recipe


def test_a_missing_uv_is_reported_with_a_fix(tmp_path: Path):
    result = run_check(tmp_path)  # an empty PATH: no uv, no python3
    assert result.returncode == 0, result.stderr  # a warning: make itself can use python3 -m uv
    assert "'uv' is not on PATH" in result.stderr
    assert "pulumi up" in result.stderr
    assert "Fix:" in result.stderr


def test_uv_on_path_is_silent(tmp_path: Path):
    uv = tmp_path / "uv"
    uv.write_text("#!/bin/sh\nexit 0\n")
    uv.chmod(0o755)
    result = run_check(tmp_path)
    assert result.returncode == 0
    assert result.stderr == ""
