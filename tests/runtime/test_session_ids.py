"""Session IDs: the shipped word lists, the generator and the validator."""

from __future__ import annotations

import random
import re
import secrets
from importlib import resources

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from runtime import session_ids
from runtime.session_ids import (
    ADJECTIVES,
    MAX_ID_ATTEMPTS,
    NOUNS,
    SESSION_ID_PATTERN,
    generate_session_id,
    is_valid_session_id,
)
from tests.support.hypothesis_profiles import examples

WORD = re.compile(r"^[a-z]+$")


def _data_lines(name: str) -> list[str]:
    text = resources.files("runtime.data").joinpath(name).read_text(encoding="utf-8")
    return text.splitlines()


def _entries(name: str) -> list[str]:
    return [line for line in _data_lines(name) if line.strip() and not line.startswith("#")]


BLOCKLIST = _entries("blocklist.txt")
WORD_ENTRIES = [entry for entry in BLOCKLIST if "-" not in entry]
PAIR_ENTRIES = [entry for entry in BLOCKLIST if "-" in entry]


def _reference_is_valid(value: str) -> bool:
    """An independent, regex-free statement of the session-ID shape."""
    if len(value) > 64:
        return False
    parts = value.split("-")
    if len(parts) != 3:
        return False
    adjective, noun, number = parts
    lower = set("abcdefghijklmnopqrstuvwxyz")
    digits = set("0123456789")
    return (
        bool(adjective)
        and set(adjective) <= lower
        and bool(noun)
        and set(noun) <= lower
        and len(number) == 3
        and set(number) <= digits
        and number[0] != "0"
    )


# --- the shipped data ----------------------------------------------------------------------------


def test_constants() -> None:
    assert MAX_ID_ATTEMPTS == 10
    assert SESSION_ID_PATTERN.pattern == r"^[a-z]+-[a-z]+-[1-9][0-9]{2}$"


@pytest.mark.parametrize("words", [ADJECTIVES, NOUNS], ids=["adjectives", "nouns"])
def test_lists_are_large_unique_lowercase_ascii(words: tuple[str, ...]) -> None:
    assert isinstance(words, tuple)
    assert len(words) >= 150
    assert len(set(words)) == len(words)
    for word in words:
        assert WORD.match(word), word
        assert word.isascii()


@pytest.mark.parametrize(
    ("filename", "loaded"),
    [("adjectives.txt", ADJECTIVES), ("nouns.txt", NOUNS)],
)
def test_shipped_files_are_clean_so_the_filter_removes_nothing(
    filename: str, loaded: tuple[str, ...]
) -> None:
    lines = _data_lines(filename)
    assert all(WORD.match(line) for line in lines), [ln for ln in lines if not WORD.match(ln)]
    assert len(set(lines)) == len(lines)
    # If a blocklist edit starts hitting a word, remove the word from the list instead.
    assert loaded == tuple(lines)


def test_blocklist_entries_are_well_formed() -> None:
    assert len(WORD_ENTRIES) >= 50
    assert PAIR_ENTRIES
    for entry in BLOCKLIST:
        assert entry == entry.strip().lower()
        assert re.fullmatch(r"[a-z]+(-[a-z]+)*", entry), entry
    assert len(set(BLOCKLIST)) == len(BLOCKLIST)
    assert set(session_ids._BLOCKLIST) == set(BLOCKLIST)


@pytest.mark.parametrize("words", [ADJECTIVES, NOUNS], ids=["adjectives", "nouns"])
def test_no_blocklisted_substring_in_any_word(words: tuple[str, ...]) -> None:
    offending = {word: [e for e in BLOCKLIST if e in word] for word in words}
    assert {word: hits for word, hits in offending.items() if hits} == {}


def test_known_offensive_substrings_are_blocked() -> None:
    for entry in ("ass", "fuck", "shit", "tit", "cock", "rape", "nazi", "kill"):
        assert entry in BLOCKLIST
        assert not any(entry in word for word in ADJECTIVES + NOUNS)


def test_lists_are_disjoint() -> None:
    assert set(ADJECTIVES).isdisjoint(NOUNS)


def test_longest_possible_id_fits_the_length_limit() -> None:
    longest = f"{max(ADJECTIVES, key=len)}-{max(NOUNS, key=len)}-999"
    assert len(longest) <= 64
    assert is_valid_session_id(longest)


# --- the filters ---------------------------------------------------------------------------------


