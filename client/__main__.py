"""``python -m client speak|listen|token|connections``: the CLI (``python -m local …`` too)."""

from __future__ import annotations

import sys

from client.cli import run

if __name__ == "__main__":
    sys.exit(run(sys.argv[1:]))
