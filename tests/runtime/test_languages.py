"""Language lists and the validation of ``sourceLanguage`` / ``targetLanguage``."""

from __future__ import annotations

import json
from importlib import resources

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from runtime.errors import ErrorCode, ServiceError
from runtime.languages import (
    LANGUAGE_CODE,
    SOURCE_LANGUAGES,
    TARGET_LANGUAGES,
    validate_language,
    validate_source_language,
    validate_target_language,
)
from tests.support.hypothesis_profiles import examples

SMALL = frozenset({"en", "de", "fr"})


def _raw() -> dict[str, object]:
    text = resources.files("runtime.data").joinpath("languages.json").read_text(encoding="utf-8")
    return json.loads(text)


# --- the shipped lists ---------------------------------------------------------------------------


def test_lists_are_frozensets_of_two_letter_codes() -> None:
    for codes in (SOURCE_LANGUAGES, TARGET_LANGUAGES):
        assert isinstance(codes, frozenset)
        assert codes
        for code in codes:
            assert LANGUAGE_CODE.fullmatch(code), code


def test_target_is_a_subset_of_source() -> None:
    assert TARGET_LANGUAGES <= SOURCE_LANGUAGES
    assert len(SOURCE_LANGUAGES) > len(TARGET_LANGUAGES)


def test_json_matches_the_loaded_sets_and_documents_its_source() -> None:
    raw = _raw()
    assert isinstance(raw["_source"], str)
    assert "ISO 639-1" in raw["_source"]
    assert "docs.aws.amazon.com/translate" in raw["_source"]
    assert "docs.aws.amazon.com/polly" in raw["_source"]
    source, target = raw["source"], raw["target"]
    assert isinstance(source, list)
    assert isinstance(target, list)
    assert source == sorted(set(source))
    assert target == sorted(set(target))
    assert frozenset(source) == SOURCE_LANGUAGES
    assert frozenset(target) == TARGET_LANGUAGES


def test_well_known_languages() -> None:
    # Translate and Polly neural both cover these.
    for code in ("en", "es", "fr", "de", "it", "pt", "ja", "ko", "zh", "ar", "hi", "nl"):
        assert code in TARGET_LANGUAGES, code
    # Translate-only (no Polly neural voice): valid sources, not targets.
    for code in ("ru", "is", "ro", "cy", "sw", "vi", "uk", "th"):
        assert code in SOURCE_LANGUAGES, code
        assert code not in TARGET_LANGUAGES, code
    # Not ISO 639-1 codes Translate uses, or not languages at all.
    for code in ("xx", "zz", "qq", "nb", "iw", "jp"):
        assert code not in SOURCE_LANGUAGES, code


# --- validate_language ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("en", "en"),
        ("EN", "en"),
        ("En", "en"),
        ("eN", "en"),
        (" de ", "de"),
        ("\tfr\n", "fr"),
    ],
)
def test_normalises_case_and_surrounding_whitespace(value: str, expected: str) -> None:
    assert validate_language(value, field="lang", supported=SMALL) == expected


@pytest.mark.parametrize(
    "value",
    [
        None,
        1,
        0,
        True,
        12.5,
        b"en",
        bytearray(b"en"),
        ["en"],
        ("en",),
        {"code": "en"},
        {"en"},
        object(),
    ],
)
def test_non_strings_are_invalid_parameters(value: object) -> None:
    with pytest.raises(ServiceError) as info:
        validate_language(value, field="lang", supported=SMALL)
    assert info.value.code is ErrorCode.INVALID_PARAMETERS
    assert info.value.status == 400
    assert info.value.details == {"field": "lang"}
    assert "lang" in info.value.message


@pytest.mark.parametrize(
    "value",
    [
        "",
        " ",
        "e",
        "eng",
        "english",
        "en-US",
        "en_US",
        "e n",
        "e1",
        "12",
        "--",
        "e\u0301n",
        "\uff45\uff4e",  # fullwidth "en"
        "\u0435n",  # Cyrillic "е"
        "\u212ao",  # KELVIN SIGN lowercases to ASCII "k"
        "\u0130t",  # I WITH DOT ABOVE
        "en\x00",
        "en" * 10_000,
    ],
)
def test_malformed_strings_are_invalid_parameters(value: str) -> None:
    with pytest.raises(ServiceError) as info:
        validate_language(value, field="sourceLanguage", supported=SMALL)
    assert info.value.code is ErrorCode.INVALID_PARAMETERS
    assert info.value.details == {"field": "sourceLanguage"}
    # The message never echoes attacker-controlled input.
    assert len(info.value.message) < 200


