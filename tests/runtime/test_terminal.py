"""``runtime.terminal.printable``: the one function that makes outside text safe to print
(issue 21.7). The local stack and the CLI print every stderr line through it."""

from __future__ import annotations

import pytest

from runtime.terminal import printable

CONTROLS = [*range(0x20), 0x7F, *range(0x80, 0xA0)]


@pytest.mark.parametrize("code", CONTROLS, ids=[f"{c:#04x}" for c in CONTROLS])
def test_every_c0_and_c1_control_is_shown_as_an_escape(code: int) -> None:
    shown = printable(f"a{chr(code)}b")
    assert shown.startswith("a\\") and shown.endswith("b")
    assert all(0x20 <= ord(c) < 0x7F for c in shown), repr(shown)


def test_the_usual_ones_read_as_in_python() -> None:
    assert printable("\x1b[2J\x1b]0;pwned\x07\n\r\t\x9b\x00") == (
        "\\x1b[2J\\x1b]0;pwned\\x07\\n\\r\\t\\x9b\\x00"
    )


def test_line_separators_and_bidi_overrides_are_escaped_too() -> None:
    assert printable("a\u2028b\u202ec\u2066") == "a\\u2028b\\u202ec\\u2066"


def test_ordinary_text_is_untouched() -> None:
    text = "disconnect #3f2a  1000 bye, after 1.0s — «é» 日本 🎧"
    assert printable(text) == text
    assert printable(42) == "42"
