"""One function makes outside text safe to print on a developer's terminal.

Anything that reaches a terminal from outside — a request path or header, a client's
message, a token's claims, a value from a config file, an exception's text — may carry
control characters: ESC starts ANSI/OSC sequences that clear the screen, set the window
title or write forged lines; BEL, CR, LF and the C1 controls (U+0080–U+009F, 8-bit CSI is
U+009B) do the rest. ``printable`` shows each of them as a visible escape (``\\x1b``,
``\\n``, ``\\x9b``), so a line printed with it is exactly one line of plain text.

It lives in ``runtime`` (which imports nothing else of the project) so that both the local
stack (``local/``) and the CLI client (``client/``) use the same one.
"""

from __future__ import annotations

import re

# C0 controls, DEL, C1 controls; plus the Unicode line and paragraph separators and the
# bidirectional overrides, which also change what a terminal shows.
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    named = _NAMED.get(char)
    if named is not None:
        return named
    code = ord(char)
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def printable(value: object) -> str:
    """``value`` as text with every control character shown as an escape (never raw)."""
    text = value if isinstance(value, str) else str(value)
    return _UNSAFE.sub(_escape, text)
