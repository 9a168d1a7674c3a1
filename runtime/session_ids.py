"""Human-friendly session IDs of the form ``adjective-noun-NNN`` (e.g. ``golden-eagle-427``).

The word lists and the blocklist ship in ``runtime/data`` and are loaded once at import:
each list is stripped, de-duplicated, restricted to lowercase ASCII words and filtered
through the blocklist. Hyphenated blocklist entries (``adjective-noun``) reject unfortunate
*combinations* at generation time.

This module only generates and checks the shape of IDs (``require_session_id`` checks a
client message's ``sessionId``). Uniqueness is the caller's job: it
writes the session with a conditional put and, on a collision, asks for another ID, up to
``MAX_ID_ATTEMPTS`` times.
"""

from __future__ import annotations

import random
import re
import secrets
from collections.abc import Iterable
from typing import Any

from runtime import data as data_files
from runtime.errors import ErrorCode, ServiceError
from runtime.protocol import MAX_MESSAGE_BYTES, echo, require_string

__all__ = [
    "ADJECTIVES",
    "MAX_ID_ATTEMPTS",
    "MAX_SESSION_ID_LENGTH",
    "NOUNS",
    "SESSION_ID_PATTERN",
    "generate_session_id",
    "is_valid_session_id",
    "require_session_id",
]

SESSION_ID_PATTERN: re.Pattern[str] = re.compile(r"^[a-z]+-[a-z]+-[1-9][0-9]{2}$")
"""The shape of a session ID. Match it with ``fullmatch`` (or use ``is_valid_session_id``):
``$`` alone also matches before a trailing newline."""

MAX_SESSION_ID_LENGTH = 64
"""Longer strings are rejected before the pattern is tried."""

MAX_ID_ATTEMPTS = 10
"""How many fresh IDs a caller tries before giving up on a conditional-write collision."""

_NUMBER_MIN = 100
_NUMBER_MAX = 999
_WORD = re.compile(r"^[a-z]+$")
_BLOCK_ENTRY = re.compile(r"^[a-z]+(?:-[a-z]+)*$")
# Rejection sampling over (adjective, noun) pairs; with the shipped lists almost every pair is
# allowed, so this bound is only reached if the lists are broken.
_MAX_PAIR_DRAWS = 1000

_SYSTEM_RANDOM = secrets.SystemRandom()


def _read_lines(name: str) -> list[str]:
    """The non-blank, non-comment lines of ``runtime/data/<name>``, stripped and lowercased."""
    text = data_files.read_text(name)
    lines = (line.strip().lower() for line in text.splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def _load_blocklist(lines: Iterable[str]) -> tuple[str, ...]:
    entries = tuple(dict.fromkeys(lines))
    bad = [entry for entry in entries if not _BLOCK_ENTRY.match(entry)]
    if bad:
        raise ValueError(f"malformed blocklist entries: {bad!r}")
    return entries


def _filter_words(words: Iterable[str], blocklist: Iterable[str]) -> tuple[str, ...]:
    """Unique lowercase ASCII words, in order, that contain no blocklisted substring."""
    blocked = frozenset(blocklist)
    lengths = sorted({len(entry) for entry in blocked})
    kept: dict[str, None] = {}
    for word in words:
        if not _WORD.match(word) or word in kept:
            continue
        # Each substring of a blocked entry's length looked up in a set: a few dozen lookups
        # per word instead of one scan per blocklist entry (this runs in create_session's
        # cold start).
        if any(
            word[start : start + size] in blocked
            for size in lengths
            for start in range(len(word) - size + 1)
        ):
            continue
        kept[word] = None
    return tuple(kept)


def _combination_allowed(adjective: str, noun: str, blocklist: Iterable[str]) -> bool:
    """False if the joined ``adjective-noun`` contains a blocklisted substring."""
    joined = f"{adjective}-{noun}"
    return not any(entry in joined for entry in blocklist)


_WORD_LISTS = ("_BLOCKLIST", "ADJECTIVES", "NOUNS")
# Declared here, bound by load_word_lists (on first access through __getattr__).
_BLOCKLIST: tuple[str, ...]
ADJECTIVES: tuple[str, ...]
NOUNS: tuple[str, ...]


def load_word_lists() -> None:
    """Read and check the word lists (``_BLOCKLIST``, ``ADJECTIVES``, ``NOUNS``) once.

    Only generating an ID needs them: ``create_session`` loads them when it is imported, while
    the functions that only validate IDs (joinSession, refreshConnection) never pay for it in
    their cold start. A broken file fails loudly, as before.
    """
    names = globals()
    if all(name in names for name in _WORD_LISTS):
        return
    blocklist = _load_blocklist(_read_lines("blocklist.txt"))
    names.setdefault("_BLOCKLIST", blocklist)
    names.setdefault("ADJECTIVES", _filter_words(_read_lines("adjectives.txt"), blocklist))
    names.setdefault("NOUNS", _filter_words(_read_lines("nouns.txt"), blocklist))


def __getattr__(name: str) -> Any:
    # PEP 562: ``session_ids.ADJECTIVES`` and friends load the lists on first access.
    if name in _WORD_LISTS:
        load_word_lists()
        return globals()[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def is_valid_session_id(value: object) -> bool:
    """True if ``value`` is a string of the form ``adjective-noun-NNN``.

    Checks the shape only (lowercase ASCII words, a number from 100 to 999, at most
    ``MAX_SESSION_ID_LENGTH`` characters), not membership of the current word lists, so IDs
    stay valid when the lists change. Never raises.
    """
    if not isinstance(value, str) or len(value) > MAX_SESSION_ID_LENGTH:
        return False
    return SESSION_ID_PATTERN.fullmatch(value) is not None


def require_session_id(message: dict[str, Any]) -> str:
    """A client message's ``sessionId``, or the ServiceError that rejects it.

    Missing or not a string is INVALID_PARAMETERS; any other string of the wrong shape (too
    long included) is INVALID_SESSION_ID.
    """
    session_id = require_string(message, "sessionId", max_length=MAX_MESSAGE_BYTES)
    if not is_valid_session_id(session_id):
        # The value goes in details only: messages are logged, client strings are not.
        raise ServiceError(
            ErrorCode.INVALID_SESSION_ID,
            "'sessionId' must look like adjective-noun-number, such as 'golden-eagle-427'; "
            "check the ID the speaker shared.",
            field="sessionId",
            sessionId=echo(session_id),
        )
    return session_id


def generate_session_id(rng: random.Random | None = None) -> str:
    """A new random ``adjective-noun-NNN`` session ID.

    ``rng`` defaults to a ``secrets.SystemRandom``; pass a seeded ``random.Random`` for
    deterministic output in tests. Pairs matching a hyphenated blocklist entry are redrawn.
    The result is not guaranteed unique: the caller enforces that with a conditional write.
    """
    load_word_lists()
    blocklist, adjectives, nouns = (globals()[name] for name in _WORD_LISTS)
    source = _SYSTEM_RANDOM if rng is None else rng
    for _ in range(_MAX_PAIR_DRAWS):
        adjective = source.choice(adjectives)
        noun = source.choice(nouns)
        if _combination_allowed(adjective, noun, blocklist):
            number = source.randint(_NUMBER_MIN, _NUMBER_MAX)
            return f"{adjective}-{noun}-{number}"
    raise RuntimeError("could not draw an allowed adjective-noun pair; check the word lists")