def test_filter_words_drops_blocked_malformed_and_duplicate_words() -> None:
    words = ["calm", "grass", "Calm", "otter", "calm", "tit", "titan", "two words", "", "ñandu"]
    assert session_ids._filter_words(words, ["ass", "tit"]) == ("calm", "otter")


def test_combination_check_uses_the_joined_pair() -> None:
    blocklist = ["golden-eagle", "ass"]
    assert not session_ids._combination_allowed("golden", "eagle", blocklist)
    assert session_ids._combination_allowed("golden", "otter", blocklist)
    assert session_ids._combination_allowed("calm", "eagle", blocklist)
    for entry in PAIR_ENTRIES:
        adjective, noun = entry.split("-", 1)
        assert not session_ids._combination_allowed(adjective, noun, BLOCKLIST)


def test_generator_redraws_blocked_combinations(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(session_ids, "ADJECTIVES", ("golden", "calm"))
    monkeypatch.setattr(session_ids, "NOUNS", ("eagle",))
    monkeypatch.setattr(session_ids, "_BLOCKLIST", ("golden-eagle",))
    rng = random.Random(7)
    ids = [generate_session_id(rng) for _ in range(200)]
    assert all(i.startswith("calm-eagle-") for i in ids)


def test_generator_gives_up_when_every_pair_is_blocked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(session_ids, "ADJECTIVES", ("golden",))
    monkeypatch.setattr(session_ids, "NOUNS", ("eagle",))
    monkeypatch.setattr(session_ids, "_BLOCKLIST", ("golden-eagle",))
    with pytest.raises(RuntimeError):
        generate_session_id(random.Random(1))


# --- generation ----------------------------------------------------------------------------------


def _assert_well_formed(session_id: str) -> None:
    assert is_valid_session_id(session_id), session_id
    adjective, noun, number = session_id.split("-")
    assert adjective in ADJECTIVES
    assert noun in NOUNS
    assert 100 <= int(number) <= 999
    assert not any(entry in session_id for entry in BLOCKLIST), session_id


def test_two_thousand_generated_ids_are_valid() -> None:
    rng = random.Random(20240601)
    for _ in range(2000):
        _assert_well_formed(generate_session_id(rng))


@settings(max_examples=examples(200), deadline=None)
@given(seed=st.integers(min_value=0, max_value=2**64))
def test_generated_ids_are_valid_for_any_seed(seed: int) -> None:
    rng = random.Random(seed)
    for _ in range(10):
        _assert_well_formed(generate_session_id(rng))


def test_seeded_generation_is_deterministic() -> None:
    first = [generate_session_id(random.Random(42)) for _ in range(3)]
    assert first[0] == first[1] == first[2]
    a, b = random.Random(99), random.Random(99)
    assert [generate_session_id(a) for _ in range(50)] == [
        generate_session_id(b) for _ in range(50)
    ]


def test_number_range_is_exactly_100_to_999() -> None:
    rng = random.Random(12345)
    numbers = {int(generate_session_id(rng).rsplit("-", 1)[1]) for _ in range(30_000)}
    assert numbers == set(range(100, 1000))


def test_generation_uses_every_word() -> None:
    rng = random.Random(2024)
    seen_adjectives: set[str] = set()
    seen_nouns: set[str] = set()
    for _ in range(20_000):
        adjective, noun, _number = generate_session_id(rng).split("-")
        seen_adjectives.add(adjective)
        seen_nouns.add(noun)
    assert seen_adjectives == set(ADJECTIVES)
    assert seen_nouns == set(NOUNS)


def test_default_rng_is_the_system_csprng() -> None:
    assert isinstance(session_ids._SYSTEM_RANDOM, secrets.SystemRandom)
    ids = {generate_session_id() for _ in range(200)}
    for session_id in ids:
        _assert_well_formed(session_id)
    # 200 draws from ~75 million IDs: a repeat-everything result means the default is broken.
    assert len(ids) > 150


def test_default_rng_is_used_when_rng_is_none(monkeypatch: pytest.MonkeyPatch) -> None:
    reference = random.Random(5)
    expected = [generate_session_id(reference) for _ in range(2)]
    monkeypatch.setattr(session_ids, "_SYSTEM_RANDOM", random.Random(5))
    assert [generate_session_id(), generate_session_id(None)] == expected


# --- validation ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    ["golden-eagle-427", "a-b-100", "a-b-999", "zz-qq-505", "unlisted-words-123"],
)
def test_accepts_well_formed_ids(value: str) -> None:
    assert is_valid_session_id(value) is True


