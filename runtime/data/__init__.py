"""Data files shipped with the runtime (word lists, supported languages)."""

from __future__ import annotations

import os

_HERE = os.path.dirname(os.path.abspath(__file__))


def read_text(name: str) -> str:
    """The UTF-8 text of ``runtime/data/<name>``.

    A plain file read rather than ``importlib.resources``, whose import (``inspect``,
    ``tempfile``…) would add milliseconds to every cold start; the archive ships these files
    on disk next to this module.
    """
    with open(os.path.join(_HERE, name), encoding="utf-8") as file:
        return file.read()