@pytest.mark.parametrize("value", ["xx", "zz", "XX", " zz ", "es"])
def test_unsupported_well_formed_codes(value: str) -> None:
    with pytest.raises(ServiceError) as info:
        validate_language(value, field="targetLanguage", supported=SMALL)
    error = info.value
    code = value.strip().lower()
    assert error.code is ErrorCode.UNSUPPORTED_LANGUAGE
    assert error.status == 400
    assert error.details == {"field": "targetLanguage", "supported": ["de", "en", "fr"]}
    assert f"'{code}'" in error.message


def test_supported_list_in_details_is_a_fresh_sorted_list() -> None:
    with pytest.raises(ServiceError) as info:
        validate_target_language("xx")
    supported = info.value.details["supported"]
    assert supported == sorted(TARGET_LANGUAGES)
    assert isinstance(supported, list)
    json.dumps(info.value.details)  # travels in an error reply


# --- the wrappers --------------------------------------------------------------------------------


def test_source_wrapper() -> None:
    assert validate_source_language("RU") == "ru"
    assert validate_source_language("en") == "en"
    with pytest.raises(ServiceError) as info:
        validate_source_language("xx")
    assert info.value.code is ErrorCode.UNSUPPORTED_LANGUAGE
    assert info.value.details["field"] == "sourceLanguage"
    assert info.value.details["supported"] == sorted(SOURCE_LANGUAGES)
    with pytest.raises(ServiceError) as info:
        validate_source_language(None)
    assert info.value.code is ErrorCode.INVALID_PARAMETERS
    assert info.value.details == {"field": "sourceLanguage"}


def test_target_wrapper() -> None:
    assert validate_target_language(" Es ") == "es"
    with pytest.raises(ServiceError) as info:
        validate_target_language("ru")  # Translate can, Polly has no neural Russian voice
    assert info.value.code is ErrorCode.UNSUPPORTED_LANGUAGE
    assert info.value.details["field"] == "targetLanguage"
    assert "'ru'" in info.value.message
    with pytest.raises(ServiceError) as info:
        validate_target_language(["en"])
    assert info.value.code is ErrorCode.INVALID_PARAMETERS
    assert info.value.details == {"field": "targetLanguage"}


@pytest.mark.parametrize("code", sorted(SOURCE_LANGUAGES))
def test_every_source_code_validates_in_any_case(code: str) -> None:
    assert validate_source_language(code) == code
    assert validate_source_language(code.upper()) == code


@pytest.mark.parametrize("code", sorted(TARGET_LANGUAGES))
def test_every_target_code_validates(code: str) -> None:
    assert validate_target_language(code) == code


# --- properties ----------------------------------------------------------------------------------


def _expected_outcome(value: str, supported: frozenset[str]) -> str:
    """Regex-free reference: 'ok:<code>', INVALID_PARAMETERS or UNSUPPORTED_LANGUAGE."""
    stripped = value.strip()
    if not stripped.isascii():
        return ErrorCode.INVALID_PARAMETERS
    code = stripped.lower()
    if len(code) != 2 or not all("a" <= ch <= "z" for ch in code):
        return ErrorCode.INVALID_PARAMETERS
    if code not in supported:
        return ErrorCode.UNSUPPORTED_LANGUAGE
    return f"ok:{code}"


def _outcome(value: object, supported: frozenset[str]) -> str:
    try:
        return f"ok:{validate_language(value, field='f', supported=supported)}"
    except ServiceError as error:
        assert error.details["field"] == "f"
        return error.code


@settings(max_examples=examples(2000), deadline=None)
@given(st.text())
def test_arbitrary_text_only_ever_raises_service_error(value: str) -> None:
    for supported in (SOURCE_LANGUAGES, TARGET_LANGUAGES):
        assert _outcome(value, supported) == _expected_outcome(value, supported)


@settings(max_examples=examples(500), deadline=None)
@given(
    code=st.text(
        alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ", min_size=2, max_size=2
    ),
    left=st.sampled_from(["", " ", "\t", "\n", "  \r\n"]),
    right=st.sampled_from(["", " ", "\t", "\n", "  \r\n"]),
)
def test_two_letter_codes_are_accepted_or_unsupported(code: str, left: str, right: str) -> None:
    outcome = _outcome(f"{left}{code}{right}", SOURCE_LANGUAGES)
    if code.lower() in SOURCE_LANGUAGES:
        assert outcome == f"ok:{code.lower()}"
    else:
        assert outcome == ErrorCode.UNSUPPORTED_LANGUAGE


@settings(max_examples=examples(300), deadline=None)
@given(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(),
        st.floats(allow_nan=True),
        st.binary(),
        st.lists(st.text(max_size=3)),
        st.dictionaries(st.text(max_size=3), st.text(max_size=3)),
    )
)
def test_non_strings_only_ever_raise_invalid_parameters(value: object) -> None:
    assert _outcome(value, SOURCE_LANGUAGES) == ErrorCode.INVALID_PARAMETERS
