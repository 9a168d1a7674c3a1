"""``make screenshot`` keeps working: it takes the README's picture during a fire drill.

The command itself checks what the picture must show (a live session with its listeners, the
drill's alarm in ALARM when the picture is taken, the drill passing); this test runs it into
a temporary file and checks a whole-page PNG came out.
"""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from bench.screenshot import WIDTH, take
from tests.local.browser import require_chromium

pytestmark = pytest.mark.slow


def test_make_screenshot_photographs_the_console_during_a_drill(tmp_path: Path):
    require_chromium()
    out = take(tmp_path / "console.png", "server-errors")
    head = out.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", head[16:24])
    assert width == WIDTH and height > 1000  # the whole page, not one window of it