@pytest.mark.parametrize(
    "value",
    [
        None,
        427,
        4.27,
        True,
        b"golden-eagle-427",
        bytearray(b"golden-eagle-427"),
        ["golden-eagle-427"],
        {"id": "golden-eagle-427"},
        object(),
    ],
)
def test_rejects_non_strings(value: object) -> None:
    assert is_valid_session_id(value) is False


@pytest.mark.parametrize(
    "value",
    [
        "",
        "-",
        "--",
        "golden-eagle",
        "golden-eagle-",
        "-eagle-427",
        "golden--427",
        "golden-eagle-42",
        "golden-eagle-4270",
        "a-b-1000",
        "a-b-099",
        "a-b-000",
        "a-b-007",
        "Golden-eagle-427",
        "GOLDEN-EAGLE-427",
        "golden-Eagle-427",
        "golden_eagle_427",
        "golden-eagle-427-1",
        "golden-big-eagle-427",
        "golden eagle 427",
        " golden-eagle-427",
        "golden-eagle-427 ",
        "golden-eagle-427\n",
        "\ngolden-eagle-427",
        "golden-eagle-427\x00",
        "golden-eagle-4a7",
        "golden-eagle--427",
        "golden-eagle-+427",
        "g0lden-eagle-427",
        # Unicode lookalikes: Cyrillic "а"/"е", dotless "ı", fullwidth and Arabic-Indic digits,
        # en dash, non-breaking hyphen, the Kelvin sign, a combining accent.
        "golden-\u0435agle-427",
        "golden-eagl\u0435-427",
        "g\u043elden-eagle-427",
        "golden-eagle-\uff14\uff12\uff17",
        "golden-eagle-\u0664\u0662\u0667",
        "golden\u2013eagle\u2013427",
        "golden\u2011eagle\u2011427",
        "\u212aind-eagle-427",
        "g\u0131lden-eagle-427",
        "golde\u0301n-eagle-427",
        "golden-eagle-427\u200b",
        "'; DROP TABLE sessions; --",
        "../../etc/passwd",
        "golden-eagle-427<script>",
    ],
)
def test_rejects_malformed_strings(value: str) -> None:
    assert is_valid_session_id(value) is False


def test_length_limit_applies_even_to_pattern_matching_strings() -> None:
    at_limit = "a" * 55 + "-bb-123"
    assert len(at_limit) == 62
    assert is_valid_session_id(at_limit)
    exactly_64 = "a" * 57 + "-bb-123"
    assert len(exactly_64) == 64
    assert is_valid_session_id(exactly_64)
    too_long = "a" * 58 + "-bb-123"
    assert len(too_long) == 65
    assert SESSION_ID_PATTERN.fullmatch(too_long)
    assert not is_valid_session_id(too_long)


def test_huge_strings_are_rejected() -> None:
    assert not is_valid_session_id("a" * 10_000_000 + "-b-123")
    assert not is_valid_session_id("golden-eagle-427" * 100_000)
    assert not is_valid_session_id("-" * 1_000_000)


@settings(max_examples=examples(2000), deadline=None)
@given(st.text())
def test_arbitrary_text_agrees_with_the_reference(value: str) -> None:
    assert is_valid_session_id(value) is _reference_is_valid(value)


@settings(max_examples=examples(500), deadline=None)
@given(
    st.from_regex(r"\A[a-z]{1,20}-[a-z]{1,20}-[1-9][0-9]{2}\Z"),
)
def test_every_well_formed_id_is_accepted(value: str) -> None:
    assert is_valid_session_id(value)


@settings(max_examples=examples(500), deadline=None)
@given(
    prefix=st.text(max_size=5),
    suffix=st.text(max_size=5),
)
def test_padding_a_valid_id_is_only_accepted_if_the_result_is_well_formed(
    prefix: str, suffix: str
) -> None:
    value = f"{prefix}golden-eagle-427{suffix}"
    assert is_valid_session_id(value) is _reference_is_valid(value)


@settings(max_examples=examples(300), deadline=None)
@given(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(),
        st.floats(allow_nan=True),
        st.binary(),
        st.lists(st.text()),
        st.dictionaries(st.text(), st.text()),
    )
)
def test_non_strings_never_validate_and_never_raise(value: object) -> None:
    assert is_valid_session_id(value) is False
